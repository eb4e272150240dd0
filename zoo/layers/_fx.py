"""What the zoo's layers need to be symbolically traced (``torch.fx``: timm's ``features_only=True,
feature_cls='fx'``, torchvision's ``create_feature_extractor``) and scripted (``torch.jit.script``).

Symbolic tracing runs ``forward`` on Proxies: Python control flow on a shape or a flag of the input cannot
be recorded. A function that needs it (an input check, padding to a multiple of the window) is a *notrace
function*: the traced graph calls it, with real tensors, when the graph runs. Two registrations make it one:

* ``register_notrace_function`` (timm's registry): timm's tracer kwargs (``feature_cls='fx'``, timm's
  ``create_feature_extractor``) wrap it wherever a traced module's code refers to it by name;
* ``torch.fx.wrap('name')``, called at the top level of each module whose code calls it: any tracer
  (``torch.fx.symbolic_trace``, torchvision's ``create_feature_extractor`` without timm's kwargs) wraps it.

A notrace function is also compiled by TorchScript when a scripted model (or a scripted FX graph) calls it,
so it keeps its Python-only parts (f-strings over shapes, ``torch.finfo``) behind ``torch.jit.is_scripting()``.
"""
import torch
from timm.layers import register_notrace_function, register_notrace_module
from torch.fx import _symbolic_trace

__all__ = ['clamp_tiny', 'is_exporting', 'is_fx_tracing', 'is_onnx_exporting', 'is_plain_eager',
           'register_notrace_function', 'register_notrace_module']


def is_fx_tracing() -> bool:
    """True while ``torch.fx`` symbolically traces (values are Proxies); False in eager mode, under
    TorchScript, ``torch.jit.trace``, ``torch.compile`` and ``torch.export``."""
    if torch.jit.is_scripting():
        return False
    else:
        return torch.fx._symbolic_trace.is_fx_symbolic_tracing()


def is_plain_eager() -> bool:
    """True when ops run one by one on real tensors: not traced (FX, ``torch.jit``), scripted, compiled,
    exported (``torch.export``, ONNX), nor under a dispatch mode (FLOP counting, fake tensors). Only then may
    a layer run a kernel those would not see or could not record (oneDNN's private ops). Asked on every call
    of a fused layer, so the cheap tests come first."""
    # the flags read directly, not through torch's helpers (which call one another): 0.3 µs, not 0.7
    return not (torch.compiler.is_compiling() or _symbolic_trace._is_fx_tracing_flag or torch._C._is_tracing()
                or torch._C._len_torch_dispatch_stack() > 0 or is_onnx_exporting())


def is_exporting() -> bool:
    """True while ``torch.export`` traces the model, strict (Dynamo) or not; False under ``torch.compile``.

    ``torch.compiler.is_exporting()`` says so in eager Python (non-strict export sets the flag it reads). But
    Dynamo, torch.compile's tracer and strict export's, replaces the call by a constant True in torch 2.9,
    under torch.compile too (pytorch/pytorch#176347). Under Dynamo the answer comes from the trace itself."""
    if not torch.compiler.is_exporting():
        return False
    if not torch.compiler.is_dynamo_compiling():
        return True  # the flag, read for real
    return _dynamo_exports()


@torch._dynamo.assume_constant_result  # Dynamo calls it (not traces it) and keeps the answer as a constant
def _dynamo_exports() -> bool:
    """Whether the trace Dynamo is running is an export (``torch.export``'s strict tracer); True where the
    translator does not say, as torch.compiler.is_exporting() answered."""
    try:
        from torch._dynamo.symbolic_convert import InstructionTranslator
        return bool(InstructionTranslator.current_tx().export)
    except (ImportError, AttributeError):
        return True


def is_onnx_exporting() -> bool:
    """``torch.onnx.is_in_onnx_export()``, without its two imports on every call (2 µs, more than all the other
    tests of :func:`is_plain_eager` together): the flags it reads, looked up once."""
    flags = _ONNX_FLAGS
    if flags is None:
        return torch.onnx.is_in_onnx_export()
    return flags[0].in_onnx_export or flags[1]._is_onnx_exporting


def _onnx_flags():
    try:
        from torch.onnx._internal.exporter import _flags
        from torch.onnx._internal.torchscript_exporter._globals import GLOBALS
    except ImportError:  # another torch lays them out otherwise: ask torch.onnx each time
        return None
    if not (hasattr(GLOBALS, 'in_onnx_export') and hasattr(_flags, '_is_onnx_exporting')):
        return None
    return GLOBALS, _flags


_ONNX_FLAGS = _onnx_flags()


@register_notrace_function
def clamp_tiny(x: torch.Tensor) -> torch.Tensor:
    """``x.clamp_min(torch.finfo(x.dtype).tiny)``: the dtype is known only when the graph runs."""
    if torch.jit.is_scripting():
        # TorchScript has no torch.finfo: the smallest normal numbers of the float types
        if x.dtype == torch.float64:
            tiny = 2.2250738585072014e-308
        elif x.dtype == torch.float16:
            tiny = 6.103515625e-05
        else:  # float32 and bfloat16 share the exponent range
            tiny = 1.1754943508222875e-38
        return x.clamp_min(tiny)
    return x.clamp_min(torch.finfo(x.dtype).tiny)
