"""ONNX export of zoo models, checked against onnxruntime.

The exported graph is the deploy form by default (:func:`zoo.reparameterize`: BatchNorms folded, branches
merged), traced by ``torch.onnx.export`` (the TorchScript exporter; torch.export cannot capture every family)
with a dynamic batch. Height and width are dynamic where the traced graph does not depend on them: LITv2 and
BiFormer pad their maps to a multiple of a window / region count with sizes computed in Python, which tracing
freezes, so they export for one input size. LITv2's deformable downsampling maps to ONNX ``DeformConv``
(opset 19).
"""
import os
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..models import create_model, family_of
from .reparam import reparameterize

__all__ = ['static_hw_reason', 'OPSET', 'FORMATS', 'INT8_FORMATS', 'export_onnx', 'check_onnx', 'export_program',
           'export_torchscript', 'check_saved', 'check_inputs', 'file_size']

# what tools/export.py writes: ONNX (checked in onnxruntime), a torch.export ExportedProgram (.pt2) or a traced
# TorchScript module (.pt), the last two checked by loading them back; and the runtimes of zoo.deploy.runtimes:
# int8 (PT2E for inductor, a .pt2 program; ONNX Runtime QDQ), OpenVINO (fp32, NNCF int8), ExecuTorch (XNNPACK,
# fp32 and int8) and Core ML (converted and inspected: it predicts only on macOS)
FORMATS = {'onnx': '.onnx', 'torch.export': '.pt2', 'torchscript': '.pt', 'int8-inductor': '.int8.pt2',
           'int8-ort': '.int8.onnx', 'openvino': '.xml', 'openvino-int8': '.int8.xml', 'executorch': '.pte',
           'executorch-int8': '.int8.pte', 'coreml': '.mlpackage'}
INT8_FORMATS = ('int8-inductor', 'int8-ort', 'openvino-int8', 'executorch-int8')

OPSET = 19

_registered = False


def _register_symbolics() -> None:
    """``torchvision::deform_conv2d`` as ONNX ``DeformConv`` (opset 19; same offset layout)."""
    global _registered
    if _registered:
        return
    from torch.onnx import symbolic_helper as sh

    @sh.parse_args('v', 'v', 'v', 'v', 'v', 'i', 'i', 'i', 'i', 'i', 'i', 'i', 'i', 'b')
    def deform_conv2d(g, x, weight, offset, mask, bias, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
                      n_weight_grps, n_offset_grps, use_mask):
        kh, kw = sh._get_tensor_sizes(weight)[-2:]
        inputs = [x, weight, offset, bias] + ([mask] if use_mask else [])
        return g.op('DeformConv', *inputs, strides_i=[stride_h, stride_w], pads_i=[pad_h, pad_w, pad_h, pad_w],
                    dilations_i=[dil_h, dil_w], group_i=n_weight_grps, offset_group_i=n_offset_grps,
                    kernel_shape_i=[kh, kw])

    torch.onnx.register_custom_op_symbolic('torchvision::deform_conv2d', deform_conv2d, OPSET)
    _registered = True


def static_hw_reason(model: nn.Module) -> Optional[str]:
    """Why ``model``'s traced graph holds one input size (its family's ``static_hw``); None where height and
    width can stay dynamic, as for any model the zoo has no record of."""
    try:
        return family_of(model).static_hw
    except TypeError:
        return None


def export_onnx(model: nn.Module, path: str, input_size: Tuple[int, int, int] = (3, 224, 224),
                dynamic_hw: Optional[bool] = None, opset: int = OPSET) -> Dict[str, object]:
    """Export ``model`` (eval mode, as given) to ``path``. ``dynamic_hw=None`` makes height and width
    dynamic unless the family's record gives a reason they cannot be (:func:`static_hw_reason`). Returns what
    was exported."""
    if opset < OPSET:
        raise ValueError(f'opset {opset} < {OPSET}: DeformConv (LITv2) and the zoo graphs need opset {OPSET}+')
    _register_symbolics()
    family = type(model).__name__
    if dynamic_hw is None:
        dynamic_hw = static_hw_reason(model) is None
    axes = {0: 'batch', 2: 'height', 3: 'width'} if dynamic_hw else {0: 'batch'}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    x = torch.randn(1, *input_size)
    with torch.no_grad():
        torch.onnx.export(model.eval(), (x,), path, dynamo=False, opset_version=opset, input_names=['input'],
                          output_names=['output'], dynamic_axes={'input': axes, 'output': {0: 'batch'}})
    return dict(path=path, family=family, dynamic_hw=dynamic_hw, opset=opset, input_size=tuple(input_size))


def _max_abs_error(model: nn.Module, run, inputs: Sequence[torch.Tensor], what: str) -> float:
    """Largest absolute difference between ``run(x)`` (an exported model; ``what`` names it in errors) and
    ``model(x)`` over ``inputs``; a shape that differs is an error."""
    worst = 0.
    for x in inputs:
        with torch.no_grad():
            want, got = model.eval()(x), run(x)
        if got.shape != want.shape:
            raise RuntimeError(f'{what} gives {tuple(got.shape)} for input {tuple(x.shape)}, PyTorch '
                               f'{tuple(want.shape)}')
        worst = max(worst, (got - want).abs().max().item())
    return worst


def check_onnx(model: nn.Module, path: str, inputs: Sequence[torch.Tensor]) -> float:
    """Largest absolute difference between onnxruntime's and PyTorch's outputs over ``inputs``."""
    import onnxruntime as ort
    session = ort.InferenceSession(path, providers=['CPUExecutionProvider'])
    name = session.get_inputs()[0].name
    return _max_abs_error(model, lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0]), inputs,
                          f'{path}: onnxruntime')


def export_program(model: nn.Module, path: str, input_size: Tuple[int, int, int] = (3, 224, 224)) -> Dict[str, object]:
    """``torch.export`` ``model`` (eval mode, as given) with a dynamic batch at a fixed height and width, saved
    by ``torch.export.save``."""
    x = torch.randn(2, *input_size)  # batch 2: a batch of 1 would be specialized
    batch = torch.export.Dim('batch', min=1, max=4096)
    with torch.no_grad():
        program = torch.export.export(model.eval(), (x,), dynamic_shapes=({0: batch},))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.export.save(program, path)
    return dict(path=path, family=type(model).__name__, dynamic_hw=False, input_size=tuple(input_size))


def export_torchscript(model: nn.Module, path: str, input_size: Tuple[int, int, int] = (3, 224, 224)) -> Dict[str, object]:
    """``torch.jit.trace`` ``model`` (eval mode, as given) at ``input_size``, saved by ``torch.jit.save``. The
    traced graph takes other batch sizes; sizes computed in Python from H and W are frozen, as for ONNX."""
    x = torch.randn(1, *input_size)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        traced = torch.jit.trace(model.eval(), (x,), check_trace=False)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.jit.save(traced, path)
    return dict(path=path, family=type(model).__name__, dynamic_hw=False, input_size=tuple(input_size))


def check_saved(model: nn.Module, path: str, inputs: Sequence[torch.Tensor]) -> float:
    """Largest absolute difference between a saved ``.pt2`` / ``.pt`` module's outputs and ``model``'s."""
    loaded = torch.export.load(path).module() if path.endswith('.pt2') else torch.jit.load(path)
    return _max_abs_error(model, loaded, inputs, f'{path}:')


def check_inputs(input_size: Tuple[int, int, int], dynamic_hw: bool, seed: int = 0) -> List[torch.Tensor]:
    """Inputs a check runs: batch 1 and 2 at the export size, and other sizes where height and width are
    dynamic (one needing padding in every family: 208 x 240)."""
    g = torch.Generator().manual_seed(seed)
    c, h, w = input_size
    shapes = [(1, c, h, w), (2, c, h, w)] + ([(1, c, h + 32, w - 32), (1, c, h - 16, w + 16)] if dynamic_hw else [])
    return [torch.randn(*s, generator=g) for s in shapes]


def file_size(path: str) -> int:
    """Bytes of an exported model: the file, with OpenVINO's weights (.bin), or a Core ML package directory."""
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
    extra = path[:-len('.xml')] + '.bin' if path.endswith('.xml') else None
    return os.path.getsize(path) + (os.path.getsize(extra) if extra and os.path.exists(extra) else 0)
