"""Deformable convolution (DCNv1) with the parameter names of the ``DeformConv2dPack`` modules that released
checkpoints use (``weight``, ``bias``, ``conv_offset``), computed by ``torchvision.ops.deform_conv2d``.

torchvision's op has CPU and CUDA kernels and autograd on both, so no compiled extension is needed. Its
offset layout is the DCN one: for each kernel tap, (dy, dx) pairs, ``2 * kh * kw`` channels per offset
group. With zero offsets (the init) the layer is a plain convolution.

Two guards around the op (:func:`deform_conv`):

- torchvision's CPU kernel crashes the process (a segfault) on a NaN offset, and samples nothing (a finite 0)
  at an infinite one. Non-finite offsets are replaced by 0 for the kernel and the output positions they
  belong to are set to NaN, so a NaN or inf in the input comes out as NaN, as it does from any other layer.
- It has no bfloat16 / float16 CPU kernel: other dtypes are computed in float32 (under autocast too) and
  the result cast back.

In CPU float32 inference, eager or under ``torch.compile`` (not traced or exported: the exporters map
torchvision's op), the same function is computed as ``grid_sample`` at every kernel tap's displaced positions
(bilinear, zero outside the map, as torchvision's kernel samples) followed by one matrix product: 2-3x faster
than torchvision's CPU kernel at LITv2's token merging (at batch 16, 80.2 -> 23.8 ms for 96 -> 192 channels
on a 56 x 56 map), equal to float rounding. Compiled, LITv2-S's deploy form went 1250 -> 1194 ms at batch 16
against eager's 1053 and 1079 ms in the two processes.
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.modules.utils import _pair
from torchvision.ops import deform_conv2d  # timm imports torchvision already

from ._fx import is_exporting, is_plain_eager, register_notrace_function
from .attention import pad_to_multiple
from .checks import conv_output_size

__all__ = ['DeformConv2dPack', 'deform_conv']

# torchvision's deform_conv2d checks the offset's shape in Python: traced graphs call it as one function
register_notrace_function(deform_conv2d)
torch.fx.wrap('pad_to_multiple')


def deform_conv(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor],
                stride: Tuple[int, int], padding: Tuple[int, int], dilation: Tuple[int, int]) -> torch.Tensor:
    """``torchvision.ops.deform_conv2d`` that never crashes on a non-finite offset (the output positions of
    a NaN or inf offset are NaN) and runs any floating dtype (computed in float32 where torchvision has no
    kernel for it)."""
    dtype = x.dtype
    if dtype != torch.float32 and dtype != torch.float64:
        x, offset, weight = x.float(), offset.float(), weight.float()
        bias = bias.float() if bias is not None else None
    ok = torch.isfinite(offset)
    finite = ok.all(dim=1, keepdim=True)
    # non-finite offsets zeroed by a where (nan_to_num has no OpenVINO conversion)
    offset = torch.where(ok, offset, torch.zeros_like(offset))
    if not torch.jit.is_scripting() and _samples(x, offset, weight, stride, padding, dilation):
        out = _sampled_deform_conv(x, offset, weight, bias, stride, padding, dilation)
    else:
        out = deform_conv2d(x, offset, weight, bias, stride, padding, dilation)
    return out.masked_fill(~finite, float('nan')).to(dtype)


@torch.jit.unused  # a scripted model runs torchvision's op
def _samples(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor, stride: Tuple[int, int],
             padding: Tuple[int, int], dilation: Tuple[int, int]) -> bool:
    """Whether :func:`_sampled_deform_conv` computes this call: CPU float32 inference in plain eager or under
    torch.compile (not torch.export), outside autocast, one group of channels and of offsets, an offset map of
    the output's size (anything else goes to torchvision's op, which computes it or says what is wrong)."""
    if not (is_plain_eager() or (torch.compiler.is_compiling() and not is_exporting())):
        return False
    if x.device.type != 'cpu' or x.dtype != torch.float32 or weight.dtype != torch.float32:
        return False
    if torch.is_autocast_enabled('cpu'):  # its product would run in the autocast dtype
        return False
    if torch.is_grad_enabled() and (x.requires_grad or offset.requires_grad or weight.requires_grad):
        return False
    if weight.shape[1] != x.shape[1] or offset.shape[1] != 2 * weight.shape[2] * weight.shape[3]:
        return False
    size = conv_output_size(x.shape[2:], weight.shape[2:], stride, padding, dilation)
    return offset.dim() == 4 and offset.shape[0] == x.shape[0] and list(offset.shape[2:]) == size


@torch.jit.unused
def _sampled_deform_conv(x, offset, weight, bias, stride, padding, dilation) -> torch.Tensor:
    """torchvision's ``deform_conv2d`` (one group) as ``grid_sample`` at each tap's displaced positions and a
    matrix product over (channel, tap)."""
    B, C, H, W = x.shape
    O, _, kh, kw = weight.shape
    Ho, Wo = offset.shape[-2:]
    taps = kh * kw
    ky = torch.arange(kh, device=x.device).repeat_interleave(kw) * dilation[0] - padding[0]
    kx = torch.arange(kw, device=x.device).repeat(kh) * dilation[1] - padding[1]
    rows = torch.arange(Ho, device=x.device) * stride[0]
    cols = torch.arange(Wo, device=x.device) * stride[1]
    off = offset.view(B, taps, 2, Ho, Wo)  # per tap (dy, dx)
    # a position at or beyond one pixel outside the map samples zeros: clamped there, so that a huge finite
    # offset cannot overflow the normalization below into inf (grid_sample would give NaN)
    py = ((rows.view(1, 1, Ho, 1) + ky.view(1, taps, 1, 1)) + off[:, :, 0]).clamp(-1, H)
    px = ((cols.view(1, 1, 1, Wo) + kx.view(1, taps, 1, 1)) + off[:, :, 1]).clamp(-1, W)
    # pixel p <-> (2p + 1) / size - 1 (align_corners=False); zeros outside, as torchvision samples
    grid = torch.stack(((2 * px + 1) / W - 1, (2 * py + 1) / H - 1), dim=-1).view(B, taps * Ho, Wo, 2)
    sampled = F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners=False)
    out = torch.matmul(weight.reshape(O, C * taps), sampled.view(B, C * taps, Ho * Wo))
    if bias is not None:
        out = out + bias.view(1, O, 1)
    return out.view(B, O, Ho, Wo)


register_notrace_function(deform_conv)
torch.fx.wrap('deform_conv')


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
        return deform_conv(x, self.conv_offset(x), self.weight, self.bias, self.stride, self.padding,
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
