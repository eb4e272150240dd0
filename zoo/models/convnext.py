"""ConvNeXt: A ConvNet for the 2020s (Liu et al., CVPR 2022), official code: facebookresearch/ConvNeXt.

Stem: 4x4 stride-4 conv + LayerNorm over channels. Stages 2-4 start with LayerNorm + 2x2 stride-2 conv.
Block: 7x7 depthwise conv -> LayerNorm -> Linear(C, 4C) -> GELU -> Linear(4C, C) -> layer scale, residual.
Head: global average pool -> LayerNorm -> Linear. The atto/femto/pico/nano widths are the ones timm and
ConvNeXt-V2 define, built from the V1 block above.

The network runs on channels-last tensors: the block's LayerNorm and Linears then act on the contiguous
NHWC view without a copy, and the depthwise conv is faster too (docs/benchmarks.md). The deploy form
(``zoo.reparameterize``) moves each block's LayerNorm affine into the first Linear and the layer scale
into the second, and each downsampling LayerNorm's affine into its conv.
"""
import re
from typing import Dict, Sequence

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, Mlp, calculate_drop_path_rates
from timm.models import generate_default_cfgs

from ..layers import (FoldedCopy, FusedMlp, LayerNorm2d, NormConv, NormLinear, fold_affine_into_next, fold_scale_into_prev,
                      norm_affine)
from ..weights import check_pretrained
from ._base import Stage, StagedBackbone, official_staged_key
from .registry import Family, register_family

__all__ = ['ConvNeXt', 'ConvNeXtBlock']


class ConvNeXtBlock(FoldedCopy, nn.Module):
    def __init__(self, dim: int, mlp_ratio: float = 4.0, ls_init_value: float = 1e-6, drop_path: float = 0.0,
                 kernel_size: int = 7):
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(mlp_ratio * dim), act_layer=nn.GELU)
        self.gamma = nn.Parameter(torch.full((dim,), ls_init_value)) if ls_init_value else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        shortcut = x
        x = self.conv_dw(x).permute(0, 2, 3, 1)
        x = self.mlp(self.norm(x))
        if self.gamma is not None:
            x = x * self.gamma
        return shortcut + self.drop_path(x.permute(0, 3, 1, 2))

    def _fold(self):
        """LayerNorm affine into ``mlp.fc1``, layer scale into ``mlp.fc2``, the MLP on fused kernels."""
        scale, shift, self.norm = norm_affine(self.norm)
        fc1 = fold_affine_into_next(self.mlp.fc1, scale, shift)
        fc2 = self.mlp.fc2 if self.gamma is None else fold_scale_into_prev(self.mlp.fc2, self.gamma)
        self.gamma = None
        self.mlp = FusedMlp(fc1, fc2, 'gelu')


class ConvNeXt(StagedBackbone):
    arch = 'ConvNeXt'
    channels_last = True

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'avg',
            depths: Sequence[int] = (3, 3, 9, 3),
            dims: Sequence[int] = (96, 192, 384, 768),
            ls_init_value: float = 1e-6,
            head_init_scale: float = 1.0,
            drop_rate: float = 0.0,
            drop_path_rate: float = 0.0,
    ):
        super().__init__()
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.num_features = dims[-1]
        self.stem = nn.Sequential(nn.Conv2d(in_chans, dims[0], 4, 4), LayerNorm2d(dims[0], eps=1e-6))
        dpr = calculate_drop_path_rates(drop_path_rate, list(depths), stagewise=True)
        stages, self.feature_info = [], []
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            downsample = NormConv(LayerNorm2d(dims[i - 1], eps=1e-6), nn.Conv2d(dims[i - 1], dim, 2, 2)) \
                if i > 0 else None
            stages.append(Stage(downsample, [ConvNeXtBlock(dim, 4.0, ls_init_value, p) for p in dpr[i]]))
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2 ** i, module=f'stages.{i}'))
        self.stages = nn.Sequential(*stages)
        self.reset_classifier(num_classes, global_pool)
        self.apply(self._init_weights)
        self._scale_classifier(head_init_scale)

    def _make_head(self, num_classes: int) -> nn.Module:
        # the head's LayerNorm stays when num_classes=0 (timm's pre-logits)
        return NormLinear(nn.LayerNorm(self.num_features, eps=1e-6), self.num_features, num_classes, self.drop_rate)


_OFFICIAL_BLOCK = {'dwconv': 'conv_dw', 'pwconv1': 'mlp.fc1', 'pwconv2': 'mlp.fc2', 'norm': 'norm', 'gamma': 'gamma'}


def _official_block_key(rest: str) -> str:
    m = re.match(r'^(\w+)(.*)$', rest)
    return _OFFICIAL_BLOCK.get(m[1], m[1]) + m[2]


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Official files (``{'model': ...}``, unwrapped by the loader), timm's files (the zoo's names; atto to
    nano hold their MLP as 1x1 convs) and zoo files load; the result is checked before anything is copied."""
    if 'downsample_layers.0.0.weight' in state_dict:
        state_dict = {official_staged_key(k, _official_block_key): v for k, v in state_dict.items()}
    out = {}
    for k, v in state_dict.items():
        if re.search(r'\.mlp\.fc[12]\.weight$', k) and v.ndim == 4:
            v = v.flatten(1)  # timm's conv_mlp form: the same weights as 1x1 convs
        out[k] = v
    return check_pretrained(out, model)


def _cfg(url: str = '', **kwargs):
    return {
        'url': url,
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        'crop_pct': 0.875, 'interpolation': 'bicubic',
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'stem.0', 'classifier': 'head.fc',
        'license': 'mit', 'paper_ids': 'arXiv:2201.03545', **kwargs,
    }


_FB = 'https://dl.fbaipublicfiles.com/convnext/'
_RSB = 'https://github.com/rwightman/pytorch-image-models/releases/download/v0.1-rsb-weights/'
_TIMM_TEST = dict(test_input_size=(3, 288, 288), test_crop_pct=0.95)
_384 = dict(input_size=(3, 384, 384), pool_size=(12, 12), crop_pct=1.0, crop_mode='squash')
# hf_hub_id 'timm/' names timm's copy of each file (same weights, the zoo's key names); url is the original
# release (the authors' for tiny..xlarge; atto..nano are timm-trained, no official weights exist)
default_cfgs = generate_default_cfgs({
    'convnext_atto.d2_in1k': _cfg(_RSB + 'convnext_atto_d2-01bb0f51.pth', hf_hub_id='timm/', **_TIMM_TEST),
    'convnext_femto.d1_in1k': _cfg(_RSB + 'convnext_femto_d1-d71d5b4c.pth', hf_hub_id='timm/', **_TIMM_TEST),
    'convnext_pico.d1_in1k': _cfg(_RSB + 'convnext_pico_d1-10ad7f0d.pth', hf_hub_id='timm/', **_TIMM_TEST),
    'convnext_nano.d1h_in1k': _cfg(_RSB + 'convnext_nano_d1h-7eb4bdea.pth', hf_hub_id='timm/', crop_pct=0.95,
                                   test_input_size=(3, 288, 288), test_crop_pct=1.0),
    'convnext_tiny.fb_in1k': _cfg(_FB + 'convnext_tiny_1k_224_ema.pth', hf_hub_id='timm/'),
    'convnext_tiny.fb_in22k_ft_in1k': _cfg(_FB + 'convnext_tiny_22k_1k_224.pth', hf_hub_id='timm/'),
    'convnext_tiny.fb_in22k_ft_in1k_384': _cfg(_FB + 'convnext_tiny_22k_1k_384.pth', hf_hub_id='timm/', **_384),
    'convnext_tiny.fb_in22k': _cfg(_FB + 'convnext_tiny_22k_224.pth', hf_hub_id='timm/', num_classes=21841),
    'convnext_small.fb_in1k': _cfg(_FB + 'convnext_small_1k_224_ema.pth', hf_hub_id='timm/'),
    'convnext_small.fb_in22k_ft_in1k': _cfg(_FB + 'convnext_small_22k_1k_224.pth', hf_hub_id='timm/'),
    'convnext_small.fb_in22k_ft_in1k_384': _cfg(_FB + 'convnext_small_22k_1k_384.pth', hf_hub_id='timm/', **_384),
    'convnext_small.fb_in22k': _cfg(_FB + 'convnext_small_22k_224.pth', hf_hub_id='timm/', num_classes=21841),
    'convnext_base.fb_in1k': _cfg(_FB + 'convnext_base_1k_224_ema.pth', hf_hub_id='timm/'),
    'convnext_base.fb_in1k_384': _cfg(_FB + 'convnext_base_1k_384.pth', **_384),
    'convnext_base.fb_in22k_ft_in1k': _cfg(_FB + 'convnext_base_22k_1k_224.pth', hf_hub_id='timm/'),
    'convnext_base.fb_in22k_ft_in1k_384': _cfg(_FB + 'convnext_base_22k_1k_384.pth', hf_hub_id='timm/', **_384),
    'convnext_base.fb_in22k': _cfg(_FB + 'convnext_base_22k_224.pth', hf_hub_id='timm/', num_classes=21841),
    'convnext_large.fb_in1k': _cfg(_FB + 'convnext_large_1k_224_ema.pth', hf_hub_id='timm/'),
    'convnext_large.fb_in1k_384': _cfg(_FB + 'convnext_large_1k_384.pth', **_384),
    'convnext_large.fb_in22k_ft_in1k': _cfg(_FB + 'convnext_large_22k_1k_224.pth', hf_hub_id='timm/'),
    'convnext_large.fb_in22k_ft_in1k_384': _cfg(_FB + 'convnext_large_22k_1k_384.pth', hf_hub_id='timm/', **_384),
    'convnext_large.fb_in22k': _cfg(_FB + 'convnext_large_22k_224.pth', hf_hub_id='timm/', num_classes=21841),
    'convnext_xlarge.fb_in22k_ft_in1k': _cfg(_FB + 'convnext_xlarge_22k_1k_224_ema.pth', hf_hub_id='timm/'),
    'convnext_xlarge.fb_in22k_ft_in1k_384': _cfg(_FB + 'convnext_xlarge_22k_1k_384_ema.pth', hf_hub_id='timm/',
                                                 **_384),
    'convnext_xlarge.fb_in22k': _cfg(_FB + 'convnext_xlarge_22k_224.pth', hf_hub_id='timm/', num_classes=21841),
})


FAMILY = register_family(Family(
    name='convnext',
    display='ConvNeXt',
    model_cls=ConvNeXt,
    default_cfgs=default_cfgs,
    checkpoint_filter=checkpoint_filter_fn,
    docs_page='convnext.md',
    dense_out_norm='ln',
    dense_norm_keys=('norm0', 'norm1', 'norm2', 'norm3'),  # the authors' mmdet / mmseg backbones
))


@FAMILY.register
def convnext_atto(pretrained=False, **kwargs) -> ConvNeXt:
    """ConvNeXt-Atto (timm / ConvNeXt-V2 widths, V1 block): 3.7M params."""
    args = dict(depths=(2, 2, 6, 2), dims=(40, 80, 160, 320))
    return FAMILY.build('convnext_atto', pretrained, **dict(args, **kwargs))


@FAMILY.register
def convnext_femto(pretrained=False, **kwargs) -> ConvNeXt:
    """ConvNeXt-Femto (timm / ConvNeXt-V2 widths, V1 block): 5.2M params."""
    args = dict(depths=(2, 2, 6, 2), dims=(48, 96, 192, 384))
    return FAMILY.build('convnext_femto', pretrained, **dict(args, **kwargs))


@FAMILY.register
def convnext_pico(pretrained=False, **kwargs) -> ConvNeXt:
    """ConvNeXt-Pico (timm / ConvNeXt-V2 widths, V1 block): 9.1M params."""
    args = dict(depths=(2, 2, 6, 2), dims=(64, 128, 256, 512))
    return FAMILY.build('convnext_pico', pretrained, **dict(args, **kwargs))


@FAMILY.register
def convnext_nano(pretrained=False, **kwargs) -> ConvNeXt:
    """ConvNeXt-Nano (timm / ConvNeXt-V2 widths, V1 block): 15.6M params."""
    args = dict(depths=(2, 2, 8, 2), dims=(80, 160, 320, 640))
    return FAMILY.build('convnext_nano', pretrained, **dict(args, **kwargs))


@FAMILY.register
def convnext_tiny(pretrained=False, **kwargs) -> ConvNeXt:
    """ConvNeXt-T: 28.6M params, 4.5G MACs, 82.1 ImageNet top-1."""
    args = dict(depths=(3, 3, 9, 3), dims=(96, 192, 384, 768))
    return FAMILY.build('convnext_tiny', pretrained, **dict(args, **kwargs))


@FAMILY.register
def convnext_small(pretrained=False, **kwargs) -> ConvNeXt:
    """ConvNeXt-S: 50.2M params, 8.7G MACs, 83.1 ImageNet top-1."""
    args = dict(depths=(3, 3, 27, 3), dims=(96, 192, 384, 768))
    return FAMILY.build('convnext_small', pretrained, **dict(args, **kwargs))


@FAMILY.register
def convnext_base(pretrained=False, **kwargs) -> ConvNeXt:
    """ConvNeXt-B: 88.6M params, 15.4G MACs, 83.8 ImageNet top-1."""
    args = dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024))
    return FAMILY.build('convnext_base', pretrained, **dict(args, **kwargs))


@FAMILY.register
def convnext_large(pretrained=False, **kwargs) -> ConvNeXt:
    """ConvNeXt-L: 197.8M params, 34.4G MACs, 84.3 ImageNet top-1."""
    args = dict(depths=(3, 3, 27, 3), dims=(192, 384, 768, 1536))
    return FAMILY.build('convnext_large', pretrained, **dict(args, **kwargs))


@FAMILY.register
def convnext_xlarge(pretrained=False, **kwargs) -> ConvNeXt:
    """ConvNeXt-XL (ImageNet-22k only): 350.2M params, 60.9G MACs, 87.0 top-1 after 22k -> 1k fine-tuning."""
    args = dict(depths=(3, 3, 27, 3), dims=(256, 512, 1024, 2048))
    return FAMILY.build('convnext_xlarge', pretrained, **dict(args, **kwargs))
