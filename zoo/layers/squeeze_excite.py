"""Squeeze-excite with a deploy form that works on the pooled vector.

:class:`SqueezeExcite` is timm's ``SEModule`` with a ReLU and a sigmoid gate (mean -> 1x1 conv -> ReLU -> 1x1
conv -> sigmoid, the same parameters under the same names), as LSNet's and SHViT's blocks use it. Its two
1x1 convs see a (B, C, 1, 1) map: matrix-vector products, where a module call of a conv layer, its checks
and its conv op cost far more than the products. ``fuse()`` gives :class:`FusedSqueezeExcite`: the two
convs as Linears (``fc1``, ``fc2``, their weights viewed as (out, in)) that ``F.linear`` applies to the
pooled (B, C) vector: PyTorch's GEMM, about 3 µs a call against 15 µs for a fused conv layer on a one-pixel
map, with no module call.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import SEModule
from torch.nn.utils import skip_init

__all__ = ['SqueezeExcite', 'FusedSqueezeExcite']


class SqueezeExcite(SEModule):
    """timm's ``SEModule(channels, rd_ratio)`` (ReLU, sigmoid gate, no norm), whose ``fuse()`` is
    :class:`FusedSqueezeExcite`."""

    def __init__(self, channels: int, rd_ratio: float = 1. / 16):
        super().__init__(channels, rd_ratio=rd_ratio)

    @torch.no_grad()
    def fuse(self) -> 'FusedSqueezeExcite':
        return FusedSqueezeExcite(_as_linear(self.fc1), _as_linear(self.fc2))


def _as_linear(conv: nn.Conv2d) -> nn.Linear:
    """The Linear of a 1x1 conv, holding a (out, in) view of its weight and its bias (the same tensors)."""
    layer = skip_init(nn.Linear, conv.in_channels, conv.out_channels, conv.bias is not None,
                      device=conv.weight.device, dtype=conv.weight.dtype)
    layer.weight = nn.Parameter(conv.weight.detach().flatten(1), requires_grad=conv.weight.requires_grad)
    layer.bias = conv.bias
    return layer


class FusedSqueezeExcite(nn.Module):
    """Deploy form of :class:`SqueezeExcite`: ``x * sigmoid(fc2(relu(fc1(mean(x)))))`` with the Linears
    applied to the pooled (B, C) vector by ``F.linear`` (no module calls). The same numbers as the 1x1 convs
    on the (B, C, 1, 1) map up to float rounding; NaN and inf pass as they do there."""

    def __init__(self, fc1: nn.Linear, fc2: nn.Linear):
        super().__init__()
        self.fc1, self.fc2 = fc1, fc2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = F.linear(x.mean((2, 3)), self.fc1.weight, self.fc1.bias).relu_()
        s = F.linear(s, self.fc2.weight, self.fc2.bias).sigmoid_()
        return x * s[:, :, None, None]
