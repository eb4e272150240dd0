"""Ways to compute a large depthwise convolution (``K x K`` kernel, stride 1, padding ``K // 2``), all in
plain PyTorch so they run on any device.

* ``direct``: ``F.conv2d`` on NCHW storage (oneDNN's direct depthwise kernel on CPU, cuDNN on GPU).
* ``channels_last``: ``F.conv2d`` on NHWC storage.
* ``fft``: pointwise product of the input's and the flipped kernel's 2-D real FFTs (size ``H + K - 1``),
  cropped back to ``H x W``.
* ``rows``: decomposition into ``K`` convolutions with ``1 x K`` kernels, one per kernel row, each over the
  input shifted by that row.

All are exact up to float rounding. ``zoo.measure.large_kernel_table`` (``tools/benchmark.py
--large-kernel``) times them against each other; the zoo's models use the one that table picks on CPU,
``direct`` (docs/unireplknet.md).
"""
from typing import Callable, Dict, Optional

import torch
import torch.nn.functional as F

__all__ = ['DEPTHWISE_METHODS', 'depthwise_conv']


def _check(x: torch.Tensor, weight: torch.Tensor) -> int:
    if x.ndim != 4 or weight.ndim != 4 or weight.shape[1] != 1 or weight.shape[0] != x.shape[1]:
        raise ValueError(f'depthwise conv needs x (B, C, H, W) and weight (C, 1, K, K) with the same C, got '
                         f'{tuple(x.shape)} and {tuple(weight.shape)}')
    k_h, k_w = weight.shape[-2:]
    if k_h != k_w or k_h % 2 == 0:
        raise ValueError(f'depthwise conv needs a square, odd kernel, got {k_h}x{k_w}')
    return k_h


def _direct(x, weight, bias):
    return F.conv2d(x.contiguous(), weight, bias, padding=weight.shape[-1] // 2, groups=x.shape[1])


def _channels_last(x, weight, bias):
    x = x.contiguous(memory_format=torch.channels_last)
    weight = weight.contiguous(memory_format=torch.channels_last)
    return F.conv2d(x, weight, bias, padding=weight.shape[-1] // 2, groups=x.shape[1])


def _fft(x, weight, bias):
    k = weight.shape[-1]
    h, w = x.shape[-2:]
    size = (h + k - 1, w + k - 1)  # full linear convolution: no wrap-around
    spectrum = torch.fft.rfft2(x, s=size) * torch.fft.rfft2(weight[:, 0].flip(-1, -2), s=size)
    out = torch.fft.irfft2(spectrum, s=size)[..., k // 2:k // 2 + h, k // 2:k // 2 + w]
    return out if bias is None else out + bias.view(1, -1, 1, 1)


def _rows(x, weight, bias):
    k = weight.shape[-1]
    h = x.shape[-2]
    padded = F.pad(x, (0, 0, k // 2, k // 2))
    out = None
    for i in range(k):
        row = F.conv2d(padded[:, :, i:i + h], weight[:, :, i:i + 1], None, padding=(0, k // 2), groups=x.shape[1])
        out = row if out is None else out.add_(row)
    return out if bias is None else out + bias.view(1, -1, 1, 1)


DEPTHWISE_METHODS: Dict[str, Callable] = {
    'direct': _direct, 'channels_last': _channels_last, 'fft': _fft, 'rows': _rows,
}


def depthwise_conv(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor] = None,
                   method: str = 'direct') -> torch.Tensor:
    """Depthwise convolution of ``x`` (B, C, H, W) with ``weight`` (C, 1, K, K), stride 1, padding K // 2."""
    if method not in DEPTHWISE_METHODS:
        raise ValueError(f'unknown depthwise conv method {method!r}; choose from {sorted(DEPTHWISE_METHODS)}')
    _check(x, weight)
    return DEPTHWISE_METHODS[method](x, weight, bias)
