"""UniRepLKNet: a universal perception large-kernel ConvNet (Ding et al., CVPR 2024), official code:
AILab-CVC/UniRepLKNet (image models).

Stem: 3x3 stride-2 conv -> LayerNorm -> GELU -> 3x3 stride-2 conv -> LayerNorm. Stages 2-4 start with a 3x3
stride-2 conv -> LayerNorm. Block: depthwise conv -> BN -> squeeze-excite -> Linear(C, 4C) -> GELU -> GRN ->
Linear(4C, C) -> BN -> layer scale, residual. The depthwise conv is a Dilated Reparam Block (a 13x13 kernel
with parallel dilated 5x5 / 7x7 / 3x3 kernels) where the released kernel table says 13 and a plain 3x3
conv where it says 3. Head: global average pool -> LayerNorm -> Linear.

Deploy form (``zoo.reparameterize``, or build with ``deploy=True`` to load deploy-form weights): each Dilated
Reparam Block becomes one 13x13 kernel, the block BN folds into the depthwise conv, and the GRN bias, the
MLP's BN and the layer scale fold into the second Linear; the MLP runs on fused Linear+GELU kernels.

Layout: blocks run on NCHW storage. oneDNN's direct depthwise kernel computes the 13x13 convolution
1.7-2.9x faster on NCHW storage than on channels-last storage, and FFT or row decompositions are slower still
(``tools/benchmark.py --large-kernel``, docs/unireplknet.md).
"""
import functools
import re
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, SEModule, calculate_drop_path_rates
from timm.models import generate_default_cfgs

from ..layers import (DilatedReparamBlock, FoldedCopy, FusedLinear, GlobalResponseNorm, LayerNorm2d, NormLinear,
                      fold_affine_into_next, fold_bn_into_prev, fold_scale_into_prev, on_channels)
from ..weights import CheckpointMismatchError, check_pretrained
from ._base import Stage, StagedBackbone, official_staged_key
from .registry import Family, register_family

__all__ = ['UniRepLKNet', 'UniRepLKNetBlock', 'default_kernel_sizes']


def default_kernel_sizes(depths: Sequence[int]):
    """The released kernel size of every block, keyed by the depths (the code's table; the paper's has a typo)."""
    depths = tuple(depths)
    stage3 = {(2, 2, 6, 2): (13,) * 6, (2, 2, 8, 2): (13,) * 8,
              (3, 3, 18, 3): (13, 3) * 9, (3, 3, 27, 3): (13, 3, 3) * 9}.get(depths)
    if stage3 is None:
        raise ValueError(f'UniRepLKNet has no released kernel sizes for depths {depths}; pass kernel_sizes, '
                         f'one tuple per stage with one size per block')
    return ((3,) * depths[0], (13,) * depths[1], stage3, (13,) * depths[3])


class SqueezeExcite(SEModule):
    """timm's ``SEModule`` (mean -> 1x1 conv -> ReLU -> 1x1 conv -> sigmoid gate, the same parameters). Its input
    is the block's own intermediate, so when autograd does not record the call it is gated in place: measured
    on CPU at batch 16 this and the in-place GRN make the deploy form 1.1-1.2x faster (docs/unireplknet.md)."""

    def forward(self, x):
        gate = self.gate(self.fc2(self.act(self.bn(self.fc1(x.mean((2, 3), keepdim=True))))))
        if torch.jit.is_scripting():
            return x * gate
        # a traced graph (torch.fx) may run under autograd: out of place there, as SEModule
        if torch.fx._symbolic_trace.is_fx_symbolic_tracing() or (torch.is_grad_enabled() and x.requires_grad):
            return x * gate
        return x.mul_(gate)


class GrnMlp(nn.Module):
    """Linear -> GELU -> GRN -> Linear over the last axis of an NHWC tensor. The second Linear has no bias in
    the train form (a BN follows it); the deploy form fuses GELU into the first Linear, and the GRN bias and
    the BN into the second."""

    def __init__(self, dim: int, hidden: int, deploy: bool = False):
        super().__init__()
        if deploy:
            self.fc1, self.act = FusedLinear(dim, hidden, act='gelu'), nn.Identity()
            self.fc2 = FusedLinear(hidden, dim)
        else:
            self.fc1, self.act = nn.Linear(dim, hidden), nn.GELU()
            self.fc2 = nn.Linear(hidden, dim, bias=False)
        self.grn = GlobalResponseNorm(hidden, eps=1e-6, bias=not deploy, inplace=True)  # on fc1's own output

    def forward(self, x):
        return self.fc2(self.grn(self.act(self.fc1(x))))


class UniRepLKNetBlock(FoldedCopy, nn.Module):
    def __init__(self, dim: int, kernel_size: int, drop_path: float = 0.0, ls_init_value: float = 1e-6,
                 mlp_ratio: float = 4.0, deploy: bool = False):
        super().__init__()
        if kernel_size not in (3, 5) and kernel_size < 7:
            raise ValueError(f'UniRepLKNet blocks take kernel size 3, 5 or >= 7 (dilated reparam), not {kernel_size}')
        if deploy:
            self.conv_dw = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim)
        elif kernel_size >= 7:
            self.conv_dw = DilatedReparamBlock(dim, kernel_size)
        else:
            self.conv_dw = nn.Conv2d(dim, dim, kernel_size, padding=kernel_size // 2, groups=dim, bias=False)
        self.norm = nn.Identity() if deploy else nn.BatchNorm2d(dim)
        self.se = SqueezeExcite(dim, rd_channels=dim // 4, act_layer=nn.ReLU)
        self.mlp = GrnMlp(dim, int(mlp_ratio * dim), deploy)
        self.mlp_norm = nn.Identity() if deploy else nn.BatchNorm2d(dim)
        self.gamma = nn.Parameter(torch.full((dim,), ls_init_value)) if ls_init_value and not deploy else None
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.fused = deploy

    def forward(self, x):
        shortcut = x = x.contiguous()  # NCHW storage, where the large depthwise conv is fastest
        x = self.se(self.norm(self.conv_dw(x)))
        x = self.mlp_norm(self.mlp(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2))  # the MLP on the NHWC view
        if self.gamma is not None:
            x = x * self.gamma.view(1, -1, 1, 1)
        return shortcut + self.drop_path(x)

    def _fold(self):
        """Branches into one kernel, BN into it; GRN bias, BN and layer scale into ``mlp.fc2``."""
        conv = self.conv_dw.fuse() if isinstance(self.conv_dw, DilatedReparamBlock) else self.conv_dw
        self.conv_dw, self.norm = fold_bn_into_prev(conv, self.norm), nn.Identity()
        mlp = self.mlp
        fc2 = fold_affine_into_next(mlp.fc2, torch.ones_like(mlp.grn.bias), mlp.grn.bias)
        mlp.grn.bias = None
        fc2, self.mlp_norm = fold_bn_into_prev(fc2, self.mlp_norm), nn.Identity()
        if self.gamma is not None:
            fc2, self.gamma = fold_scale_into_prev(fc2, self.gamma), None
        mlp.fc1, mlp.act = FusedLinear.from_weights(mlp.fc1.weight, mlp.fc1.bias, 'gelu'), nn.Identity()
        mlp.fc2 = FusedLinear.from_weights(fc2.weight, fc2.bias)


class UniRepLKNet(StagedBackbone):
    arch = 'UniRepLKNet'

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'avg',
            depths: Sequence[int] = (3, 3, 27, 3),
            dims: Sequence[int] = (96, 192, 384, 768),
            kernel_sizes: Optional[Sequence[Sequence[int]]] = None,
            ls_init_value: float = 1e-6,
            head_init_scale: float = 1.0,
            drop_rate: float = 0.0,
            drop_path_rate: float = 0.0,
            deploy: bool = False,
    ):
        """``deploy=True`` builds the deploy form directly (what ``zoo.reparameterize`` gives), to load weights
        saved in that form."""
        super().__init__()
        kernel_sizes = default_kernel_sizes(depths) if kernel_sizes is None else kernel_sizes
        if len(kernel_sizes) != len(depths) or any(len(k) != d for k, d in zip(kernel_sizes, depths)):
            raise ValueError(f'kernel_sizes must give one size per block: depths {tuple(depths)}, '
                             f'got {[len(k) for k in kernel_sizes]} sizes per stage')
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.num_features = dims[-1]
        self.stem = nn.Sequential(
            nn.Conv2d(in_chans, dims[0] // 2, 3, 2, 1), LayerNorm2d(dims[0] // 2, eps=1e-6), nn.GELU(),
            nn.Conv2d(dims[0] // 2, dims[0], 3, 2, 1), LayerNorm2d(dims[0], eps=1e-6))
        dpr = calculate_drop_path_rates(drop_path_rate, list(depths), stagewise=True)
        stages, self.feature_info = [], []
        for i, dim in enumerate(dims):
            downsample = nn.Sequential(nn.Conv2d(dims[i - 1], dim, 3, 2, 1), LayerNorm2d(dim, eps=1e-6)) \
                if i > 0 else None
            blocks = [UniRepLKNetBlock(dim, k, p, ls_init_value, deploy=deploy) for k, p in zip(kernel_sizes[i], dpr[i])]
            stages.append(Stage(downsample, blocks))
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2 ** i, module=f'stages.{i}'))
        self.stages = nn.Sequential(*stages)
        self.reset_classifier(num_classes, global_pool)
        self.apply(self._init_weights)
        self._scale_classifier(head_init_scale)

    def _make_head(self, num_classes: int) -> nn.Module:
        return NormLinear(nn.LayerNorm(self.num_features, eps=1e-6), self.num_features, num_classes, self.drop_rate)


_OFFICIAL_BLOCK = [
    (r'dwconv\.lk_origin\.', 'conv_dw.lk.conv.'), (r'dwconv\.origin_bn\.', 'conv_dw.lk.bn.'),
    (r'dwconv\.dil_conv_k(\d+)_(\d+)\.', r'conv_dw.dilated.k\1_r\2.conv.'),
    (r'dwconv\.dil_bn_k(\d+)_(\d+)\.', r'conv_dw.dilated.k\1_r\2.bn.'),
    (r'dwconv\.', 'conv_dw.'), (r'se\.down\.', 'se.fc1.'), (r'se\.up\.', 'se.fc2.'),
    (r'pwconv1\.1\.', 'mlp.fc1.'), (r'act\.1\.gamma$', 'mlp.grn.weight'), (r'act\.1\.beta$', 'mlp.grn.bias'),
    (r'pwconv2\.0\.', 'mlp.fc2.'), (r'pwconv2\.2\.', 'mlp_norm.'),
]
_OFFICIAL_DEPLOY_BLOCK = [(r'dwconv\.lk_origin\.', 'conv_dw.')] + _OFFICIAL_BLOCK


def _official_block_key(rest: str, deploy: bool) -> str:
    for pattern, repl in _OFFICIAL_DEPLOY_BLOCK if deploy else _OFFICIAL_BLOCK:
        if re.match(pattern, rest):
            return re.sub('^' + pattern, repl, rest)
    return rest


def _is_deploy_state(state_dict: Dict[str, torch.Tensor], block_norm: str) -> bool:
    """Every train-form block has a BN after its depthwise conv; the deploy form has none."""
    return not any(re.search(block_norm, k) for k in state_dict)


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """Official files, train form (as released) or deploy form (the official ``deploy=True`` layout), and zoo
    files load; the result is checked before anything is copied. A file of one form needs a model of the
    same form: ``deploy=True`` builds the deploy form, ``zoo.reparameterize`` turns a loaded train form into it."""
    if 'downsample_layers.0.0.weight' in state_dict:
        deploy_state = _is_deploy_state(state_dict, r'^stages\.\d+\.\d+\.norm\.running_var$')
        block_key = functools.partial(_official_block_key, deploy=deploy_state)
        state_dict = {official_staged_key(k, block_key): v for k, v in state_dict.items()}
        state_dict = {k: v.flatten() if k.endswith('.mlp.grn.weight') or k.endswith('.mlp.grn.bias') else v
                      for k, v in state_dict.items()}
    else:
        deploy_state = _is_deploy_state(state_dict, r'\.blocks\.\d+\.norm\.running_var$')
    deploy_model = _is_deploy_state(model.state_dict(), r'\.blocks\.\d+\.norm\.running_var$')
    if deploy_state != deploy_model:
        form = {True: 'deploy', False: 'train'}
        source = (getattr(model, 'pretrained_cfg', None) or {}).get('file') or 'checkpoint'
        raise CheckpointMismatchError(
            f'{source} holds the {form[deploy_state]} form of UniRepLKNet and the model is the '
            f'{form[deploy_model]} form; nothing was loaded. ' + (
                'Build the model with deploy=True.' if deploy_state else
                'Build the model with deploy=False, load, then call zoo.reparameterize.'))
    return check_pretrained(state_dict, model)


def _cfg(file: str = '', **kwargs):
    return {
        'hf_hub_id': 'DingXiaoH/UniRepLKNet', 'hf_hub_filename': file,
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        'crop_pct': 0.875, 'interpolation': 'bicubic',
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'stem.0', 'classifier': 'head.fc',
        'license': 'apache-2.0', 'paper_ids': 'arXiv:2311.15599', **kwargs,
    }


_384 = dict(input_size=(3, 384, 384), pool_size=(12, 12), crop_pct=1.0, crop_mode='squash')
_22K = dict(num_classes=21841)
_22K_192 = dict(num_classes=21841, input_size=(3, 192, 192), pool_size=(6, 6))
# the authors' release on the Hugging Face Hub (train-form weights, the official key layout)
default_cfgs = generate_default_cfgs({
    'unireplknet_a.in1k': _cfg('unireplknet_a_in1k_224_acc77.03.pth'),
    'unireplknet_f.in1k': _cfg('unireplknet_f_in1k_224_acc78.58.pth'),
    'unireplknet_p.in1k': _cfg('unireplknet_p_in1k_224_acc80.23.pth'),
    'unireplknet_n.in1k': _cfg('unireplknet_n_in1k_224_acc81.64.pth'),
    'unireplknet_t.in1k': _cfg('unireplknet_t_in1k_224_acc83.21.pth'),
    'unireplknet_s.in1k': _cfg('unireplknet_s_in1k_224_acc83.91.pth'),
    'unireplknet_s.in22k_ft_in1k_384': _cfg('unireplknet_s_in22k_to_in1k_384_acc86.44.pth', **_384),
    'unireplknet_s.in22k': _cfg('unireplknet_s_in22k_pretrain.pth', **_22K),
    'unireplknet_b.in22k_ft_in1k_384': _cfg('unireplknet_b_in22k_to_in1k_384_acc87.40.pth', **_384),
    'unireplknet_b.in22k': _cfg('unireplknet_b_in22k_pretrain.pth', **_22K),
    'unireplknet_l.in22k_ft_in1k_384': _cfg('unireplknet_l_in22k_to_in1k_384_acc87.88.pth', **_384),
    'unireplknet_l.in22k': _cfg('unireplknet_l_in22k_pretrain.pth', **_22K_192),
    'unireplknet_xl.in22k_ft_in1k_384': _cfg('unireplknet_xl_in22k_to_in1k_384_acc87.96.pth', **_384),
    'unireplknet_xl.in22k': _cfg('unireplknet_xl_in22k_pretrain.pth', **_22K_192),
})


FAMILY = register_family(Family(
    name='unireplknet',
    display='UniRepLKNet',
    model_cls=UniRepLKNet,
    default_cfgs=default_cfgs,
    checkpoint_filter=checkpoint_filter_fn,
    docs_page='unireplknet.md',
    dense_out_norm='ln',
    dense_norm_keys=('norm0', 'norm1', 'norm2', 'norm3'),  # the authors' mmdet / mmseg backbones
))


@FAMILY.register
def unireplknet_a(pretrained=False, **kwargs) -> UniRepLKNet:
    """UniRepLKNet-A: 4.4M params (deploy form), 0.6G MACs, 77.0 ImageNet top-1."""
    args = dict(depths=(2, 2, 6, 2), dims=(40, 80, 160, 320))
    return FAMILY.build('unireplknet_a', pretrained, **dict(args, **kwargs))


@FAMILY.register
def unireplknet_f(pretrained=False, **kwargs) -> UniRepLKNet:
    """UniRepLKNet-F: 6.2M params (deploy form), 0.9G MACs, 78.6 ImageNet top-1."""
    args = dict(depths=(2, 2, 6, 2), dims=(48, 96, 192, 384))
    return FAMILY.build('unireplknet_f', pretrained, **dict(args, **kwargs))


@FAMILY.register
def unireplknet_p(pretrained=False, **kwargs) -> UniRepLKNet:
    """UniRepLKNet-P: 10.7M params (deploy form), 1.6G MACs, 80.2 ImageNet top-1."""
    args = dict(depths=(2, 2, 6, 2), dims=(64, 128, 256, 512))
    return FAMILY.build('unireplknet_p', pretrained, **dict(args, **kwargs))


@FAMILY.register
def unireplknet_n(pretrained=False, **kwargs) -> UniRepLKNet:
    """UniRepLKNet-N: 18.3M params (deploy form), 2.8G MACs, 81.6 ImageNet top-1."""
    args = dict(depths=(2, 2, 8, 2), dims=(80, 160, 320, 640))
    return FAMILY.build('unireplknet_n', pretrained, **dict(args, **kwargs))


@FAMILY.register
def unireplknet_t(pretrained=False, **kwargs) -> UniRepLKNet:
    """UniRepLKNet-T: 31.0M params (deploy form), 4.9G MACs, 83.2 ImageNet top-1."""
    args = dict(depths=(3, 3, 18, 3), dims=(80, 160, 320, 640))
    return FAMILY.build('unireplknet_t', pretrained, **dict(args, **kwargs))


@FAMILY.register
def unireplknet_s(pretrained=False, **kwargs) -> UniRepLKNet:
    """UniRepLKNet-S: 55.6M params (deploy form), 9.1G MACs, 83.9 ImageNet top-1 (86.4 22k -> 1k at 384)."""
    args = dict(depths=(3, 3, 27, 3), dims=(96, 192, 384, 768))
    return FAMILY.build('unireplknet_s', pretrained, **dict(args, **kwargs))


@FAMILY.register
def unireplknet_b(pretrained=False, **kwargs) -> UniRepLKNet:
    """UniRepLKNet-B: 98.0M params (deploy form), 47.2G MACs at 384, 87.4 top-1 (22k -> 1k at 384)."""
    args = dict(depths=(3, 3, 27, 3), dims=(128, 256, 512, 1024))
    return FAMILY.build('unireplknet_b', pretrained, **dict(args, **kwargs))


@FAMILY.register
def unireplknet_l(pretrained=False, **kwargs) -> UniRepLKNet:
    """UniRepLKNet-L: 218.5M params (deploy form), 105.4G MACs at 384, 87.9 top-1 (22k -> 1k at 384)."""
    args = dict(depths=(3, 3, 27, 3), dims=(192, 384, 768, 1536))
    return FAMILY.build('unireplknet_l', pretrained, **dict(args, **kwargs))


@FAMILY.register
def unireplknet_xl(pretrained=False, **kwargs) -> UniRepLKNet:
    """UniRepLKNet-XL: 386.5M params (deploy form), 187G MACs at 384, 88.0 top-1 (22k -> 1k at 384)."""
    args = dict(depths=(3, 3, 27, 3), dims=(256, 512, 1024, 2048))
    return FAMILY.build('unireplknet_xl', pretrained, **dict(args, **kwargs))
