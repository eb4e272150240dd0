"""FasterNet: Run, Don't Walk: Chasing Higher FLOPS for Faster Neural Networks (Chen et al., CVPR 2023),
official code: JierunChen/FasterNet.

Stem: 4x4 stride-4 Conv–BN. Stages 2-4 start with a 2x2 stride-2 Conv–BN that doubles the width.
Block: partial convolution (PConv: a dense 3x3 conv over the first C/4 channels, the other channels passed
through) -> 1x1 conv (2C) -> BN -> activation -> 1x1 conv (C), residual. Activation GELU for T0/T1, ReLU
for T2/S/M/L. Head: global average pool -> 1x1 conv to 1280 -> activation -> Linear.

PConv runs as split -> conv -> concatenate, the official training form; the official ``slicing`` form
(in-place write into a clone) computes the same thing and is not faster here (docs/benchmarks.md). The network
runs channels-last. Deploy form: every BN folds into the conv before it and each block's MLP runs on fused
kernels with the activation inside the first layer.
"""
import re
from typing import Dict, Sequence

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, calculate_drop_path_rates
from timm.models import generate_default_cfgs

from ..layers import ConvBN, FoldedCopy, FusedMlp, fold_bn_into_prev, on_channels
from ..weights import check_pretrained
from ._base import Stage, StagedBackbone
from .registry import Family, register_family

__all__ = ['FasterNet', 'PartialConv', 'FasterNetBlock']

_ACT = {'gelu': nn.GELU, 'relu': nn.ReLU}


class PartialConv(nn.Module):
    """A dense 3x3 conv over the first ``dim // n_div`` channels; the rest pass through unchanged."""

    def __init__(self, dim: int, n_div: int = 4):
        super().__init__()
        self.dim_conv = dim // n_div
        self.dim_untouched = dim - self.dim_conv
        self.partial_conv3 = nn.Conv2d(self.dim_conv, self.dim_conv, 3, 1, 1, bias=False)

    def forward(self, x):
        x1, x2 = torch.split(x, (self.dim_conv, self.dim_untouched), dim=1)
        return torch.cat((self.partial_conv3(x1), x2), dim=1)


class FasterNetBlock(FoldedCopy, nn.Module):
    def __init__(self, dim: int, n_div: int = 4, mlp_ratio: float = 2.0, act: str = 'relu', drop_path: float = 0.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.act = act
        self.spatial_mixing = PartialConv(dim, n_div)
        self.mlp = nn.Sequential(
            nn.Conv2d(dim, hidden, 1, bias=False), nn.BatchNorm2d(hidden), _ACT[act](),
            nn.Conv2d(hidden, dim, 1, bias=False),
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        shortcut = x
        x = self.spatial_mixing(x)
        if self.fused:  # the MLP runs on the NHWC view
            x = self.mlp(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        else:
            x = self.mlp(x)
        return shortcut + self.drop_path(x)

    def _fold(self):
        """The MLP's BN into its first conv, the MLP on fused kernels."""
        self.mlp = FusedMlp(fold_bn_into_prev(self.mlp[0], self.mlp[1]), self.mlp[3], self.act)


class ConvHead(nn.Module):
    """1x1 conv (as a Linear on pooled features) -> activation -> dropout -> Linear."""

    def __init__(self, dim: int, num_classes: int, hidden: int = 1280, act: str = 'relu', drop: float = 0.0):
        super().__init__()
        self.conv = nn.Conv2d(dim, hidden, 1, bias=False)
        self.act = _ACT[act]()
        self.drop = nn.Dropout(drop)
        self.fc = nn.Linear(hidden, num_classes) if num_classes > 0 else nn.Identity()
        self.num_features = hidden

    def forward(self, x, pre_logits: bool = False):
        x = self.drop(self.act(self.conv(x[:, :, None, None]).flatten(1)))
        return x if pre_logits else self.fc(x)


class FasterNet(StagedBackbone):
    arch = 'FasterNet'
    channels_last = True

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'avg',
            embed_dim: int = 96,
            depths: Sequence[int] = (1, 2, 8, 2),
            mlp_ratio: float = 2.0,
            n_div: int = 4,
            feature_dim: int = 1280,
            act: str = 'relu',
            drop_rate: float = 0.0,
            drop_path_rate: float = 0.0,
    ):
        super().__init__()
        if act not in _ACT:
            raise ValueError(f'FasterNet activation must be one of {sorted(_ACT)}, got {act!r}')
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.act = act
        self.feature_dim = feature_dim
        dims = [embed_dim * 2 ** i for i in range(len(depths))]
        self.num_features = dims[-1]
        self.stem = ConvBN(in_chans, embed_dim, 4, 4)
        dpr = calculate_drop_path_rates(drop_path_rate, list(depths), stagewise=True)
        stages, self.feature_info = [], []
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            downsample = ConvBN(dims[i - 1], dim, 2, 2) if i > 0 else None
            stages.append(Stage(downsample, [FasterNetBlock(dim, n_div, mlp_ratio, act, p) for p in dpr[i]]))
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2 ** i, module=f'stages.{i}'))
        self.stages = nn.Sequential(*stages)
        self.reset_classifier(num_classes, global_pool)
        self.apply(self._init_weights)

    def _make_head(self, num_classes: int) -> nn.Module:
        return ConvHead(self.num_features, num_classes, self.feature_dim, self.act, self.drop_rate)


def _official_to_timm_key(key: str) -> str:
    """The official layout interleaves stages and merges in one Sequential: ``stages.{0,2,4,6}`` are the
    stages, ``stages.{1,3,5}`` the merges that start stages 1-3; timm's nests them as ``downsample``."""
    m = re.match(r'^stages\.(\d)\.(.*)$', key)
    if m:
        idx = int(m[1])
        return f'stages.{(idx + 1) // 2}.downsample.{m[2]}' if idx % 2 else f'stages.{idx // 2}.{m[2]}'
    key = re.sub(r'^avgpool_pre_head\.1\.', 'conv_head.', key)
    return re.sub(r'^head\.', 'classifier.', key)


def _timm_key(key: str) -> str:
    key = re.sub(r'^patch_embed\.proj\.', 'stem.conv.', key)
    key = re.sub(r'^patch_embed\.norm\.', 'stem.bn.', key)
    key = re.sub(r'\.downsample\.reduction\.', '.downsample.conv.', key)
    key = re.sub(r'\.downsample\.norm\.', '.downsample.bn.', key)
    key = re.sub(r'^conv_head\.', 'head.conv.', key)
    return re.sub(r'^classifier\.', 'head.fc.', key)


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Official files (raw state dicts), timm's files and zoo files load; the result is checked against the
    model before anything is copied."""
    if 'avgpool_pre_head.1.weight' in state_dict or 'stages.1.reduction.weight' in state_dict:
        state_dict = {_official_to_timm_key(k): v for k, v in state_dict.items()}
    if 'patch_embed.proj.weight' in state_dict:
        state_dict = {_timm_key(k): v for k, v in state_dict.items()}
    return check_pretrained(state_dict, model)


def _cfg(url: str = '', **kwargs):
    return {
        'url': url,
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        'crop_pct': 0.9, 'interpolation': 'bicubic',
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'stem.conv', 'classifier': 'head.fc',
        'license': 'apache-2.0', 'paper_ids': 'arXiv:2303.03667', **kwargs,
    }


_RELEASE = 'https://github.com/JierunChen/FasterNet/releases/download/v1.0/'
# hf_hub_id names timm's copy of the authors' file; url is the authors' release
default_cfgs = generate_default_cfgs({
    'fasternet_t0.in1k': _cfg(_RELEASE + 'fasternet_t0-epoch.281-val_acc1.71.9180.pth', hf_hub_id='timm/'),
    'fasternet_t1.in1k': _cfg(_RELEASE + 'fasternet_t1-epoch.291-val_acc1.76.2180.pth', hf_hub_id='timm/'),
    'fasternet_t2.in1k': _cfg(_RELEASE + 'fasternet_t2-epoch.289-val_acc1.78.8860.pth', hf_hub_id='timm/'),
    'fasternet_s.in1k': _cfg(_RELEASE + 'fasternet_s-epoch.299-val_acc1.81.2840.pth', hf_hub_id='timm/'),
    'fasternet_m.in1k': _cfg(_RELEASE + 'fasternet_m-epoch.291-val_acc1.82.9620.pth', hf_hub_id='timm/'),
    'fasternet_l.in1k': _cfg(_RELEASE + 'fasternet_l-epoch.299-val_acc1.83.5060.pth', hf_hub_id='timm/'),
})


FAMILY = register_family(Family(
    name='fasternet',
    display='FasterNet',
    model_cls=FasterNet,
    default_cfgs=default_cfgs,
    checkpoint_filter=checkpoint_filter_fn,
    docs_page='fasternet.md',
    dense_out_norm='bn',
    dense_norm_keys=('norm0', 'norm2', 'norm4', 'norm6'),  # the authors' mmdet backbone: named by stage index
))


@FAMILY.register
def fasternet_t0(pretrained=False, **kwargs) -> FasterNet:
    """FasterNet-T0: 3.9M params, 0.34G FLOPs (MACs), 71.9 ImageNet top-1."""
    args = dict(embed_dim=40, depths=(1, 2, 8, 2), act='gelu')
    return FAMILY.build('fasternet_t0', pretrained, **dict(args, **kwargs))


@FAMILY.register
def fasternet_t1(pretrained=False, **kwargs) -> FasterNet:
    """FasterNet-T1: 7.6M params, 0.85G FLOPs (MACs), 76.2 ImageNet top-1."""
    args = dict(embed_dim=64, depths=(1, 2, 8, 2), act='gelu')
    return FAMILY.build('fasternet_t1', pretrained, **dict(args, **kwargs))


@FAMILY.register
def fasternet_t2(pretrained=False, **kwargs) -> FasterNet:
    """FasterNet-T2: 15.0M params, 1.90G FLOPs (MACs), 78.9 ImageNet top-1."""
    args = dict(embed_dim=96, depths=(1, 2, 8, 2), act='relu')
    return FAMILY.build('fasternet_t2', pretrained, **dict(args, **kwargs))


@FAMILY.register
def fasternet_s(pretrained=False, **kwargs) -> FasterNet:
    """FasterNet-S: 31.1M params, 4.55G FLOPs (MACs), 81.3 ImageNet top-1."""
    args = dict(embed_dim=128, depths=(1, 2, 13, 2), act='relu')
    return FAMILY.build('fasternet_s', pretrained, **dict(args, **kwargs))


@FAMILY.register
def fasternet_m(pretrained=False, **kwargs) -> FasterNet:
    """FasterNet-M: 53.5M params, 8.72G FLOPs (MACs), 83.0 ImageNet top-1."""
    args = dict(embed_dim=144, depths=(3, 4, 18, 3), act='relu')
    return FAMILY.build('fasternet_m', pretrained, **dict(args, **kwargs))


@FAMILY.register
def fasternet_l(pretrained=False, **kwargs) -> FasterNet:
    """FasterNet-L: 93.4M params, 15.49G FLOPs (MACs), 83.5 ImageNet top-1."""
    args = dict(embed_dim=192, depths=(3, 4, 18, 3), act='relu')
    return FAMILY.build('fasternet_l', pretrained, **dict(args, **kwargs))
