"""PyTorch's private oneDNN ops behind the deploy forms' fused Linear and conv layers
(``zoo.layers.FusedLinear``, ``zoo.layers.FusedConv2d``).

``torch.ops.mkldnn._reorder_linear_weight`` packs a Linear weight into oneDNN's blocked layout once;
``torch.ops.mkldnn._linear_pointwise`` runs ``act(x W^T + b)`` on it in one pass;
``torch._C._nn.mkldnn_reorder_conv2d_weight`` and ``torch.ops.mkldnn._convolution_pointwise`` do the same
for a 2-D convolution (the weight packed for one input shape). The linear op's ``.binary`` overload adds a
tensor to the output in the same pass (a residual shortcut; the conv's copies a tensor of the output's size
first in torch 2.9, slower than the conv and an add, so it is not used). They are the kernels
PyTorch's own compiler (inductor) emits on CPU, but they are private: their signatures may change in any
release. The fast path is used only on a torch in :data:`SUPPORTED` whose build has both ops and whose ops
pass a numeric self-check once; otherwise :func:`available` is False (with a warning that says why, on a
torch outside the range) and the layer computes the same result with ``F.linear``.
"""
from typing import Optional

import torch
import torch.nn.functional as F

from . import is_supported, warn_once

__all__ = ['SUPPORTED', 'TESTED', 'available', 'why_unavailable', 'reorder_linear_weight', 'linear_pointwise',
           'reorder_conv_weight', 'conv_pointwise', 'linear_add']

SUPPORTED = '>=2.9,<2.10'
TESTED = '2.9.1'

_state: dict = {}


def _check() -> Optional[str]:
    """None where the fast path can be used, else the reason it cannot."""
    torch_version = torch.__version__
    if not is_supported(torch_version, SUPPORTED):
        return (f'zoo.patches.onednn supports torch{SUPPORTED} (tested with {TESTED}); torch {torch_version} is '
                f'installed, so the deploy forms\' fused Linear layers use F.linear instead of oneDNN\'s '
                f'private kernels (same results, slower on CPU)')
    try:
        if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, '_linear_pointwise')
                and hasattr(torch.ops.mkldnn, '_reorder_linear_weight')
                and hasattr(torch.ops.mkldnn, '_convolution_pointwise')
                and hasattr(torch._C._nn, 'mkldnn_reorder_conv2d_weight')):
            return 'this torch build has no oneDNN linear and convolution ops'
        x, w, b = torch.randn(3, 8), torch.randn(4, 8), torch.randn(4)
        got = linear_pointwise(x, reorder_linear_weight(w, 3), b, 'relu')
        if not torch.allclose(got, F.relu(F.linear(x, w, b)), atol=1e-5, rtol=1e-5):
            return 'oneDNN\'s _linear_pointwise gave a different result than F.linear in the self-check'
        other = torch.randn(3, 4)
        got = linear_add(x, reorder_linear_weight(w, 3), b, other)
        if not torch.allclose(got, F.linear(x, w, b) + other, atol=1e-5, rtol=1e-5):
            return 'oneDNN\'s _linear_pointwise.binary gave a different result than F.linear + add in the self-check'
        x, w = torch.randn(2, 4, 5, 6), torch.randn(4, 2, 3, 3)
        args = ([1, 1], [2, 1], [1, 1], 2)  # padding, stride, dilation, groups
        packed = reorder_conv_weight(w, x.shape, *args)
        got = conv_pointwise(x, packed, b, *args, 'gelu')
        want = F.conv2d(x, w, b, args[1], args[0], args[2], args[3])
        if not (torch.allclose(got, F.gelu(want), atol=1e-5, rtol=1e-5)
                and got.is_contiguous(memory_format=torch.channels_last)):
            return ('oneDNN\'s _convolution_pointwise gave a different result than F.conv2d, or not channels-last, '
                    'in the self-check')
    except (AttributeError, RuntimeError, TypeError) as e:
        return f'oneDNN\'s linear ops failed their self-check: {e}'
    return None


def why_unavailable() -> Optional[str]:
    if 'reason' not in _state:
        _state['reason'] = _check()
    return _state['reason']


def available() -> bool:
    """The fast path can be used; decided once per process, with a warning where the torch version is the
    reason it cannot."""
    reason = why_unavailable()
    if reason and 'supports torch' in reason:
        warn_once(reason)
    return reason is None


_ALGORITHM = {'none': '', 'relu': '', 'gelu': 'none'}  # gelu's 'none': the exact erf form


def reorder_linear_weight(weight: torch.Tensor, rows: int) -> torch.Tensor:
    """``weight`` (out, in) packed for inputs of ``rows`` rows."""
    return torch.ops.mkldnn._reorder_linear_weight(weight, rows)


def linear_pointwise(x: torch.Tensor, packed: torch.Tensor, bias: Optional[torch.Tensor], act: str) -> torch.Tensor:
    """``act(x W^T + b)`` with ``W`` as packed by :func:`reorder_linear_weight`; ``act`` 'none', 'relu' or
    'gelu'."""
    return torch.ops.mkldnn._linear_pointwise.default(x, packed, bias, act, [], _ALGORITHM[act])


def reorder_conv_weight(weight: torch.Tensor, input_shape, padding, stride, dilation, groups: int) -> torch.Tensor:
    """A conv ``weight`` (out, in / groups, kh, kw) packed for inputs of ``input_shape`` (N, C, H, W)."""
    return torch._C._nn.mkldnn_reorder_conv2d_weight(weight.to_mkldnn(), list(padding), list(stride),
                                                     list(dilation), groups, list(input_shape))


def conv_pointwise(x: torch.Tensor, packed: torch.Tensor, bias: Optional[torch.Tensor], padding, stride, dilation,
                   groups: int, act: str) -> torch.Tensor:
    """``act(conv2d(x, W) + b)`` with ``W`` as packed by :func:`reorder_conv_weight`; the output is channels-last
    whatever ``x``'s layout (the op lays out its output so for any packed weight). ``padding``, ``stride`` and
    ``dilation`` are lists (the op takes no tuples)."""
    return torch.ops.mkldnn._convolution_pointwise.default(x, packed, bias, padding, stride, dilation, groups, act,
                                                           [], _ALGORITHM[act])


def linear_add(x: torch.Tensor, packed: torch.Tensor, bias: Optional[torch.Tensor],
               other: torch.Tensor) -> torch.Tensor:
    """``x W^T + b + other`` in one pass, ``other`` contiguous and of the output's shape."""
    return torch.ops.mkldnn._linear_pointwise.binary(x, other, packed, bias, 'add')
