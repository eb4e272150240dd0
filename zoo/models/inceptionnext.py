"""InceptionNeXt: When Inception Meets ConvNeXt (Yu et al., CVPR 2024), official code: sail-sg/inceptionnext.

A MetaNeXt network: stem 4x4 stride-4 conv + BatchNorm; stages 2-4 start with BatchNorm + 2x2 stride-2 conv.
Block: Inception depthwise conv -> BatchNorm -> 1x1 conv MLP (GELU) -> layer scale, residual. MLP ratio 4,
3 in the last stage. Head: global average pool -> Linear(C, 3C) -> GELU -> LayerNorm -> Linear.

The Inception depthwise conv splits the channels, in this order, into an identity part (C - 3g channels),
a 3x3 depthwise branch, a 1 x band and a band x 1 depthwise branch (g channels each, g = int(C * ratio);
band 11 and ratio 1/8, atto band 9 and ratio 1/4), and concatenates them back in the same order.

The network runs channels-last (its 1x1 convs are 4x faster that way on CPU at batch 1, docs/benchmarks.md).
Deploy form: the stem and downsampling BatchNorms fold into their convs, each block's BatchNorm into the
first MLP layer and its layer scale into the second, and the MLP runs on fused kernels.
"""
import re
from typing import Dict, Sequence

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import ConvMlp, DropPath, calculate_drop_path_rates
from timm.models import generate_default_cfgs

from ..layers import (ConvBN, FoldedCopy, FusedMlp, NormConv, fold_affine_into_next, fold_scale_into_prev, norm_affine,
                      on_channels)
from ..weights import check_pretrained
from ._base import Stage, StagedBackbone
from .registry import Family, register_family

__all__ = ['InceptionNeXt', 'InceptionDWConv2d', 'MetaNeXtBlock']

# timm names the same architectures inception_next_* (its checkpoints load into the zoo's models)


class InceptionDWConv2d(nn.Module):
    def __init__(self, dim: int, square_kernel_size: int = 3, band_kernel_size: int = 11,
                 branch_ratio: float = 0.125):
        super().__init__()
        gc = int(dim * branch_ratio)
        self.dwconv_hw = nn.Conv2d(gc, gc, square_kernel_size, padding=square_kernel_size // 2, groups=gc)
        self.dwconv_w = nn.Conv2d(gc, gc, (1, band_kernel_size), padding=(0, band_kernel_size // 2), groups=gc)
        self.dwconv_h = nn.Conv2d(gc, gc, (band_kernel_size, 1), padding=(band_kernel_size // 2, 0), groups=gc)
        self.split_sizes = (dim - 3 * gc, gc, gc, gc)

    def forward(self, x):
        x_id, x_hw, x_w, x_h = torch.split(x, self.split_sizes, dim=1)
        return torch.cat((x_id, self.dwconv_hw(x_hw), self.dwconv_w(x_w), self.dwconv_h(x_h)), dim=1)


class MetaNeXtBlock(FoldedCopy, nn.Module):
    def __init__(self, dim: int, mlp_ratio: float = 4.0, band_kernel_size: int = 11, branch_ratio: float = 0.125,
                 ls_init_value: float = 1e-6, drop_path: float = 0.0):
        super().__init__()
        self.token_mixer = InceptionDWConv2d(dim, 3, band_kernel_size, branch_ratio)
        self.norm = nn.BatchNorm2d(dim)
        self.mlp = ConvMlp(dim, int(mlp_ratio * dim), act_layer=nn.GELU)
        self.gamma = nn.Parameter(torch.full((dim,), ls_init_value)) if ls_init_value else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        shortcut = x
        x = self.token_mixer(x)
        if self.fused:  # norm and layer scale are inside the MLP, which runs on the NHWC view
            x = self.mlp(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        else:
            x = self.mlp(self.norm(x))
            if self.gamma is not None:
                x = x * self.gamma.view(1, -1, 1, 1)
        return shortcut + self.drop_path(x)

    def _fold(self):
        """BatchNorm into ``mlp.fc1``, layer scale into ``mlp.fc2``, the MLP on fused kernels."""
        scale, shift, _ = norm_affine(self.norm)
        fc1 = fold_affine_into_next(self.mlp.fc1, scale, shift)
        fc2 = self.mlp.fc2 if self.gamma is None else fold_scale_into_prev(self.mlp.fc2, self.gamma)
        self.norm, self.gamma = nn.Identity(), None
        self.mlp = FusedMlp(fc1, fc2, 'gelu')


class MlpHead(nn.Module):
    """Linear(C, 3C) -> GELU -> LayerNorm -> dropout -> Linear, over pooled features."""

    def __init__(self, dim: int, num_classes: int, mlp_ratio: float = 3.0, drop: float = 0.0):
        super().__init__()
        hidden = int(mlp_ratio * dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.norm = nn.LayerNorm(hidden, eps=1e-6)
        self.drop = nn.Dropout(drop)
        self.fc2 = nn.Linear(hidden, num_classes) if num_classes > 0 else nn.Identity()
        self.num_features = hidden

    def forward(self, x, pre_logits: bool = False):
        x = self.drop(self.norm(self.act(self.fc1(x))))
        return x if pre_logits else self.fc2(x)


class InceptionNeXt(StagedBackbone):
    arch = 'InceptionNeXt'
    head_classifier = 'fc2'
    channels_last = True

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'avg',
            depths: Sequence[int] = (3, 3, 9, 3),
            dims: Sequence[int] = (96, 192, 384, 768),
            mlp_ratios: Sequence[float] = (4, 4, 4, 3),
            band_kernel_size: int = 11,
            branch_ratio: float = 0.125,
            ls_init_value: float = 1e-6,
            drop_rate: float = 0.0,
            drop_path_rate: float = 0.0,
    ):
        super().__init__()
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.num_features = dims[-1]
        self.stem = ConvBN(in_chans, dims[0], 4, 4, bias=True)
        dpr = calculate_drop_path_rates(drop_path_rate, list(depths), stagewise=True)
        stages, self.feature_info = [], []
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            downsample = NormConv(nn.BatchNorm2d(dims[i - 1]), nn.Conv2d(dims[i - 1], dim, 2, 2)) if i > 0 else None
            stages.append(Stage(downsample, [
                MetaNeXtBlock(dim, mlp_ratios[i], band_kernel_size, branch_ratio, ls_init_value, p) for p in dpr[i]]))
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2 ** i, module=f'stages.{i}'))
        self.stages = nn.Sequential(*stages)
        self.reset_classifier(num_classes, global_pool)
        self.apply(self._init_weights)

    def _make_head(self, num_classes: int) -> nn.Module:
        return MlpHead(self.num_features, num_classes, drop=self.drop_rate)


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Official files and timm's (the same names) keep the stem as ``stem.0`` / ``stem.1``; the zoo's stem is
    a Conv–BN unit. Checked against the model before anything is copied."""
    state_dict = {re.sub(r'^stem\.0\.', 'stem.conv.', re.sub(r'^stem\.1\.', 'stem.bn.', k)): v
                  for k, v in state_dict.items()}
    return check_pretrained(state_dict, model)


def _cfg(url: str = '', **kwargs):
    return {
        'url': url,
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        'crop_pct': 0.875, 'interpolation': 'bicubic',
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'stem.conv', 'classifier': 'head.fc2',
        'license': 'apache-2.0', 'paper_ids': 'arXiv:2303.16900', **kwargs,
    }


_RELEASE = 'https://github.com/sail-sg/inceptionnext/releases/download/model/'
# hf_hub_id names timm's copy of the authors' file (same keys)
default_cfgs = generate_default_cfgs({
    'inceptionnext_atto.sail_in1k': _cfg(_RELEASE + 'inceptionnext_atto.pth',
                                         hf_hub_id='timm/inception_next_atto.sail_in1k'),
    'inceptionnext_tiny.sail_in1k': _cfg(_RELEASE + 'inceptionnext_tiny.pth',
                                         hf_hub_id='timm/inception_next_tiny.sail_in1k'),
    'inceptionnext_small.sail_in1k': _cfg(_RELEASE + 'inceptionnext_small.pth',
                                          hf_hub_id='timm/inception_next_small.sail_in1k'),
    'inceptionnext_base.sail_in1k': _cfg(_RELEASE + 'inceptionnext_base.pth',
                                         hf_hub_id='timm/inception_next_base.sail_in1k', crop_pct=0.95),
    'inceptionnext_base.sail_in1k_384': _cfg(_RELEASE + 'inceptionnext_base_384.pth',
                                             hf_hub_id='timm/inception_next_base.sail_in1k_384',
                                             input_size=(3, 384, 384), pool_size=(12, 12), crop_pct=1.0),
})


FAMILY = register_family(Family(
    name='inceptionnext',
    display='InceptionNeXt',
    model_cls=InceptionNeXt,
    default_cfgs=default_cfgs,
    checkpoint_filter=checkpoint_filter_fn,
    docs_page='inceptionnext.md',
    timm_equivalents={f'inceptionnext_{v}': f'inception_next_{v}' for v in ('atto', 'tiny', 'small', 'base')},
))


@FAMILY.register
def inceptionnext_atto(pretrained=False, **kwargs) -> InceptionNeXt:
    """InceptionNeXt-A: 4.2M params, 0.51G MACs, 75.3 ImageNet top-1."""
    args = dict(depths=(2, 2, 6, 2), dims=(40, 80, 160, 320), band_kernel_size=9, branch_ratio=0.25)
    return FAMILY.build('inceptionnext_atto', pretrained, **dict(args, **kwargs))


@FAMILY.register
def inceptionnext_tiny(pretrained=False, **kwargs) -> InceptionNeXt:
    """InceptionNeXt-T: 28M params, 4.2G MACs, 82.3 ImageNet top-1."""
    args = dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768))
    return FAMILY.build('inceptionnext_tiny', pretrained, **dict(args, **kwargs))


@FAMILY.register
def inceptionnext_small(pretrained=False, **kwargs) -> InceptionNeXt:
    """InceptionNeXt-S: 49M params, 8.4G MACs, 83.5 ImageNet top-1."""
    args = dict(depths=(3, 3, 27, 3), dims=(96, 192, 384, 768))
    return FAMILY.build('inceptionnext_small', pretrained, **dict(args, **kwargs))


@FAMILY.register
def inceptionnext_base(pretrained=False, **kwargs) -> InceptionNeXt:
    """InceptionNeXt-B: 87M params, 14.9G MACs, 84.0 ImageNet top-1 (85.2 at 384 px)."""
    args = dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024))
    return FAMILY.build('inceptionnext_base', pretrained, **dict(args, **kwargs))
