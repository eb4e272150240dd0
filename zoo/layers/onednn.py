"""Linear layers that, in CPU inference, run oneDNN's fused kernels.

``FusedLinear`` is an ``nn.Linear`` with an optional activation (``'gelu'`` the exact erf form, or
``'relu'``). On CPU, for float32 inputs without autograd, it computes ``act(x W^T + b)`` with oneDNN's
``_linear_pointwise`` on a weight packed once into oneDNN's blocked layout (the kernels PyTorch's own
compiler uses on CPU): one pass instead of a GEMM, a bias copy and an activation pass. Measured on this
project's CPU (2 threads) the fused MLP of a ConvNeXt block runs 1.1-1.6x faster than ``F.linear`` +
``F.gelu`` (docs/benchmarks.md). Anywhere else (GPU, autograd, tracing, export, compile, or a PyTorch build
without the op) it is exactly ``act(F.linear(x, W, b))``. Results agree to float rounding.

Deploy forms use it; train forms keep plain layers, which autograd differentiates. The private ops, and the
torch versions they are used with, are in :mod:`zoo.patches.onednn`.

Two rules keep the fused path from ever giving another number than the plain ops:

- **Non-finite values stay non-finite.** oneDNN's fused ReLU maps NaN to 0, where ``F.relu`` keeps it NaN: a
  ReLU layer runs the GEMM alone and the ReLU in place after it. A GELU layer keeps its fused kernel, and an
  input holding a NaN or inf takes the plain path (one sum over the input); a NaN / inf weight is never
  packed. Measured against every activation fused without a check (the benchmark's ``unchecked`` form):
  0-4% of a deploy form's CPU time (docs/design.md).
- **The packed weight follows every edit of the weight.** It is rebuilt when the weight's storage or version
  counter changes. In-place ops (an optimizer step, ``copy_`` under ``no_grad``, ``load_state_dict``, an EMA
  update) bump the counter; ``weight.data`` would not, so the weight is a :class:`TrackedParameter`, whose
  ``.data`` shares its counter.
"""
import contextlib
import contextvars
import math
from typing import Iterator, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import skip_init

from ..patches import onednn
from ._fx import is_plain_eager, register_notrace_module
from .checks import conv_output_size

__all__ = ['FusedConv2d', 'FusedLinear', 'FusedMlp', 'TrackedParameter', 'onednn_available', 'unchecked_activations']

_UNCHECKED = contextvars.ContextVar('zoo_unchecked_activations', default=False)


@contextlib.contextmanager
def unchecked_activations() -> Iterator[None]:
    """For measuring only: inside, every FusedLinear fuses its activation into oneDNN's kernel and skips the
    non-finite check, so that a NaN in the input can come out as a number. The benchmark's ``unchecked`` form
    runs in it, to put a figure on what keeping NaN costs."""
    token = _UNCHECKED.set(True)
    try:
        yield
    finally:
        _UNCHECKED.reset(token)

_ACTS = {'none': lambda x: x, 'gelu': F.gelu, 'relu': F.relu}


def onednn_available() -> bool:
    return onednn.available()


def _use_onednn(x: torch.Tensor, weight: torch.Tensor) -> bool:
    # run on every call of every fused layer. Not while FX traces first (a traced graph records the plain ops;
    # timm's tracer keeps FusedLinear a leaf): x is then a Proxy, which answers no attribute test
    if not is_plain_eager():
        return False
    f32 = torch.float32
    if not x.is_cpu or x.dtype is not f32 or weight.dtype is not f32:
        return False
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        return False  # the fused op has no backward
    return onednn.available()


class TrackedParameter(nn.Parameter):
    """A Parameter whose ``.data`` is ``detach()``: the same storage and the same version counter, so that an
    in-place edit through ``.data`` (``p.data.copy_(w)``) bumps the parameter's ``_version`` as any other
    in-place op does. Assigning ``.data`` works as for any Parameter."""

    @property
    def data(self):
        return self.detach()

    @data.setter
    def data(self, value):
        torch._C.TensorBase.data.__set__(self, value)

    def __repr__(self):
        return 'Parameter containing:\n' + repr(self.detach())


def _track(param: nn.Parameter) -> nn.Parameter:
    if type(param) is nn.Parameter:
        param.__class__ = TrackedParameter  # same object: optimizers and EMA copies holding it stay valid
    return param


def _act(x: torch.Tensor, act: str) -> torch.Tensor:
    """The activation as plain ops (TorchScript compiles this; :data:`_ACTS` holds lambdas)."""
    if act == 'gelu':
        return F.gelu(x)
    if act == 'relu':
        return F.relu(x)
    return x


_NO_KEY = object()


class _PackState:
    """The weight and bias a layer's packed weights were made from, as they were (the objects, their storage and
    version counters), whether both were finite, the packed weight per input key, and the last call's."""
    __slots__ = ('w', 'b', 'w_version', 'w_ptr', 'b_version', 'b_ptr', 'finite', 'cache', 'last_key', 'last')

    def __init__(self, w: torch.Tensor, b: Optional[torch.Tensor]):
        self.w, self.b, self.w_version, self.w_ptr = w, b, w._version, w.data_ptr()
        self.b_version = None if b is None else b._version
        self.b_ptr = None if b is None else b.data_ptr()
        self.finite = bool(torch.isfinite(w).all()) and (b is None or bool(torch.isfinite(b).all()))
        self.cache = {}
        self.last_key, self.last = _NO_KEY, None  # a layer's key may be None (FusedLinear's one packed weight)

    def holds(self, w: torch.Tensor, b: Optional[torch.Tensor]) -> bool:
        """Whether ``w`` and ``b`` are still what the state was made from: the objects too (a Parameter assigned
        over the same storage by ``load_state_dict(assign=True)``), their storage and their version counters."""
        return (self.w is w and self.b is b and self.w_version == w._version and self.w_ptr == w.data_ptr()
                and (b is None or (self.b_version == b._version and self.b_ptr == b.data_ptr())))


class _PackedKernel:
    """What FusedLinear and FusedConv2d share: the activation, oneDNN's packed weight as a cache that follows
    every edit of the weight and bias (never packed while either holds a NaN or inf), and the rules that keep
    the fused kernel from ever giving another number than the plain ops. A layer supplies ``_plain(x)`` (its
    op without the activation), ``_pack(weight, x)``, ``_run(x, packed, bias, act)``, ``_pack_key(x)`` (the
    packed weights kept apart, up to ``_MAX_SHAPES``), and for :meth:`forward_add` ``_takes_other(x, other)``
    and ``_run_add(x, packed, bias, other)``."""
    # oneDNN's packed weight and its op's arguments: eager only, not part of a scripted model
    __jit_ignored_attributes__ = ['_packed', '_args']
    _MAX_SHAPES = 1
    _INPUT_DIMS = None  # the input rank the fused kernel takes (None: any)

    @classmethod
    def _check_act(cls, act: str) -> None:
        if act not in _ACTS:
            raise ValueError(f'{cls.__name__} activation must be one of {sorted(_ACTS)}, got {act!r}')

    def _start_packing(self, act: str) -> None:
        self.act = act
        self._packed = None
        for p in self.parameters(recurse=False):
            _track(p)

    def extra_repr(self) -> str:
        return super().extra_repr() + f', act={self.act}'

    def __getstate__(self):
        state = self.__dict__.copy()
        state['_packed'] = None  # oneDNN's packed tensor is opaque: rebuilt on first use
        return state

    def _onednn_params(self, x: torch.Tensor):
        """``(weight, bias)`` where a call on ``x`` may take oneDNN's path (:func:`_use_onednn`, the input rank the
        kernel takes), else None. They are read from ``_parameters`` (``nn.Module.__getattr__`` costs 0.7 µs a
        read, on every call of every fused layer); a weight that is not a registered Parameter (a
        parametrization or an old-style weight norm computes it) gives None: the plain ops then run."""
        params = self._parameters
        w = params.get('weight')
        if w is None or 'bias' not in params or not _use_onednn(x, w):
            return None
        if self._INPUT_DIMS is not None and x.dim() != self._INPUT_DIMS:
            return None
        return w, params['bias']

    def _packed_weight(self, x: torch.Tensor, w: torch.Tensor, b: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """``w`` (the weight) packed for oneDNN, rebuilt after any change of it or of ``b`` (the bias); None
        while either holds a NaN or inf (the plain ops then keep them in the output). Runs on every call: the
        common case, the same tensors unchanged and the shape of the last call, is a few comparisons."""
        state = self._packed
        if state is None or not state.holds(w, b):
            _track(w)  # a Parameter assigned since the last pack: its .data edits must bump the counter too
            if b is not None:
                _track(b)
            state = self._packed = _PackState(w, b)
        if not state.finite:
            return None
        shape = self._pack_key(x)
        if state.last_key == shape:  # no dict lookup while the shape stays
            return state.last
        cache = state.cache
        packed = cache.get(shape)
        if packed is None:
            if len(cache) >= self._MAX_SHAPES:
                cache.pop(next(iter(cache)))
            packed = cache[shape] = self._pack(w.detach(), x)
        state.last_key, state.last = shape, packed
        return packed

    @torch.jit.unused
    def _fused(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        """``act(op(x))`` on oneDNN's kernel, or None where the plain ops must compute it."""
        params = self._onednn_params(x)
        if params is None:
            return None
        w, b = params
        # oneDNN's fused ReLU maps NaN to 0: the op (which keeps NaN and inf as the plain op does) runs alone and
        # the ReLU follows in place. Its fused GELU keeps NaN, but an input with a NaN or inf takes the plain ops
        # all the same, so that no kernel's handling of NaN can turn a broken input into a number.
        unchecked = _UNCHECKED.get()
        if not (unchecked or self.act != 'gelu' or math.isfinite(x.sum().item())):
            return None
        packed = self._packed_weight(x, w, b)
        if packed is None:
            return None
        if self.act == 'relu' and not unchecked:
            return self._run(x, packed, b, 'none').relu_()
        return self._run(x, packed, b, self.act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.jit.is_scripting():  # the plain ops: oneDNN's private ops and packed weights stay in eager
            return _act(self._plain(x), self.act)
        out = self._fused(x)
        if out is not None:
            return out
        return _ACTS[self.act](self._plain(x))

    def forward_add(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """``self(x) + other`` (a residual branch's last layer and its shortcut). On oneDNN's path, for a layer
        without activation and an ``other`` of the output's shape, dtype and layout, the sum is taken in the
        kernel's own pass over the output; anywhere else it is the layer then an add. The same numbers either
        way (the add follows the bias, as the separate add does; NaN and inf pass through it)."""
        if torch.jit.is_scripting():
            return self.forward(x) + other
        out = self._fused_add(x, other)
        if out is None:  # the layer as a call of its own (its hooks run; a traced graph keeps it one node)
            out = self(x) + other
        return out

    @torch.jit.unused
    def _fused_add(self, x: torch.Tensor, other: torch.Tensor) -> Optional[torch.Tensor]:
        params = self._onednn_params(x)
        if params is None or self.act != 'none' or self._forward_hooks or self._forward_pre_hooks:
            return None
        if other.dtype != x.dtype or not other.is_cpu or (torch.is_grad_enabled() and other.requires_grad):
            return None
        if not self._takes_other(x, other):
            return None
        w, b = params
        packed = self._packed_weight(x, w, b)
        if packed is None:
            return None
        return self._run_add(x, packed, b, other)


@register_notrace_module  # traced by timm's tracer as one call, which runs the fused kernel when it can
class FusedLinear(_PackedKernel, nn.Linear):

    def __init__(self, in_features: int, out_features: int, bias: bool = True, act: str = 'none',
                 device=None, dtype=None):
        self._check_act(act)
        super().__init__(in_features, out_features, bias, device=device, dtype=dtype)
        self._start_packing(act)

    @classmethod
    def from_weights(cls, weight: torch.Tensor, bias, act: str = 'none') -> 'FusedLinear':
        """A FusedLinear holding ``weight`` (out, in) or a 1x1 conv weight (out, in, 1, 1)."""
        weight = weight.detach().flatten(1)
        # no init: every value is copied in below (an init of a 350M-parameter model's layers takes seconds)
        layer = skip_init(cls, weight.shape[1], weight.shape[0], bias is not None, act,
                          device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            layer.weight.copy_(weight)
            if bias is not None:
                layer.bias.copy_(bias.detach())
        for p in layer.parameters(recurse=False):  # skip_init made them anew, as plain Parameters
            _track(p)
        return layer

    def _plain(self, x: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting() and x.dim() > 2 and torch.compiler.is_compiling():
            # under torch.compile / torch.export, on a matrix of rows as oneDNN's kernel takes them: the NHWC
            # view of an NCHW map (whatever layout inductor gives the map) would otherwise be lowered as a
            # product batched over the rows with the weight broadcast, which inductor's int8 passes leave
            # float on the dequantized weight. (A traced ONNX graph would fix the batch size in the unflatten.)
            return F.linear(x.flatten(0, -2), self.weight, self.bias).unflatten(0, x.shape[:-1])
        return F.linear(x, self.weight, self.bias)

    def _pack_key(self, x):
        return None  # one packed weight, for the rows of the first input: oneDNN takes it for any

    def _pack(self, weight, x):
        return onednn.reorder_linear_weight(weight, x.numel() // x.shape[-1])

    def _run(self, x, packed, bias, act):
        return onednn.linear_pointwise(x, packed, bias, act)

    def _takes_other(self, x, other):
        return (other.dim() == x.dim() and other.shape[-1] == self.out_features and other.shape[:-1] == x.shape[:-1]
                and other.is_contiguous())

    def _run_add(self, x, packed, bias, other):
        return onednn.linear_add(x, packed, bias, other)


class FusedMlp(nn.Module):
    """Deploy form of a two-layer MLP over the last axis: ``fc2(act(fc1(x)))`` with the activation fused
    into ``fc1``. Built from the train form's layers (Linear, or 1x1 Conv2d run on the NHWC view)."""

    def __init__(self, fc1: nn.Module, fc2: nn.Module, act: str):
        super().__init__()
        self.fc1 = FusedLinear.from_weights(fc1.weight, fc1.bias, act)
        self.fc2 = FusedLinear.from_weights(fc2.weight, fc2.bias)

    def forward(self, x):
        return self.fc2(self.fc1(x))

    def forward_add(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """``self(x) + other``, the add in ``fc2``'s pass (:meth:`FusedLinear.forward_add`)."""
        return self.fc2.forward_add(self.fc1(x), other)


@register_notrace_module  # traced by timm's tracer as one call, which runs the fused kernel when it can
class FusedConv2d(_PackedKernel, nn.Conv2d):
    """An ``nn.Conv2d`` (zero padding) with an optional activation (``'gelu'``, ``'relu'``) that, in CPU
    inference on float32, runs oneDNN's convolution on a weight packed for the input's shape (packed once per
    shape, kept for the last few): no weight reorder per call and the bias and activation in the same pass.
    Anywhere else (GPU, autograd, tracing, export, compile, TorchScript, a PyTorch without the ops) it is
    exactly ``act(F.conv2d(...))``. The NaN rules and the tracking of weight edits are FusedLinear's."""
    _MAX_SHAPES = 4  # packed weights kept per layer (one per input shape seen last)
    _INPUT_DIMS = 4

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0, dilation=1,
                 groups: int = 1, bias: bool = True, padding_mode: str = 'zeros', act: str = 'none', device=None,
                 dtype=None):
        self._check_act(act)
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias,
                         padding_mode, device=device, dtype=dtype)
        if self.padding_mode != 'zeros' or isinstance(self.padding, str):
            raise ValueError(f'FusedConv2d takes zero padding given as numbers, got padding={self.padding!r}, '
                             f'padding_mode={self.padding_mode!r}')
        self._start_packing(act)
        self._set_geometry()

    def _set_geometry(self) -> None:
        """What the fused path asks of the conv's fixed geometry on every call, answered once (a tuple compare
        costs 0.2 µs, and a layer asked it up to three times a call): ``_pointwise``, a 1x1 conv without padding
        on one group; ``_rows``, that and stride 1, a Linear on the channels (see :meth:`_run`)."""
        self._pointwise = self.kernel_size == (1, 1) and self.padding == (0, 0) and self.groups == 1
        self._rows = self._pointwise and self.stride == (1, 1)

    def __setstate__(self, state):
        super().__setstate__(state)
        if '_rows' not in self.__dict__:  # pickled before the geometry was kept
            self._set_geometry()

    @classmethod
    def from_conv(cls, conv: nn.Conv2d, act: str = 'none') -> 'FusedConv2d':
        """A FusedConv2d holding ``conv``'s weight and bias (the same tensors, not copies)."""
        layer = skip_init(cls, conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                          conv.dilation, conv.groups, conv.bias is not None, act=act, device=conv.weight.device,
                          dtype=conv.weight.dtype)
        layer.weight, layer.bias = _track(conv.weight), conv.bias if conv.bias is None else _track(conv.bias)
        return layer

    def _plain(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, self.weight, self.bias)

    @torch.jit.unused
    def _fused(self, x: torch.Tensor) -> Optional[torch.Tensor]:
        if self._pointwise and x.dim() == 4 and x.shape[2] == 1 and x.shape[3] == 1:
            # a 1x1 conv on a one-pixel map (a pooled vector: squeeze-excite) is a matrix-vector product, where
            # oneDNN's conv costs 25-40 µs a call before any work and PyTorch's own GEMM about 8 µs
            params = self._onednn_params(x)
            if params is not None:
                w, b = params
                return _act(F.linear(x.flatten(1), w.flatten(1), b), self.act)[:, :, None, None]
        return super()._fused(x)

    # Where the conv is a Linear on the channels (``_rows``: 1x1, stride 1, no padding, one group), oneDNN's
    # linear op runs it on the (B*H*W, C) rows of the channels-last map: the same sums as its conv (bit for bit)
    # at 4-6 µs less a call, and with the shortcut added in its pass 15-20 µs less than the conv's ``.binary``,
    # which in torch 2.9 copies a tensor of the output's size on every call (at batch 16 slower than the conv
    # and an add).

    def _pack_key(self, x):
        return None if self._rows else x.shape  # the linear op takes one packed weight for any rows

    def _pack(self, weight, x):
        if self._rows:
            return onednn.reorder_linear_weight(weight.flatten(1), x.numel() // x.shape[1])
        # the op takes its arguments as lists: built here once, not on every call
        self._args = (list(self.padding), list(self.stride), list(self.dilation), self.groups)
        return onednn.reorder_conv_weight(weight, x.shape, *self._args)

    def _run(self, x, packed, bias, act):
        if self._rows:  # on the (B, H, W, C) view: rows without a copy where x is channels-last (else the
            # op copies, as the conv does), the output channels-last
            return onednn.linear_pointwise(x.permute(0, 2, 3, 1), packed, bias, act).permute(0, 3, 1, 2)
        return onednn.conv_pointwise(x, packed, bias, *self._args, act)

    def _takes_other(self, x, other):
        # the fused path writes channels-last: the shortcut must be laid out so, at the output's size, with the
        # strides spelled out (oneDNN refuses a 1x1 map's NCHW strides, which PyTorch also calls channels-last)
        h, w = conv_output_size(x.shape[2:], self.kernel_size, self.stride, self.padding, self.dilation)
        c = self.out_channels
        return tuple(other.shape) == (x.shape[0], c, h, w) and other.stride() == (c * h * w, 1, w * c, c)

    def _run_add(self, x, packed, bias, other):
        if self._rows:
            return onednn.linear_add(x.permute(0, 2, 3, 1), packed, bias, other.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        # the conv then an in-place add: the conv's .binary overload copies a tensor of the output's size first
        return onednn.conv_pointwise(x, packed, bias, *self._args, 'none').add_(other)

    def writes_channels_last(self, x: torch.Tensor) -> bool:
        """Whether a call on ``x`` takes the fused path (oneDNN's conv; ``F.linear`` on a one-pixel map), whose
        output is channels-last whatever ``x``'s layout (a model's first conv can then read an NCHW image as it
        comes). A layer whose weight holds a NaN or inf, or a GELU layer given a NaN or inf, takes the plain
        conv instead, whose output keeps ``x``'s layout: the same numbers in another layout."""
        return not torch.jit.is_scripting() and self._onednn_params(x) is not None
