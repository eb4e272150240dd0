"""SHViT: Single-Head Vision Transformer with Memory Efficient Macro Design (Yun & Ro, CVPR 2024), official
code: ysj9909/SHViT.

A 16x16 patchify stem (four 3x3 stride-2 Conv–BNs with ReLUs) feeds three stages at strides 16, 32, 64.
Every block is a residual depthwise 3x3 Conv–BN, a mixer, and a residual 2x FFN of 1x1 Conv–BNs. The mixer
of the later stages is single-head self-attention on a partial split of the channels: the first ``pdim``
channels are group-normed, projected to one query/key of width ``qk_dim`` and a value of width ``pdim``,
attended over every position, concatenated back with the untouched channels and projected (ReLU + 1x1
Conv–BN). The first stage has no mixer. Between stages: a residual depthwise conv and FFN at the old width,
a patch merging (1x1 expand x4, depthwise 3x3 stride 2, squeeze-excite, 1x1 project), then the same pair at
the new width. The head is BN + Linear.

Deploy form: every Conv–BN folds into a conv, each residual depthwise Conv–BN into one conv holding the
identity, the group norm's affine map into the qkv conv, the head into one Linear. It runs on channels-last
maps, where every 1x1 conv (FFN, attention qkv and projection, patch merging, squeeze-excite) is a Linear on
the channels, run by oneDNN with its ReLU fused and its weight packed once (``FusedLinear``); only the
depthwise and stem convs stay convs. Each residual FFN and attention adds its shortcut in its last Linear's
pass (``forward_add``), and the first conv reads the NCHW image as it comes. On this CPU that is 1.1-1.3x
timm's fused ``shvit_*`` at batch 1 and 16 (docs/shvit.md). The attention works on the (B, N, C) token
view: q, k, v come from one Linear with the query and key zero-padded to the value width, since equal widths
in token-major layout are what SDPA's fused CPU kernel takes (unequal widths fall back to its slower
reference path); the padding adds nothing to q.k. The train form keeps the official NCHW layout.

The attention runs through ``scaled_dot_product_attention`` with one head; parameter names follow timm's
``shvit`` (which loads here, as do the authors' files). Stochastic depth, absent from the official blocks, is
added on the mixer and FFN branches; with ``drop_path_rate=0`` (the default) the model is the official one.
"""
import re
from typing import Dict, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, calculate_drop_path_rates
from timm.models import generate_default_cfgs

from ..layers import (ConvBN, ConvBNFFN, FoldedCopy, FusedLinear, FusedMlp, ResidualConvBN, SqueezeExcite,
                      fold_affine_into_next, norm_affine, on_channels)
from ..weights import check_pretrained
from ._base import BNLinearHead, Stage, StagedBackbone, distillation_head_for, levit_unit_key
from .registry import Family, register_family

__all__ = ['SHViT', 'SingleHeadAttention']


class SingleHeadAttention(FoldedCopy, nn.Module):
    """SHSA: one attention head over the first ``pdim`` channels; the other channels pass to the projection
    untouched. The key width ``qk_dim`` sets the scale, ``qk_dim ** -0.5``."""

    def __init__(self, dim: int, qk_dim: int, pdim: int):
        super().__init__()
        self.dim, self.qk_dim, self.pdim = dim, qk_dim, pdim
        self.pre_norm = nn.GroupNorm(1, pdim)
        self.qkv = ConvBN(pdim, 2 * qk_dim + pdim)
        self.proj = nn.Sequential(nn.ReLU(), ConvBN(dim, dim, bn_weight_init=0.0))

    def forward(self, x):
        if self.fused:
            return self._forward_tokens(x, False)
        B, _, H, W = x.shape
        x1, x2 = x.split([self.pdim, self.dim - self.pdim], dim=1)
        qkv = self.qkv(self.pre_norm(x1)).flatten(2)
        # (B, d, N) -> (B, 1 head, N, d)
        q, k, v = qkv.split([self.qk_dim, self.qk_dim, self.pdim], dim=1)
        q, k, v = q.transpose(1, 2).unsqueeze(1), k.transpose(1, 2).unsqueeze(1), v.transpose(1, 2).unsqueeze(1)
        x1 = F.scaled_dot_product_attention(q, k, v, scale=self.qk_dim ** -0.5)
        # back to (B, pdim, H, W) as a contiguous copy: torch.cat is much slower on a transposed view
        x1 = x1.squeeze(1).transpose(1, 2).reshape(B, self.pdim, H, W)
        return self.proj(torch.cat([x1, x2], dim=1))

    def residual(self, x):
        """``x + self(x)``: the deploy form adds the shortcut in the projection's pass."""
        if self.fused:
            return self._forward_tokens(x, True)
        return x + self.forward(x)

    def _forward_tokens(self, x, residual: bool):
        """Deploy form, on the tokens of the channels-last map ((B, N, C) is a view of it): q, k, v come out
        of one Linear token-major and of equal width, the layout SDPA's fused kernel takes without copies; the
        projection is a Linear on the concatenated tokens, which adds the tokens themselves if ``residual``."""
        B, _, H, W = x.shape
        tokens = x.permute(0, 2, 3, 1).flatten(1, 2)
        x1 = tokens[..., :self.pdim]
        # a one-group norm standardizes each sample over all its values, whatever their order: over (N, pdim)
        x1 = F.group_norm(x1, 1, eps=self.pre_norm.eps)
        q, k, v = self.qkv(x1).unsqueeze(1).chunk(3, dim=-1)
        x1 = F.scaled_dot_product_attention(q, k, v, scale=self.qk_dim ** -0.5).squeeze(1)
        if self.qk_dim > self.pdim:  # then the value was padded too (to qk_dim)
            x1 = x1[..., :self.pdim]
        x = torch.relu_(torch.cat([x1, tokens[..., self.pdim:]], dim=-1))
        x = self.proj.forward_add(x, tokens) if residual else self.proj(x)
        return x.view(B, H, W, self.dim).permute(0, 3, 1, 2)

    def _fold(self):
        # the norm's per-channel affine map moves into the (BN-folded) 1x1 qkv conv; the standardization stays
        scale, shift, self.pre_norm = norm_affine(self.pre_norm)
        conv = fold_affine_into_next(self.qkv.fuse(), scale, shift)
        # a token Linear whose q, k, v are zero-padded to one width: padded q, k dims add 0 to q.k, padded
        # v dims are cropped
        width = max(self.qk_dim, self.pdim)
        weight, bias = conv.weight.flatten(1), conv.bias
        padded_w, padded_b = weight.new_zeros(3 * width, self.pdim), bias.new_zeros(3 * width)
        splits = [self.qk_dim, self.qk_dim, self.pdim]
        for i, (w, b) in enumerate(zip(weight.split(splits), bias.split(splits))):
            padded_w[i * width:i * width + len(w)] = w
            padded_b[i * width:i * width + len(b)] = b
        self.qkv = FusedLinear.from_weights(padded_w, padded_b)
        proj = self.proj[1].fuse()
        self.proj = FusedLinear.from_weights(proj.weight, proj.bias)


class FFN(FoldedCopy, ConvBNFFN):
    """The 2x FFN of 1x1 Conv–BNs. Deploy form: one FusedMlp (ReLU fused into the first GEMM) on the
    channels of the channels-last map."""

    def forward(self, x):
        return self._branch(x)

    def _branch(self, x):
        if self.fused:  # the MLP on the NHWC view
            return self.mlp(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.pw2(self.act(self.pw1(x)))  # ConvBNFFN's forward (TorchScript has no super())

    def residual(self, x):
        """``x + self(x)``: the deploy form adds the shortcut in the second Linear's pass."""
        if self.fused:
            x = x.permute(0, 2, 3, 1)
            return self.mlp.forward_add(x, x).permute(0, 3, 1, 2)
        return x + self._branch(x)

    def _fold(self):
        self.mlp = FusedMlp(self.pw1.fuse(), self.pw2.fuse(), 'relu')
        del self.pw1, self.act, self.pw2


class ResidualFFN(FFN):
    def forward(self, x):
        return self.residual(x)


class PatchMerging(FoldedCopy, nn.Module):
    """1x1 expand x4 + ReLU, depthwise 3x3 stride 2 + ReLU, squeeze-excite, 1x1 project. Deploy form: the 1x1
    convs are Linears on the channels (the first with its ReLU fused), the excitation's two layers Linears on
    the pooled vector."""

    def __init__(self, dim: int, out_dim: int):
        super().__init__()
        hidden = dim * 4
        self.conv1 = ConvBN(dim, hidden)
        self.act1 = nn.ReLU()
        self.conv2 = ConvBN(hidden, hidden, 3, 2, 1, groups=hidden)
        self.act2 = nn.ReLU()
        self.se = SqueezeExcite(hidden, 0.25)
        self.conv3 = ConvBN(hidden, out_dim)

    def forward(self, x):
        if self.fused:  # the 1x1 convs are Linears on the NHWC view
            x = self.se(torch.relu_(self.conv2(self.conv1(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))))
            return self.conv3(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        return self.conv3(self.se(self.act2(self.conv2(self.act1(self.conv1(x))))))

    def _fold(self):
        conv1, conv3 = self.conv1.fuse(), self.conv3.fuse()
        self.conv1 = FusedLinear.from_weights(conv1.weight, conv1.bias, 'relu')
        self.conv2 = self.conv2.fuse()
        self.se = self.se.fuse()  # its two layers Linears on the pooled vector
        self.conv3 = FusedLinear.from_weights(conv3.weight, conv3.bias)
        del self.act1, self.act2


class SHViTBlock(nn.Module):
    """Residual depthwise Conv–BN, then (later stages) residual single-head attention, then residual FFN."""
    __constants__ = ['has_mixer']  # TorchScript compiles no mixer call for a block without one

    def __init__(self, dim: int, qk_dim: int, pdim: int, attention: bool, drop_path: float = 0.0):
        super().__init__()
        self.conv = ResidualConvBN(dim, 3, bn_weight_init=0.0)
        self.mixer = SingleHeadAttention(dim, qk_dim, pdim) if attention else nn.Identity()
        self.has_mixer = attention
        self.ffn = FFN(dim, dim * 2)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        x = self.conv(x)
        if self.training:  # stochastic depth on the branches
            if self.has_mixer:
                x = x + self.drop_path(self.mixer(x))
            return x + self.drop_path(self.ffn(x))
        # the same sums; a deploy form takes each in its branch's last pass
        if self.has_mixer:
            x = self.mixer.residual(x)
        return self.ffn.residual(x)


def _downsample(in_dim: int, dim: int) -> nn.Sequential:
    return nn.Sequential(
        ResidualConvBN(in_dim), ResidualFFN(in_dim, in_dim * 2),
        PatchMerging(in_dim, dim),
        ResidualConvBN(dim), ResidualFFN(dim, dim * 2),
    )


class SHViT(BNLinearHead, StagedBackbone):
    arch = 'SHViT'
    deploy_fused_convs = True
    deploy_channels_last = True

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'avg',
            embed_dim: Tuple[int, ...] = (128, 256, 384),
            partial_dim: Tuple[int, ...] = (32, 64, 96),
            qk_dim: Tuple[int, ...] = (16, 16, 16),
            depth: Tuple[int, ...] = (1, 2, 3),
            types: Tuple[str, ...] = ('s', 's', 's'),
            drop_rate: float = 0.0,
            drop_path_rate: float = 0.0,
            distillation: bool = False,
    ):
        super().__init__()
        if any(t not in ('i', 's') for t in types):
            raise ValueError(f'SHViT stage types are "i" (no attention) or "s" (single-head attention), got {types}')
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.distillation = distillation
        self.num_features = embed_dim[-1]
        e0 = embed_dim[0]
        self.stem = nn.Sequential(
            ConvBN(in_chans, e0 // 8, 3, 2, 1), nn.ReLU(),
            ConvBN(e0 // 8, e0 // 4, 3, 2, 1), nn.ReLU(),
            ConvBN(e0 // 4, e0 // 2, 3, 2, 1), nn.ReLU(),
            ConvBN(e0 // 2, e0, 3, 2, 1),
        )
        dpr = calculate_drop_path_rates(drop_path_rate, list(depth), stagewise=True)
        stages = []
        self.feature_info = []
        for i, dim in enumerate(embed_dim):
            stages.append(Stage(
                _downsample(embed_dim[i - 1], dim) if i > 0 else None,
                [SHViTBlock(dim, qk_dim[i], partial_dim[i], types[i] == 's', dpr[i][j]) for j in range(depth[i])],
            ))
            self.feature_info.append(dict(num_chs=dim, reduction=16 * 2 ** i, module=f'stages.{i}'))
        self.stages = nn.Sequential(*stages)
        self.reset_classifier(num_classes, global_pool)


def _official_key(key: str) -> str:
    """Map a key of the authors' layout (``patch_embed``, ``blocks1..3`` with each later stage's list opening
    with its downsampling: [conv + FFN] pair, patch merging, [conv + FFN] pair) to timm's, then to the zoo's."""
    m = re.match(r'^blocks(\d)\.(\d+)\.(.*)$', key)
    if m:
        stage, idx, rest = int(m[1]) - 1, int(m[2]), m[3]
        if stage == 0:
            key = f'stages.0.blocks.{idx}.{rest}'
        elif idx == 1:
            key = f'stages.{stage}.downsample.2.{rest}'
        elif idx in (0, 2):
            # a Sequential of the residual conv (0) and the residual FFN (1)
            unit, _, rest = rest.partition('.')
            key = f'stages.{stage}.downsample.{int(unit) + (0 if idx == 0 else 3)}.{rest}'
        else:
            key = f'stages.{stage}.blocks.{idx - 3}.{rest}'
    return _timm_key(key)


def _timm_key(key: str) -> str:
    return levit_unit_key(re.sub(r'^patch_embed\.', 'stem.', key))


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """The authors' files (``{'model': ...}`` unwrapped by the loader, 1x1 kernels stored 2-D or 4-D), timm's
    ``shvit_*`` weights and zoo files all load; the result is checked against the model before anything is
    copied."""
    if 'patch_embed.0.c.weight' in state_dict:
        official = any(k.startswith('blocks1.') for k in state_dict)
        state_dict = {(_official_key(k) if official else _timm_key(k)): v for k, v in state_dict.items()}
    # the authors' loader reshapes 1x1 conv kernels stored as 2-D matrices in their files; so does this one
    shapes = {k: v.shape for k, v in model.state_dict().items()}
    state_dict = {k: v[:, :, None, None] if v.ndim == 2 and len(shapes.get(k, ())) == 4 and shapes[k][2:] == (1, 1)
                  else v for k, v in state_dict.items()}
    return check_pretrained(distillation_head_for(state_dict, model), model)


def _cfg(url: str = '', **kwargs):
    return {
        'url': url,
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (4, 4),
        'crop_pct': 0.875, 'interpolation': 'bicubic',
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'stem.0.conv', 'classifier': 'head.fc',
        'license': 'mit', 'paper_ids': 'arXiv:2401.16456', **kwargs,
    }


_RELEASE = 'https://github.com/ysj9909/SHViT/releases/download/v1.0/'
# timm's Hub copies of the authors' weights (timm's layout), with the authors' release files as URLs
default_cfgs = generate_default_cfgs({
    'shvit_s1.in1k': _cfg(url=_RELEASE + 'shvit_s1.pth', hf_hub_id='timm/'),
    'shvit_s2.in1k': _cfg(url=_RELEASE + 'shvit_s2.pth', hf_hub_id='timm/'),
    'shvit_s3.in1k': _cfg(url=_RELEASE + 'shvit_s3.pth', hf_hub_id='timm/'),
    'shvit_s4.in1k': _cfg(url=_RELEASE + 'shvit_s4.pth', hf_hub_id='timm/', input_size=(3, 256, 256)),
})


FAMILY = register_family(Family(
    name='shvit',
    display='SHViT',
    model_cls=SHViT,
    default_cfgs=default_cfgs,
    checkpoint_filter=checkpoint_filter_fn,
    docs_page='shvit.md',
    num_stages=3,
    timm_equivalents={f'shvit_s{i}': f'shvit_s{i}' for i in range(1, 5)},
    dense_norm_keys=(),  # the authors' mmdet backbone: the classifier's trunk, no output norms
))


@FAMILY.register
def shvit_s1(pretrained=False, **kwargs) -> SHViT:
    """SHViT-S1: 6.3M params, 241M FLOPs, 72.8 ImageNet top-1 at 224."""
    args = dict(embed_dim=(128, 224, 320), depth=(2, 4, 5), partial_dim=(32, 48, 68), types=('i', 's', 's'))
    return FAMILY.build('shvit_s1', pretrained, **dict(args, **kwargs))


@FAMILY.register
def shvit_s2(pretrained=False, **kwargs) -> SHViT:
    """SHViT-S2: 11.4M params, 366M FLOPs, 75.2 ImageNet top-1 at 224."""
    args = dict(embed_dim=(128, 308, 448), depth=(2, 4, 5), partial_dim=(32, 66, 96), types=('i', 's', 's'))
    return FAMILY.build('shvit_s2', pretrained, **dict(args, **kwargs))


@FAMILY.register
def shvit_s3(pretrained=False, **kwargs) -> SHViT:
    """SHViT-S3: 14.2M params, 601M FLOPs, 77.4 ImageNet top-1 at 224."""
    args = dict(embed_dim=(192, 352, 448), depth=(3, 5, 5), partial_dim=(48, 75, 96), types=('i', 's', 's'))
    return FAMILY.build('shvit_s3', pretrained, **dict(args, **kwargs))


@FAMILY.register
def shvit_s4(pretrained=False, **kwargs) -> SHViT:
    """SHViT-S4: 16.5M params, 986M FLOPs, 79.4 ImageNet top-1 at 256."""
    args = dict(embed_dim=(224, 336, 448), depth=(4, 7, 6), partial_dim=(48, 72, 96), types=('i', 's', 's'))
    return FAMILY.build('shvit_s4', pretrained, **dict(args, **kwargs))
