"""Deformable convolution (DCNv1) with the parameter names of the ``DeformConv2dPack`` modules that released
checkpoints use (``weight``, ``bias``, ``conv_offset``), computed by ``torchvision.ops.deform_conv2d``.

torchvision's op has CPU and CUDA kernels and autograd on both, so no compiled extension is needed. Its
offset layout is the DCN one: for each kernel tap, (dy, dx) pairs, ``2 * kh * kw`` channels per offset
group. With zero offsets (the init) the layer is a plain convolution.
"""
import math

import torch
import torch.nn as nn
from torch.nn.modules.utils import _pair
from torchvision.ops import deform_conv2d  # timm imports torchvision already

from ._fx import register_notrace_function
from .attention import pad_to_multiple

__all__ = ['DeformConv2dPack']

# torchvision's deform_conv2d checks the offset's shape in Python: traced graphs call it as one function
register_notrace_function(deform_conv2d)
torch.fx.wrap('deform_conv2d')
torch.fx.wrap('pad_to_multiple')


class DeformConv2dPack(nn.Module):
    """A deformable conv whose offsets come from a conv over the same input (``conv_offset``, zero at init).

    ``pad_to_stride``: zero-pad the bottom/right of the input to a multiple of the stride first, so that an
    unpadded stride-s kernel of size s covers every pixel (output size ``ceil(H / s)``) instead of dropping
    the last rows and columns."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, bias=True,
                 pad_to_stride=False):
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.pad_to_stride = pad_to_stride
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *self.kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(in_channels * self.kernel_size[0] * self.kernel_size[1])
            nn.init.uniform_(self.bias, -bound, bound)
        self.conv_offset = nn.Conv2d(in_channels, 2 * self.kernel_size[0] * self.kernel_size[1], kernel_size,
                                     stride, padding, dilation, bias=True)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x):
        if self.pad_to_stride:
            x, _, _ = pad_to_multiple(x, self.stride[0], self.stride[1], channels_last=False)
        return deform_conv2d(x, self.conv_offset(x), self.weight, self.bias, self.stride, self.padding,
                             self.dilation)

    @torch.no_grad()
    def scaled(self, scale: torch.Tensor, shift: torch.Tensor) -> 'DeformConv2dPack':
        """A copy computing ``out * scale + shift`` per output channel (a following BatchNorm folded in);
        the offsets are unchanged."""
        import copy

        fused = copy.deepcopy(self)
        fused.weight.mul_(scale.view(-1, 1, 1, 1))
        bias = self.bias if self.bias is not None else torch.zeros_like(scale)
        fused.bias = nn.Parameter(bias * scale + shift)
        return fused
