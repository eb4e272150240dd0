"""Conv–BN, norm–conv, norm–Linear and multi-branch depthwise units (RepVGG, dilated reparam) that fold into
their deploy form.

Each unit has one method, ``fuse()``, that returns the module replacing it at deploy time. This is the
protocol that both ``zoo.reparameterize`` and ``timm.utils.reparameterize_model`` walk.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import trunc_normal_

from .fold import fold_affine_into_next, fold_bn, fold_bn_into_prev, norm_affine

__all__ = ['ConvBN', 'ConvBNFFN', 'ConvFFN', 'ResidualConvBN', 'BNLinear', 'DILATED_BRANCHES', 'DilatedReparamBlock', 'NormConv', 'NormLinear', 'RepVGGDW', 'dilate_kernel']


class ConvBN(nn.Sequential):
    """Conv2d (bias-free unless asked) followed by BatchNorm2d; ``fuse()`` returns one biased Conv2d."""

    def __init__(self, in_chs, out_chs, kernel_size=1, stride=1, padding=0, dilation=1, groups=1,
                 bn_weight_init=1.0, bias=False):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, dilation, groups, bias=bias)
        self.bn = nn.BatchNorm2d(out_chs)
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.zeros_(self.bn.bias)

    def fuse(self) -> nn.Conv2d:
        return fold_bn_into_prev(self.conv, self.bn)


class ResidualConvBN(ConvBN):
    """``x + bn(conv(x))`` for a depthwise, stride-1, same-padded Conv–BN; ``fuse()`` returns one biased conv
    whose centre tap also carries the identity."""

    def __init__(self, dim, kernel_size=3, bn_weight_init=1.0):
        super().__init__(dim, dim, kernel_size, 1, kernel_size // 2, groups=dim, bn_weight_init=bn_weight_init)

    def forward(self, x):
        return x + self.bn(self.conv(x))  # ConvBN's forward, written out for TorchScript (no super())

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        fused = super().fuse()
        c = self.conv.kernel_size[0] // 2
        fused.weight[:, 0, c, c] += 1.0
        return fused


class ConvBNFFN(nn.Module):
    """1x1 Conv–BN, ReLU, 1x1 Conv–BN (the LeViT-style FFN of LSNet and SHViT); the second BN starts at zero
    so that a residual FFN starts as the identity."""

    def __init__(self, dim, hidden_dim):
        super().__init__()
        self.pw1 = ConvBN(dim, hidden_dim)
        self.act = nn.ReLU()
        self.pw2 = ConvBN(hidden_dim, dim, bn_weight_init=0.0)

    def forward(self, x):
        return self.pw2(self.act(self.pw1(x)))

    def residual(self, x):
        """``x + self(x)``, the FFN as a residual branch (its deploy form adds ``x`` in its last conv's pass)."""
        return x + self.forward(x)

    @torch.no_grad()
    def fuse(self) -> 'ConvFFN':
        return ConvFFN(self.pw1.fuse(), self.pw2.fuse())


class ConvFFN(nn.Sequential):
    """Deploy form of :class:`ConvBNFFN`: 1x1 conv, ReLU, 1x1 conv, the BNs folded (the parameter names stay
    ``pw1.*``, ``pw2.*``). Where the convs are packed (``FusedConv2d``, which takes the ReLU into the first),
    :meth:`residual` adds the shortcut in the second conv's pass."""

    def __init__(self, pw1: nn.Conv2d, pw2: nn.Conv2d):
        super().__init__()
        self.pw1, self.act, self.pw2 = pw1, nn.ReLU(), pw2

    def residual(self, x):
        y = self.act(self.pw1(x))
        if hasattr(self.pw2, 'forward_add'):
            return self.pw2.forward_add(y, x)
        return x + self.pw2(y)


class NormConv(nn.Sequential):
    """A channel norm (BatchNorm2d or LayerNorm2d) followed by an unpadded Conv2d, as in the pre-norm
    downsampling layers of ConvNeXt and InceptionNeXt. ``fuse()`` moves the norm's affine map into the conv:
    a BatchNorm disappears, a LayerNorm keeps only its standardization."""

    def __init__(self, norm: nn.Module, conv: nn.Conv2d):
        super().__init__(norm, conv)

    @torch.no_grad()
    def fuse(self) -> nn.Module:
        scale, shift, rest = norm_affine(self[0])
        conv = fold_affine_into_next(self[1], scale, shift)
        return conv if rest is None else nn.Sequential(rest, conv)


class NormLinear(nn.Module):
    """A classifier head over pooled features: norm (LayerNorm or BatchNorm1d), dropout, Linear.
    ``pre_logits`` returns the normed features; with ``out_features=0`` they are the output."""

    def __init__(self, norm: nn.Module, in_features: int, out_features: int, drop: float = 0.0):
        super().__init__()
        self.norm = norm
        self.drop = nn.Dropout(drop)
        self.fc = nn.Linear(in_features, out_features) if out_features > 0 else nn.Identity()

    def forward(self, x, pre_logits: bool = False):
        x = self.drop(self.norm(x))
        return x if pre_logits else self.fc(x)


class BNLinear(nn.Sequential):
    """BatchNorm1d followed by Linear (a LeViT-style classifier); ``fuse()`` returns one Linear."""

    def __init__(self, in_features, out_features, bias=True, std=0.02, drop=0.0):
        super().__init__()
        self.bn = nn.BatchNorm1d(in_features)
        self.drop = nn.Dropout(drop)
        self.fc = nn.Linear(in_features, out_features, bias=bias)
        trunc_normal_(self.fc.weight, std=std)
        if bias:
            nn.init.zeros_(self.fc.bias)

    def fuse(self) -> nn.Linear:
        return fold_affine_into_next(self.fc, *fold_bn(self.bn))


class RepVGGDW(nn.Module):
    """Depthwise 3x3 Conv–BN + depthwise 1x1 Conv–BN + identity, merged into one 3x3 kernel by ``fuse()``."""

    def __init__(self, dim):
        super().__init__()
        self.conv = ConvBN(dim, dim, 3, 1, 1, groups=dim)
        self.conv1 = ConvBN(dim, dim, 1, 1, 0, groups=dim)

    def forward(self, x):
        return self.conv(x) + self.conv1(x) + x

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        fused = self.conv.fuse()
        branch = self.conv1.fuse()
        # the 1x1 kernel and the identity sit at the centre tap of the 3x3 kernel
        weight = fused.weight + F.pad(branch.weight, [1, 1, 1, 1])
        weight[:, :, 1, 1] += 1.0
        fused.weight.copy_(weight)
        fused.bias.add_(branch.bias)
        return fused


# (kernel sizes, dilations) of the parallel branches for each large kernel, as released with UniRepLKNet
DILATED_BRANCHES = {
    17: ((5, 9, 3, 3, 3), (1, 2, 4, 5, 7)),
    15: ((5, 7, 3, 3, 3), (1, 2, 3, 5, 7)),
    13: ((5, 7, 3, 3, 3), (1, 2, 3, 4, 5)),
    11: ((5, 5, 3, 3, 3), (1, 2, 3, 4, 5)),
    9: ((5, 5, 3, 3), (1, 2, 3, 4)),
    7: ((5, 3, 3), (1, 2, 3)),
    5: ((3, 3), (1, 2)),
}


def dilate_kernel(weight: torch.Tensor, dilation: int) -> torch.Tensor:
    """The dense kernel of a dilated one: ``dilation - 1`` zeros between taps, size ``dilation*(k-1)+1``."""
    if dilation == 1:
        return weight
    k_h, k_w = weight.shape[-2:]
    dense = weight.new_zeros(*weight.shape[:-2], dilation * (k_h - 1) + 1, dilation * (k_w - 1) + 1)
    dense[..., ::dilation, ::dilation] = weight
    return dense


class DilatedReparamBlock(nn.Module):
    """UniRepLKNet's Dilated Reparam Block: a ``K x K`` depthwise Conv–BN plus parallel depthwise Conv–BNs with
    small dilated kernels (``DILATED_BRANCHES[K]``), summed. A dilated ``k x k`` kernel with rate ``r`` equals a
    dense ``r(k-1)+1`` kernel with zeros between taps, so ``fuse()`` folds every BN, spreads each small
    kernel, pads it to ``K`` and adds it to the large one: one biased ``K x K`` depthwise conv."""

    def __init__(self, channels: int, kernel_size: int):
        super().__init__()
        if kernel_size not in DILATED_BRANCHES:
            raise ValueError(f'Dilated Reparam Block has branch settings for kernel sizes '
                             f'{sorted(DILATED_BRANCHES)}, not {kernel_size}')
        self.kernel_size = kernel_size
        self.lk = ConvBN(channels, channels, kernel_size, 1, kernel_size // 2, groups=channels)
        self.dilated = nn.ModuleDict({
            f'k{k}_r{r}': ConvBN(channels, channels, k, 1, r * (k - 1) // 2, dilation=r, groups=channels)
            for k, r in zip(*DILATED_BRANCHES[kernel_size])
        })

    def forward(self, x):
        out = self.lk(x)
        for branch in self.dilated.values():
            out = out + branch(x)
        return out

    @torch.no_grad()
    def fuse(self) -> nn.Conv2d:
        fused = self.lk.fuse()
        for branch in self.dilated.values():
            conv = branch.fuse()
            kernel = dilate_kernel(conv.weight, conv.dilation[0])
            pad = (self.kernel_size - kernel.shape[-1]) // 2
            fused.weight.add_(F.pad(kernel, [pad] * 4))
            fused.bias.add_(conv.bias)
        return fused
