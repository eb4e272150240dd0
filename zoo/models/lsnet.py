"""LSNet: See Large, Focus Small (Wang et al., CVPR 2025), official code: jameslahm/lsnet.

The LS convolution perceives with a large kernel and aggregates with a small one: a large-kernel
depthwise branch (LKP) looks at a 7x7 neighbourhood and predicts, for every pixel, a 3x3 kernel per
channel group; small-kernel aggregation (SKA) applies those kernels to the input. Blocks alternate a
RepVGG-style depthwise mixer (+ squeeze-excite) with an LS convolution, the last stage using a LeViT-style
attention with a learned relative-position bias instead. Stem: three 3x3 stride-2 Conv–BN (total stride 8);
each further stage starts with a depthwise stride-2 Conv–BN and a 1x1 Conv–BN; the head is BN + Linear.

The authors compute SKA with a Triton kernel (``model/ska.py``). :func:`small_kernel_aggregation` takes, on
CUDA with Triton installed, the zoo's fused kernel (``torch.ops.zoo.ska``, :mod:`zoo.layers.ska_triton`:
forward and both gradients, one op for autograd, compile and export); everywhere else
:func:`ska_reference`, the pure-PyTorch path of the same sum, exact to float rounding, on any device and
differentiable by autograd. Stochastic depth (absent from the official blocks) is added on every residual branch that is not
folded away at deploy time; with ``drop_path_rate=0`` (the default) the model is the official one.
"""
import math
import re
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, calculate_drop_path_rates
from timm.models import generate_default_cfgs

from ..layers import ConvBN, ConvBNFFN, RepVGGDW, SqueezeExcite
from ..layers._fx import is_plain_eager
from ..layers.ska_triton import triton_available
from ..weights import check_pretrained
from ._base import BNLinearHead, Stage, StagedBackbone, distillation_head_for, levit_unit_key
from .registry import Family, register_family

__all__ = ['LSNet', 'LSConv', 'small_kernel_aggregation', 'ska_reference', 'FUSED_SKA']

# CUDA tensors take the fused kernel (torch.ops.zoo.ska) where Triton is installed; set False to compare paths
FUSED_SKA = triton_available()


def small_kernel_aggregation(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """SKA: ``out[b, c, i, j] = sum_{u,v} x[b, c, i+u-p, j+v-p] * weight[b, c % G, u*k+v, i, j]``.

    ``x`` is (B, C, H, W); ``weight`` is (B, G, k*k, H, W), one k x k kernel per pixel for each of G weight
    channels, shared by the channels c with the same c % G (zero padding p = (k-1)//2). On CUDA with Triton,
    the fused kernel; otherwise :func:`ska_reference`."""
    if not torch.jit.is_scripting() and x.is_cuda and _fused_ska():
        return torch.ops.zoo.ska(x, weight)
    return ska_reference(x, weight)


@torch.jit.unused  # TorchScript reads no module flag: a scripted model takes the reference
def _fused_ska() -> bool:
    return FUSED_SKA


def ska_reference(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """SKA as k*k shifted multiply-adds, which keeps memory at the size of ``x`` (an unfold would hold k*k
    copies): the reference, and the path on the CPU."""
    B, C, H, W = x.shape
    G, kk = weight.shape[1], weight.shape[2]
    if torch.jit.is_scripting():  # no math.isqrt there; the same root for a square, else k * k != kk too
        k = int(math.sqrt(kk) + 0.5)
    else:
        k = math.isqrt(kk)
    if k * k != kk or C % G != 0:
        raise ValueError(f'SKA needs a square kernel and channels divisible by the weight groups, got '
                         f'{kk} taps and {C} channels for {G} groups')
    p = (k - 1) // 2
    if 2 * W >= G and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous():
        # the multiply-adds run along the innermost dimension: W in NCHW, the G weight channels in channels-last.
        # The longer one wins, the width counted twice (at LSNet's sizes up to 3.7x faster, never 1% slower);
        # the caller's sum with a channels-last map gives channels-last again
        x = x.contiguous()
    xp = F.pad(x, [p, p, p, p]).view(B, C // G, G, H + 2 * p, W + 2 * p)
    weight = weight.unsqueeze(1)
    out = xp[..., 0:H, 0:W] * weight[:, :, :, 0]
    for t in range(1, kk):  # in place: autograd keeps the factors, not the sum, and no map is allocated per tap
        u, v = divmod(t, k)
        out.addcmul_(xp[..., u:u + H, v:v + W], weight[:, :, :, t])
    return out.reshape(B, C, H, W)


# the loop runs over the taps of the kernel the input brings: a traced graph (torch.fx) calls the function
torch.fx.wrap('small_kernel_aggregation')


def relative_position_bias(table: torch.Tensor, resolution: int, H: int, W: int) -> torch.Tensor:
    """The (heads, H*W, H*W) attention bias of an H x W grid from a (heads, resolution**2) table indexed by
    the offset (|dy|, |dx|) between positions; a grid larger than the table resizes it bicubically."""
    r = resolution
    grid = table.view(table.shape[0], r, r)
    if H > r or W > r:
        grid = F.interpolate(grid[None], size=[max(H, r), max(W, r)], mode='bicubic', align_corners=False)[0]
    ys = torch.arange(H, device=table.device)
    xs = torch.arange(W, device=table.device)
    dy = (ys[:, None] - ys[None, :]).abs()[:, None, :, None].expand(H, W, H, W).reshape(H * W, H * W)
    dx = (xs[:, None] - xs[None, :]).abs()[None, :, None, :].expand(H, W, H, W).reshape(H * W, H * W)
    return grid[:, dy, dx]


# whether the table is resized depends on the grid size: a traced graph calls the function
torch.fx.wrap('relative_position_bias')


def resized_bias_matrix(table: torch.Tensor, resolution: int, H: int, W: int) -> torch.Tensor:
    """The (heads, H*W, H*W) attention bias of the authors' detection and segmentation backbones: the bias
    matrix of the ``resolution`` x ``resolution`` grid, (heads, resolution**2, resolution**2), resized
    bicubically as an image to (H*W, H*W), whatever the grid (the identity where H*W is resolution**2)."""
    full = relative_position_bias(table, resolution, resolution, resolution)
    return F.interpolate(full[None], size=[H * W, H * W], mode='bicubic', align_corners=False)[0]


torch.fx.wrap('resized_bias_matrix')

_BIAS_RESIZE = ('table', 'matrix')


class SKA(nn.Module):
    """Small-kernel aggregation as a module, so benchmarks can count its multiply-adds."""

    def forward(self, x, weight):
        return small_kernel_aggregation(x, weight)

    @staticmethod
    def flops(inputs, output) -> int:
        # one multiply-add per tap per output element, as the official count (a depthwise 3x3 conv)
        return 2 * output.numel() * inputs[1].shape[2]


class LKP(nn.Module):
    """Large-kernel perception: 1x1 reduce, large depthwise conv, 1x1, then a 1x1 to per-pixel kernels."""

    def __init__(self, dim, lks=7, sks=3, groups=8):
        super().__init__()
        hidden = dim // 2
        self.cv1 = ConvBN(dim, hidden)
        self.act = nn.ReLU()
        self.cv2 = ConvBN(hidden, hidden, lks, padding=(lks - 1) // 2, groups=hidden)
        self.cv3 = ConvBN(hidden, hidden)
        self.cv4 = nn.Conv2d(hidden, sks ** 2 * dim // groups, kernel_size=1)
        self.norm = nn.GroupNorm(num_groups=dim // groups, num_channels=sks ** 2 * dim // groups)
        self.sks = sks
        self.weight_groups = dim // groups

    def forward(self, x):
        x = self.act(self.cv3(self.cv2(self.act(self.cv1(x)))))
        # GroupNorm on a channels-last map (a fused conv's output) is 4-15x slower than on NCHW in PyTorch: the
        # copy costs less, and the per-pixel kernels come out NCHW, the layout the aggregation reads fastest
        w = self.norm(self.cv4(x).contiguous())
        B, _, H, W = w.shape
        return w.view(B, self.weight_groups, self.sks * self.sks, H, W)  # int ** int is a float in TorchScript


class LSConv(nn.Module):
    """LS convolution (residual branch only; the block adds the shortcut).

    ``bn`` normalizes the output of a kernel predicted from the input itself, so it has no static conv to
    fold into; it stays a BatchNorm in the deploy form, as in the official deploy form."""
    unfoldable_norms = ('bn',)

    def __init__(self, dim):
        super().__init__()
        self.lkp = LKP(dim, lks=7, sks=3, groups=8)
        self.ska = SKA()
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x):
        return self.bn(self.ska(x, self.lkp(x)))


class Attention(nn.Module):
    """Multi-head attention on a feature map with a learned bias per head and per offset (|dy|, |dx|).

    The bias table is learned for a ``resolution`` x ``resolution`` grid (4 x 4 at 224 px). With
    ``bias_resize='table'`` (the classifier), a grid that fits in it is indexed exactly and a larger grid resizes
    the table bicubically (as timm does for LeViT-style biases), so any input size runs. ``'matrix'`` is the
    authors' detection and segmentation backbones (a 14 x 14 table): the whole bias matrix of the table's grid
    is resized to the grid's (:func:`resized_bias_matrix`)."""
    __jit_ignored_attributes__ = ['_bias_cache']  # eager only: a scripted model computes the bias on every call

    def __init__(self, dim, key_dim, num_heads, attn_ratio, resolution, bias_resize: str = 'table'):
        super().__init__()
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.val_dim = int(attn_ratio * key_dim)
        self.resolution = resolution
        self.resize_matrix = bias_resize == 'matrix'
        qk_dim = key_dim * num_heads
        v_dim = self.val_dim * num_heads
        self.split = (qk_dim, qk_dim, v_dim)
        self.qkv = ConvBN(dim, v_dim + 2 * qk_dim)
        self.dw = ConvBN(qk_dim, qk_dim, 3, 1, 1, groups=qk_dim)
        self.proj = nn.Sequential(nn.ReLU(), ConvBN(v_dim, dim, bn_weight_init=0.0))
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, resolution * resolution))
        self._bias_cache = {}  # {(H, W, device, dtype, table version): bias}, eager only

    def train(self, mode: bool = True):
        self._bias_cache = {}
        return super().train(mode)

    def attention_bias(self, H: int, W: int) -> torch.Tensor:
        """The (heads, H*W, H*W) bias for an H x W grid; cached in eval mode until the table changes (not
        under torch.compile, where it is part of the graph, nor in a scripted or traced graph, which computes it
        on every call)."""
        table = self.attention_biases
        if torch.jit.is_scripting():
            return self._bias(table, H, W)
        if torch.fx._symbolic_trace.is_fx_symbolic_tracing():  # H and W are known when the graph runs
            return self._bias(table, H, W)
        cache = not self.training and not torch.compiler.is_compiling()
        key = (H, W, table.device, table.dtype, table._version) if cache else None
        if cache and key in self._bias_cache:
            return self._bias_cache[key]
        bias = self._bias(table, H, W)
        if cache:
            self._bias_cache = {key: bias.detach()}
        return bias

    def _bias(self, table: torch.Tensor, H: int, W: int) -> torch.Tensor:
        if self.resize_matrix:
            return resized_bias_matrix(table, self.resolution, H, W)
        return relative_position_bias(table, self.resolution, H, W)

    @torch.jit.unused
    def _cpu_attention(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                       bias: torch.Tensor) -> Optional[torch.Tensor]:
        """softmax(q^T k * scale + bias) on the official (B, heads, dim, N) layout, returned as (B, heads, dim,
        N), the map's; None but in eager CPU runs. There PyTorch's SDPA has only its math path for this attention
        (a float bias, values wider than keys), which costs about twice these three products (LSNet-T's last
        stage: 111 vs 47 us at batch 1, 1.06 vs 0.53 ms at 16). Graphs (traced, scripted, compiled, exported)
        keep SDPA."""
        if not (is_plain_eager() and q.is_cpu):
            return None
        attn = ((q * self.key_dim ** -0.5).transpose(-1, -2) @ k).add_(bias).softmax(-1)
        return v @ attn.transpose(-1, -2)

    def forward(self, x):
        B, _, H, W = x.shape
        q, k, v = self.qkv(x).split(self.split, dim=1)
        q = self.dw(q)
        N, heads = H * W, self.num_heads
        bias = self.attention_bias(H, W).to(q.dtype)
        # (B, heads, dim, N): the official layout
        q = q.reshape(B, heads, self.key_dim, N)
        k = k.reshape(B, heads, self.key_dim, N)
        v = v.reshape(B, heads, self.val_dim, N)
        out = None if torch.jit.is_scripting() else self._cpu_attention(q, k, v, bias)
        if out is None:
            # SDPA's fused GPU kernels take each token's features contiguous and a 4-D bias: a transposed view or
            # a (heads, N, N) bias sends every call to the math fallback
            q = q.transpose(-1, -2).contiguous()
            k = k.transpose(-1, -2).contiguous()
            v = v.transpose(-1, -2).contiguous()
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias[None]).transpose(-1, -2)
        x = out.reshape(B, heads * self.val_dim, H, W)
        return self.proj(x)


class LSNetBlock(nn.Module):
    """Even blocks: RepVGG depthwise mixer + squeeze-excite. Odd blocks: LS convolution, or attention in the
    last stage. Then a 2x FFN. Every mixer but RepVGGDW (whose shortcut is part of its merged kernel) and the
    FFN are residual branches with stochastic depth."""

    def __init__(self, dim, key_dim, num_heads, attn_ratio, resolution, stage_idx, block_idx, drop_path=0.0,
                 bias_resize='table'):
        super().__init__()
        if block_idx % 2 == 0:
            self.mixer = RepVGGDW(dim)
            self.se = SqueezeExcite(dim, rd_ratio=0.25)
        else:
            if stage_idx == 3:
                self.mixer = Attention(dim, key_dim, num_heads, attn_ratio, resolution, bias_resize)
            else:
                self.mixer = LSConv(dim)
            self.se = nn.Identity()
        self.mixer_has_shortcut = isinstance(self.mixer, RepVGGDW)
        self.ffn = ConvBNFFN(dim, dim * 2)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        if self.mixer_has_shortcut:
            x = self.mixer(x)
        else:
            x = x + self.drop_path(self.mixer(x))
        x = self.se(x)
        if self.training:  # stochastic depth on the branch
            return x + self.drop_path(self.ffn(x))
        return self.ffn.residual(x)  # the same sum; the deploy form takes it in the FFN's last pass


def _lsnet_stage(in_dim, dim, depth, key_dim, num_heads, attn_ratio, resolution, stage_idx,
                 downsample=True, drop_path: Union[float, List[float]] = 0.0, bias_resize='table') -> Stage:
    downsample = nn.Sequential(
        ConvBN(in_dim, in_dim, 3, 2, 1, groups=in_dim),
        ConvBN(in_dim, dim, 1),
    ) if downsample else None
    dpr = drop_path if isinstance(drop_path, (list, tuple)) else [drop_path] * depth
    return Stage(downsample, [
        LSNetBlock(dim, key_dim, num_heads, attn_ratio, resolution, stage_idx, j, dpr[j], bias_resize)
        for j in range(depth)])


class LSNet(BNLinearHead, StagedBackbone):
    arch = 'LSNet'
    deploy_fused_convs = True

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'avg',
            embed_dim: Tuple[int, ...] = (64, 128, 256, 384),
            depth: Tuple[int, ...] = (0, 2, 8, 10),
            key_dim: Tuple[int, ...] = (16, 16, 16, 16),
            num_heads: Tuple[int, ...] = (3, 3, 3, 4),
            img_size: int = 224,
            drop_rate: float = 0.0,
            drop_path_rate: float = 0.0,
            distillation: bool = False,
            attn_resolution: Optional[int] = None,
            attn_bias_resize: str = 'table',
    ):
        """``attn_resolution``: the side of the last stage's attention-bias tables (default: its grid at
        ``img_size``, 4 at 224 px); ``attn_bias_resize``: how a bias meets another grid, ``'table'`` or the
        authors' dense backbones' ``'matrix'`` (see :class:`Attention`). Their detectors and segmentors use
        ``attn_resolution=14, attn_bias_resize='matrix'``."""
        super().__init__()
        if attn_bias_resize not in _BIAS_RESIZE:
            raise ValueError(f'attn_bias_resize must be one of {_BIAS_RESIZE}, got {attn_bias_resize!r}')
        if attn_resolution is not None and (not isinstance(attn_resolution, int) or attn_resolution < 1):
            raise ValueError(f'attn_resolution must be a positive int (the bias table side), got {attn_resolution!r}')
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.distillation = distillation
        self.num_features = embed_dim[-1]
        e0 = embed_dim[0]
        self.stem = nn.Sequential(
            ConvBN(in_chans, e0 // 4, 3, 2, 1), nn.ReLU(),
            ConvBN(e0 // 4, e0 // 2, 3, 2, 1), nn.ReLU(),
            ConvBN(e0 // 2, e0, 3, 2, 1),
        )
        stem_stride = 8
        # the attention bias table is sized for the grid the last stage sees at img_size
        resolution = img_size // stem_stride
        dpr = calculate_drop_path_rates(drop_path_rate, list(depth), stagewise=True)
        stages = []
        self.feature_info = []
        in_dim = e0
        for i, dim in enumerate(embed_dim):
            if i > 0:
                resolution = (resolution - 1) // 2 + 1
            stages.append(_lsnet_stage(
                in_dim, dim, depth[i], key_dim[i], num_heads[i], dim / (key_dim[i] * num_heads[i]),
                attn_resolution or resolution, stage_idx=i, downsample=i > 0,
                drop_path=dpr[i], bias_resize=attn_bias_resize))
            self.feature_info.append(dict(num_chs=dim, reduction=stem_stride * 2 ** i, module=f'stages.{i}'))
            in_dim = dim
        self.stages = nn.Sequential(*stages)
        self.reset_classifier(num_classes, global_pool)

    @torch.jit.ignore
    def no_weight_decay(self):
        return {k for k, _ in self.named_parameters() if 'attention_biases' in k}


def _official_key(key: str) -> Optional[str]:
    """Map one key of the official layout (patch_embed / blocks1..4 / head) to the zoo's."""
    if key.endswith('attention_bias_idxs'):
        return None  # an index buffer the zoo derives from the grid size
    key = re.sub(r'^patch_embed\.', 'stem.', key)
    m = re.match(r'^blocks(\d)\.(\d+)\.(.*)$', key)
    if m:
        # blocks{i+1} of stage i > 0 starts with the two downsampling Conv–BNs
        stage, idx, rest = int(m[1]) - 1, int(m[2]), m[3]
        if stage > 0 and idx < 2:
            key = f'stages.{stage}.downsample.{idx}.{rest}'
        else:
            key = f'stages.{stage}.blocks.{idx - 2 if stage > 0 else idx}.{rest}'
    return levit_unit_key(key)


def _resize_bias_tables(state_dict: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Attention-bias tables of another side than the model's (an ImageNet file, 4 x 4, into the detection
    backbone's 14 x 14) resized bicubically as square images, as the authors' dense backbones do on loading."""
    own = model.state_dict()
    out = dict(state_dict)
    for k, v in state_dict.items():
        want = own.get(k)
        if not k.endswith('attention_biases') or want is None or v.shape == want.shape or v.shape[0] != want.shape[0]:
            continue
        s1, s2 = math.isqrt(v.shape[1]), math.isqrt(want.shape[1])
        if s1 * s1 == v.shape[1] and s2 * s2 == want.shape[1]:
            grid = F.interpolate(v.reshape(1, -1, s1, s1).float(), size=[s2, s2], mode='bicubic', align_corners=False)
            out[k] = grid.reshape(v.shape[0], s2 * s2).to(v.dtype)
    return out


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Official checkpoints (``{'model': ...}`` unwrapped by the loader, distilled ones included) and zoo
    checkpoints both load, their attention-bias tables resized to the model's side where it differs; the
    result is checked against the model before anything is copied."""
    if 'stem.0.conv.weight' not in state_dict:
        state_dict = {new: v for k, v in state_dict.items() if (new := _official_key(k)) is not None}
    state_dict = _resize_bias_tables(state_dict, model)
    return check_pretrained(distillation_head_for(state_dict, model), model)


def _cfg(url: str = '', **kwargs):
    return {
        'url': url,
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (4, 4),
        'crop_pct': 0.9, 'interpolation': 'bicubic',
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'stem.0.conv', 'classifier': 'head.fc',
        'license': 'mit', 'paper_ids': 'arXiv:2503.23135', **kwargs,
    }


_RELEASE = 'https://huggingface.co/jameslahm/lsnet/resolve/main/'
default_cfgs = generate_default_cfgs({
    'lsnet_t.in1k': _cfg(url=_RELEASE + 'lsnet_t.pth', hf_hub_id='jameslahm/lsnet_t'),
    'lsnet_t.in1k_distill': _cfg(url=_RELEASE + 'lsnet_t_distill.pth', hf_hub_id='jameslahm/lsnet_t_distill'),
    'lsnet_s.in1k': _cfg(url=_RELEASE + 'lsnet_s.pth', hf_hub_id='jameslahm/lsnet_s'),
    'lsnet_s.in1k_distill': _cfg(url=_RELEASE + 'lsnet_s_distill.pth', hf_hub_id='jameslahm/lsnet_s_distill'),
    'lsnet_b.in1k': _cfg(url=_RELEASE + 'lsnet_b.pth', hf_hub_id='jameslahm/lsnet_b'),
    'lsnet_b.in1k_distill': _cfg(url=_RELEASE + 'lsnet_b_distill.pth', hf_hub_id='jameslahm/lsnet_b_distill'),
})


FAMILY = register_family(Family(
    name='lsnet',
    display='LSNet',
    model_cls=LSNet,
    default_cfgs=default_cfgs,
    checkpoint_filter=checkpoint_filter_fn,
    docs_page='lsnet.md',
    dense_norm_keys=(),  # the authors' mmdet / mmseg backbone: the classifier's trunk, no output norms
    dense_model_kwargs=dict(attn_resolution=14, attn_bias_resize='matrix'),
))


@FAMILY.register
def lsnet_t(pretrained=False, **kwargs) -> LSNet:
    """LSNet-T: 11.4M params, 0.3G MACs, 74.9 / 76.1 (distilled) ImageNet top-1."""
    args = dict(embed_dim=(64, 128, 256, 384), depth=(0, 2, 8, 10), num_heads=(3, 3, 3, 4))
    return FAMILY.build('lsnet_t', pretrained, **dict(args, **kwargs))


@FAMILY.register
def lsnet_s(pretrained=False, **kwargs) -> LSNet:
    """LSNet-S: 16.1M params, 0.5G MACs, 77.8 / 79.0 (distilled) ImageNet top-1."""
    args = dict(embed_dim=(96, 192, 320, 448), depth=(1, 2, 8, 10), num_heads=(3, 3, 3, 4))
    return FAMILY.build('lsnet_s', pretrained, **dict(args, **kwargs))


@FAMILY.register
def lsnet_b(pretrained=False, **kwargs) -> LSNet:
    """LSNet-B: 23.2M params, 1.3G MACs, 80.3 / 81.6 (distilled) ImageNet top-1."""
    args = dict(embed_dim=(128, 256, 384, 512), depth=(4, 6, 8, 10), num_heads=(3, 3, 3, 4))
    return FAMILY.build('lsnet_b', pretrained, **dict(args, **kwargs))
