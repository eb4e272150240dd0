"""LITv2: Fast Vision Transformers with HiLo Attention (Pan et al., NeurIPS 2022), official code: ziplab/LITv2.

A 4x4 patch embedding with LayerNorm, then four stages of pre-norm residual blocks on (B, H, W, C) tokens.
The first two stages have no attention: each block is a LayerNorm and an MLP whose hidden layer passes a
3x3 depthwise conv before its GELU. The last two add HiLo attention before the MLP: of the heads, the share
``alpha`` are Lo-Fi heads, where every query attends to keys/values taken from the ``ws x ws`` average-pooled
map, and the rest are Hi-Fi heads, attending inside non-overlapping ``ws x ws`` windows; the two outputs
are projected separately and concatenated. Released: alpha 0.9, ws 2 in stage 3 and 1 in stage 4 (ws 1 is
plain multi-head attention). Between stages, a deformable token merging (DTM): a 2x2 stride-2 deformable
conv whose offsets are predicted by a plain 2x2 conv, then BatchNorm and GELU. The head: LayerNorm, global
average pool, Linear.

Where this differs from the released classification code, and why:

- The deformable conv runs on ``torchvision.ops.deform_conv2d`` (CPU and CUDA kernels, autograd on both)
  instead of the authors' compiled CUDA extension; parameter names and offset layout are the same, so
  released checkpoints load unchanged.
- Any input size runs, as in the authors' detection backbone: the image is zero-padded to a multiple of 4;
  HiLo zero-pads its input (after the norm) to a multiple of the window and crops back; DTM zero-pads odd
  maps to even ones (the authors' code asserts even sizes; a padded map gives ``ceil(H / 2)`` rows rather
  than dropping the last). At sizes where no padding is needed (224, any multiple of 32) nothing changes.
- Every attention computes through ``scaled_dot_product_attention``.

Deploy form: each DTM's BatchNorm folds into its deformable conv's weight and bias (the offsets do not
depend on it). Every Linear of the attention and the MLP runs oneDNN's kernel on a weight packed once
(``FusedLinear``), the MLP's depthwise conv too, with its GELU in the same pass (``FusedConv2d``), as the
other convs (``deploy_fused_convs``).
"""
import math
import re
from typing import Dict, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, calculate_drop_path_rates, trunc_normal_
from timm.models import generate_default_cfgs

from ..layers import (DeformConv2dPack, FoldedCopy, FusedConv2d, FusedLinear, LayerNorm2d, NormLinear, fold_bn,
                      on_tokens, pad_to_multiple)
from ..weights import check_pretrained
from ._base import StagedBackbone, TokenStage
from .registry import Family, register_family

__all__ = ['LITv2', 'HiLo', 'DeformableTokenMerging']

# padding depends on the map size: a traced graph (torch.fx) calls the function
torch.fx.wrap('pad_to_multiple')


class HiLo(FoldedCopy, nn.Module):
    """HiLo attention on (B, H, W, C) tokens.

    ``int(num_heads * alpha)`` Lo-Fi heads attend from every position to the ``window_size``-pooled map;
    the other heads attend inside ``window_size x window_size`` windows. ``window_size=1`` makes every
    head a Lo-Fi head without pooling: plain multi-head self-attention. Scale: ``head_dim ** -0.5``."""

    def __init__(self, dim: int, num_heads: int = 8, window_size: int = 2, alpha: float = 0.5,
                 qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'HiLo needs dim divisible by num_heads, got {dim} and {num_heads}')
        self.head_dim = dim // num_heads
        self.ws = window_size
        self.l_heads = num_heads if window_size == 1 else int(num_heads * alpha)
        self.h_heads = num_heads - self.l_heads
        self.l_dim, self.h_dim = self.l_heads * self.head_dim, self.h_heads * self.head_dim
        if self.l_heads:
            self.sr = nn.AvgPool2d(window_size, window_size) if window_size > 1 else nn.Identity()
            self.l_q = nn.Linear(dim, self.l_dim, bias=qkv_bias)
            self.l_kv = nn.Linear(dim, self.l_dim * 2, bias=qkv_bias)
            self.l_proj = nn.Linear(self.l_dim, self.l_dim)
        if self.h_heads:
            self.h_qkv = nn.Linear(dim, self.h_dim * 3, bias=qkv_bias)
            self.h_proj = nn.Linear(self.h_dim, self.h_dim)

    def hifi(self, x):
        B, H, W, _ = x.shape
        ws, hd = self.ws, self.head_dim
        hg, wg = H // ws, W // ws
        qkv = self.h_qkv(x).view(B, hg, ws, wg, ws, 3, self.h_heads, hd)
        # (3, B * windows, heads, ws * ws, head_dim): each window is one attention batch entry
        qkv = qkv.permute(5, 0, 1, 3, 6, 2, 4, 7).reshape(3, B * hg * wg, self.h_heads, ws * ws, hd)
        x = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        x = x.view(B, hg, wg, self.h_heads, ws, ws, hd).permute(0, 1, 4, 2, 5, 3, 6).reshape(B, H, W, self.h_dim)
        return self.h_proj(x)

    def lofi(self, x):
        B, H, W, C = x.shape
        hd = self.head_dim
        q = self.l_q(x).view(B, H * W, self.l_heads, hd).transpose(1, 2)
        pooled = self.sr(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # the pool on the NCHW view
        kv = self.l_kv(pooled).reshape(B, pooled.shape[1] * pooled.shape[2], 2, self.l_heads, hd).permute(2, 0, 3, 1, 4)
        x = F.scaled_dot_product_attention(q, kv[0], kv[1])
        return self.l_proj(x.transpose(1, 2).reshape(B, H, W, self.l_dim))

    def _fold(self):
        for name in ('l_q', 'l_kv', 'l_proj', 'h_qkv', 'h_proj'):
            if hasattr(self, name):
                layer = getattr(self, name)
                setattr(self, name, FusedLinear.from_weights(layer.weight, layer.bias))

    def forward(self, x):
        x, H, W = pad_to_multiple(x, self.ws)
        # the layers of a kind of head exist only if it has heads; TorchScript evaluates hasattr when scripting
        if not hasattr(self, 'h_qkv'):  # no Hi-Fi heads
            out = self.lofi(x)
        elif not hasattr(self, 'l_q'):  # no Lo-Fi heads
            out = self.hifi(x)
        else:
            out = torch.cat([self.hifi(x), self.lofi(x)], dim=-1)
        return out[:, :H, :W]


class DWMlp(FoldedCopy, nn.Module):
    """Linear, 3x3 depthwise conv, GELU, Linear on (B, H, W, C) tokens (the conv sees a channels-last view).
    Deploy form: the GELU computed in the conv's pass."""

    def __init__(self, dim: int, hidden: int, drop: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.dwconv = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden)
        self.act = nn.GELU()
        self.drop = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        x = self.fc1(x)
        x = self.dwconv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # the conv on the NCHW view
        return self.drop(self.fc2(self.drop(self.act(x))))

    def _fold(self):
        self.fc1 = FusedLinear.from_weights(self.fc1.weight, self.fc1.bias)
        self.fc2 = FusedLinear.from_weights(self.fc2.weight, self.fc2.bias)
        self.dwconv, self.act = FusedConv2d.from_conv(self.dwconv, act='gelu'), nn.Identity()


class LITBlock(nn.Module):
    """Pre-norm residual block: HiLo attention (where the stage has it), then the depthwise-conv MLP."""
    __constants__ = ['has_attn']  # TorchScript compiles the attention branch only where there is one

    def __init__(self, dim: int, num_heads: int, attention: bool, window_size: int, alpha: float,
                 mlp_ratio: float = 4.0, drop: float = 0.0, drop_path: float = 0.0):
        super().__init__()
        if attention:
            self.norm1 = nn.LayerNorm(dim)
            self.attn = HiLo(dim, num_heads, window_size, alpha)
        self.has_attn = attention
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = DWMlp(dim, int(dim * mlp_ratio), drop)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        if self.has_attn:
            x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class DeformableTokenMerging(FoldedCopy, nn.Module):
    """DTM: 2x2 stride-2 deformable conv (offsets from a plain 2x2 conv), BatchNorm, GELU; on NCHW maps.
    An odd map is zero-padded to even first."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        self.dconv = DeformConv2dPack(dim, out_dim, 2, 2, pad_to_stride=True)
        self.norm = nn.BatchNorm2d(out_dim)
        self.act = nn.GELU()

    def forward(self, x):
        return self.act(self.norm(self.dconv(x)))

    def _fold(self):
        self.dconv = self.dconv.scaled(*fold_bn(self.norm))
        self.norm = nn.Identity()


class PatchEmbed(nn.Module):
    """4x4 stride-4 conv after zero-padding the image to a multiple of 4, then LayerNorm over channels."""

    def __init__(self, in_chans: int, dim: int, patch_size: int = 4):
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_chans, dim, patch_size, patch_size)
        self.norm = LayerNorm2d(dim)

    def forward(self, x):
        x, _, _ = pad_to_multiple(x, self.patch_size, channels_last=False)
        return self.norm(self.proj(x))


class LITv2(StagedBackbone):
    arch = 'LITv2'
    deploy_fused_convs = True

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'avg',
            embed_dim: int = 96,
            depths: Tuple[int, ...] = (2, 2, 6, 2),
            num_heads: Tuple[int, ...] = (3, 6, 12, 24),
            has_msa: Tuple[bool, ...] = (False, False, True, True),
            local_ws: Tuple[int, ...] = (0, 0, 2, 1),
            alpha: float = 0.9,
            mlp_ratio: float = 4.0,
            drop_rate: float = 0.0,
            drop_path_rate: float = 0.0,
    ):
        super().__init__()
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        dims = [embed_dim * 2 ** i for i in range(len(depths))]
        self.num_features = dims[-1]
        self.stem = PatchEmbed(in_chans, embed_dim)
        dpr = calculate_drop_path_rates(drop_path_rate, list(depths), stagewise=True)
        stages = []
        self.feature_info = []
        for i, dim in enumerate(dims):
            stages.append(TokenStage(
                DeformableTokenMerging(dims[i - 1], dim) if i > 0 else None,
                [LITBlock(dim, num_heads[i], has_msa[i], local_ws[i], alpha, mlp_ratio, drop_rate, dpr[i][j])
                 for j in range(depths[i])],
            ))
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2 ** i, module=f'stages.{i}'))
        self.stages = nn.Sequential(*stages)
        self.norm = LayerNorm2d(self.num_features)
        self.reset_classifier(num_classes, global_pool)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        """The authors' init: truncated normal (std 0.02) Linears with zero bias; the MLP's depthwise conv
        normal with std sqrt(2 / fan_out); other convs keep PyTorch's default."""
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, DWMlp):
            conv = m.dwconv
            fan_out = conv.kernel_size[0] * conv.kernel_size[1] * conv.out_channels // conv.groups
            nn.init.normal_(conv.weight, 0, math.sqrt(2.0 / fan_out))
            nn.init.zeros_(conv.bias)

    def _make_head(self, num_classes: int) -> nn.Module:
        return NormLinear(nn.Identity(), self.num_features, num_classes, drop=self.drop_rate)


def _official_key(key: str) -> str:
    """Map a key of the authors' layout (``patch_embed``, ``layers.i`` = blocks then the DTM to stage i+1,
    ``norm``, ``head``) to the zoo's."""
    key = re.sub(r'^patch_embed\.', 'stem.', key)
    m = re.match(r'^layers\.(\d)\.downsample\.(.*)$', key)
    if m:
        rest = re.sub(r'^norm_layer\.', 'norm.', m[2])
        return f'stages.{int(m[1]) + 1}.downsample.{rest}'
    key = re.sub(r'^layers\.(\d)\.blocks\.', r'stages.\1.blocks.', key)
    key = key.replace('.mlp.dwconv.dwconv.', '.mlp.dwconv.')
    return re.sub(r'^head\.', 'head.fc.', key)


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """The authors' files (``{'model': ...}`` unwrapped by the loader) and zoo files both load; the result is
    checked against the model before anything is copied."""
    if 'patch_embed.proj.weight' in state_dict:
        state_dict = {_official_key(k): v for k, v in state_dict.items()}
    return check_pretrained(state_dict, model)


def _cfg(url: str = '', **kwargs):
    return {
        'url': url,
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        'crop_pct': 0.875, 'interpolation': 'bicubic',
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'stem.proj', 'classifier': 'head.fc',
        'license': 'apache-2.0', 'paper_ids': 'arXiv:2205.13213', **kwargs,
    }


_RELEASE = 'https://github.com/ziplab/LITv2/releases/download/v1.0/'
default_cfgs = generate_default_cfgs({
    'litv2_s.in1k': _cfg(url=_RELEASE + 'litv2_s.pth'),
    'litv2_m.in1k': _cfg(url=_RELEASE + 'litv2_m.pth'),
    'litv2_b.in1k': _cfg(url=_RELEASE + 'litv2_b.pth'),
    'litv2_b.in1k_384': _cfg(url=_RELEASE + 'litv2_b_384.pth', input_size=(3, 384, 384), pool_size=(12, 12),
                             crop_pct=1.0),
})


FAMILY = register_family(Family(
    name='litv2',
    display='LITv2',
    model_cls=LITv2,
    default_cfgs=default_cfgs,
    checkpoint_filter=checkpoint_filter_fn,
    docs_page='litv2.md',
    dense_out_norm='ln',
    dense_ln_eps=1e-5,  # nn.LayerNorm
    # the authors' mmdet backbone has norm1..3 (its first output has none), their mmseg backbone norm0..3
    dense_norm_keys=('norm0', 'norm1', 'norm2', 'norm3'),
    static_hw='HiLo pads each stage-3 map to a multiple of its window with sizes computed in Python',
))


@FAMILY.register
def litv2_s(pretrained=False, **kwargs) -> LITv2:
    """LITv2-S: 28M params, 3.7G FLOPs, 82.0 ImageNet top-1."""
    args = dict(embed_dim=96, depths=(2, 2, 6, 2), num_heads=(3, 6, 12, 24))
    return FAMILY.build('litv2_s', pretrained, **dict(args, **kwargs))


@FAMILY.register
def litv2_m(pretrained=False, **kwargs) -> LITv2:
    """LITv2-M: 49M params, 7.5G FLOPs, 83.3 ImageNet top-1."""
    args = dict(embed_dim=96, depths=(2, 2, 18, 2), num_heads=(3, 6, 12, 24))
    return FAMILY.build('litv2_m', pretrained, **dict(args, **kwargs))


@FAMILY.register
def litv2_b(pretrained=False, **kwargs) -> LITv2:
    """LITv2-B: 87M params, 13.2G FLOPs, 83.6 ImageNet top-1 (84.7 fine-tuned at 384)."""
    args = dict(embed_dim=128, depths=(2, 2, 18, 2), num_heads=(4, 8, 16, 32))
    return FAMILY.build('litv2_b', pretrained, **dict(args, **kwargs))
