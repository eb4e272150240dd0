"""Deploy runtimes beyond eager PyTorch and ONNX Runtime fp32, each taking the deploy form:

- **int8, PT2E** (:func:`quantize`): the model captured by ``torch.export``, annotated by a quantizer, observed on
  calibration images and converted to quantize / dequantize pairs around the convolutions and Linears, from
  ``torchao.quantization.pt2e`` (where PyTorch moved the flow; the pinned ExecuTorch's XNNPACK quantizer needs
  it too, so one flow serves both). ``backend='x86-inductor'``: ``X86InductorQuantizer`` (per-channel int8
  weights, uint8 activations), run through ``torch.compile`` with freezing (:func:`compile_int8`), which
  lowers each pattern to oneDNN's int8 kernels. ``backend='xnnpack'``: ``XNNPACKQuantizer`` (symmetric,
  per-channel), for ExecuTorch.
- **int8, ONNX Runtime** (:func:`quantize_onnx`): static QDQ quantization of the exported ONNX file.
- **OpenVINO** (:func:`export_openvino`): ``openvino.convert_model`` of the torch module, run by the CPU
  plugin in fp32 (``INFERENCE_PRECISION_HINT``: the plugin would otherwise pick bf16 on CPUs that have it);
  with calibration images, NNCF's post-training int8.
- **ExecuTorch** (:func:`export_executorch`): a ``.pte`` program with the XNNPACK delegate (the library phones
  run), fp32 or int8 (``XNNPACKQuantizer``), run by ExecuTorch's Python runtime.
- **Core ML** (:func:`export_coreml`): an fp16 ML Program (``.mlpackage``). Core ML predicts only on macOS;
  here the converted program is checked (input, output, the operations it holds).

What stays in float on purpose, in every int8 path: attention (the softmax and both products: SDPA is not
annotated by the PT2E quantizers, and ONNX Runtime is told to leave MatMuls between two activations),
LSNet's per-pixel 3x3 aggregation (an elementwise multiply-add whose kernels are activations), LITv2's
deformable convolution and its offsets, every norm and activation. Only convolutions and Linears (weights
and their inputs) are int8; :func:`quantization_summary` lists what a converted graph holds.
"""
import collections
import contextlib
import copy
import os
import sys
import tempfile
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from ..models import create_model
from .export import (FORMATS, INT8_FORMATS, OPSET, _max_abs_error, check_inputs, check_onnx, check_saved,
                     export_onnx, export_program, export_torchscript, file_size)
from .reparam import foldable_modules, reparameterize

__all__ = ['QUANT_BACKENDS', 'UnsupportedByRuntime', 'plain_layout', 'calibration_batches', 'quantize',
           'quantization_summary', 'compile_int8', 'save_int8_program', 'quantize_onnx', 'export_openvino',
           'openvino_runner',
           'export_executorch', 'executorch_runner', 'export_coreml', 'inspect_coreml', 'bf16_runner',
           'FLOAT_RUNTIMES', 'INT8_RUNTIMES', 'RUNTIMES', 'PRECISION', 'deployed', 'export_for_runtime', 'export_and_check']

QUANT_BACKENDS = ('x86-inductor', 'xnnpack')


class UnsupportedByRuntime(RuntimeError):
    """A runtime cannot run a model: the message names the runtime and the operation it failed on."""


# ------------------------------------------------------------------------------------------------ inputs

def plain_layout(model: nn.Module) -> nn.Module:
    """A copy of ``model``'s deploy form (eval mode) in the default NCHW layout with plain Parameters: the conv
    families run channels-last in PyTorch (``channels_last``), which the exporters and delegates here should
    not see."""
    model = copy.deepcopy(model).eval()
    if foldable_modules(model):
        model = reparameterize(model, inplace=True)
    for m in model.modules():
        if getattr(m, 'channels_last', False):
            m.channels_last = False
    with torch.no_grad():
        for t in list(model.parameters()) + list(model.buffers()):
            t.data = t.data.contiguous()
            if isinstance(t, nn.Parameter) and type(t) is not nn.Parameter:
                # FusedLinear's version-tracking Parameter subclass: fake tensors (export, inductor's
                # freezing, ExecuTorch's lowering) cannot dispatch on it
                t.__class__ = nn.Parameter
    return model


def calibration_batches(source, input_size: Tuple[int, int, int], num_images: int = 256, batch_size: int = 32,
                        transform: Optional[Callable] = None, seed: int = 0) -> List[torch.Tensor]:
    """Calibration inputs: ``num_images`` images of an ImageFolder directory (``source``: a path), in
    ``transform`` (default: timm's ImageNet evaluation transform at ``input_size``), or with ``source=None``
    random normal images (enough to time a quantized model, not to judge its accuracy)."""
    if batch_size < 1 or num_images < 1:
        raise ValueError(f'num_images and batch_size must be >= 1, got {num_images} and {batch_size}')
    if source is None:
        g = torch.Generator().manual_seed(seed)
        sizes = [min(batch_size, num_images - i) for i in range(0, num_images, batch_size)]
        return [torch.randn(n, *input_size, generator=g) for n in sizes]
    if not os.path.isdir(source):
        raise FileNotFoundError(f'calibration directory {source!r} does not exist (an ImageFolder layout: '
                                'one sub-directory of images per class)')
    from timm.data import ImageDataset, create_transform, resolve_data_config
    if transform is None:
        transform = create_transform(**resolve_data_config({'input_size': tuple(input_size)}))
    dataset = ImageDataset(source, transform=transform)
    if len(dataset) == 0:
        raise ValueError(f'calibration directory {source!r} holds no images')
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(dataset), generator=g)[:num_images].tolist()
    images = [dataset[i][0] for i in order]
    return [torch.stack(images[i:i + batch_size]) for i in range(0, len(images), batch_size)]


def _images(calibration: Iterable, input_size: Tuple[int, int, int]) -> List[torch.Tensor]:
    """The image batches of ``calibration`` (batches, or a data loader's ``(images, targets)`` pairs); random
    ones at ``input_size`` when None (timing, not accuracy). An empty calibration is an error."""
    if calibration is None:
        return calibration_batches(None, input_size, 32, 16)
    batches = [b[0] if isinstance(b, (tuple, list)) else b for b in calibration]
    if not batches:
        raise ValueError('calibration needs at least one batch of images')
    return batches


# --------------------------------------------------------------------------------------------- int8 PT2E

def _quantizer(backend: str):
    if backend == 'x86-inductor':
        import torchao.quantization.pt2e.quantizer.x86_inductor_quantizer as xiq
        quantizer = xiq.X86InductorQuantizer()
        return quantizer.set_global(xiq.get_default_x86_inductor_quantization_config())
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                          get_symmetric_quantization_config)
    return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))


def quantize(model: nn.Module, calibration: Iterable[torch.Tensor], backend: str = 'x86-inductor') -> torch.fx.GraphModule:
    """int8 post-training quantization of ``model``'s deploy form (PT2E), observed on ``calibration`` (batches
    of images, as :func:`calibration_batches` gives, or ``(images, targets)`` pairs of a data loader).

    Returns the converted graph: calling it computes with quantize / dequantize pairs around float kernels
    (the reference numerics); :func:`compile_int8` runs it on x86's int8 kernels (``backend='x86-inductor'``),
    :func:`export_executorch` lowers an ``'xnnpack'`` graph to the XNNPACK delegate."""
    if backend not in QUANT_BACKENDS:
        raise ValueError(f'backend must be one of {QUANT_BACKENDS}, got {backend!r}')
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    batches = _images(calibration, None)
    x = batches[0]
    model = plain_layout(model)
    with torch.no_grad():
        # strict capture: the quantizers find convolutions and Linears by the source-module records
        # (source_fn_stack) that only the strict tracer writes with torch 2.9
        graph = torch.export.export(model, (x,), dynamic_shapes=({0: torch.export.Dim.AUTO},), strict=True).module()
        prepared = prepare_pt2e(graph, _quantizer(backend))
        for b in batches:
            prepared(b)
        with _no_qat_conv_bn_fold():
            return convert_pt2e(prepared)


@contextlib.contextmanager
def _no_qat_conv_bn_fold():
    """convert_pt2e folds quantization-aware training's conv-BN pairs, building 96 pattern graphs (about 10 s)
    whenever any BatchNorm is in the graph. Post-training ``prepare_pt2e`` has already folded every conv-BN
    pair, so for the BatchNorms left in a deploy form (LSNet's, BiFormer's) the pass has nothing to do."""
    from torchao.quantization.pt2e import quantize_pt2e
    fold = getattr(quantize_pt2e, '_fold_conv_bn_qat', None)
    if fold is None:  # another torchao: its convert as it is
        yield
        return
    quantize_pt2e._fold_conv_bn_qat = lambda m: m
    try:
        yield
    finally:
        quantize_pt2e._fold_conv_bn_qat = fold


_COMPUTE = {'conv2d', 'linear', 'matmul', 'bmm', 'scaled_dot_product_attention', 'addcmul', 'deform_conv2d',
            'convolution', 'addmm', 'mm', 'conv_transpose2d'}


def quantization_summary(graph: torch.fx.GraphModule) -> Dict[str, collections.Counter]:
    """The compute operations of a converted graph, int8 (a weight dequantized from int8 per channel) or
    float: ``{'int8': Counter(op), 'float': Counter(op)}``."""
    out = {'int8': collections.Counter(), 'float': collections.Counter()}
    for node in graph.graph.nodes:
        if node.op != 'call_function':
            continue
        name = getattr(node.target, '__name__', str(node.target)).split('.')[0]
        if name not in _COMPUTE:
            continue
        dequantized = [a for a in node.args[:2] if isinstance(a, torch.fx.Node) and 'dequantize' in str(a.target)]
        out['int8' if dequantized else 'float'][name] += 1
    return out


class _Int8Compiled:
    """A converted x86 graph under ``torch.compile`` with inductor's freezing on (weights become constants,
    so each quantize / dequantize pattern lowers to a prepacked oneDNN int8 kernel), compiled on first call."""

    def __init__(self, graph: torch.fx.GraphModule):
        self.fn = torch.compile(graph)

    def __call__(self, x):
        import torch._inductor.config as inductor_config
        with torch.no_grad(), inductor_config.patch(freezing=True):
            return self.fn(x)


def compile_int8(graph: torch.fx.GraphModule) -> Callable:
    return _Int8Compiled(graph)


def save_int8_program(graph: torch.fx.GraphModule, path: str, input_size: Tuple[int, int, int]) -> str:
    """A converted PT2E graph saved as a ``torch.export`` program (``.pt2``) taking any batch size;
    ``torch.export.load(path).module()`` runs its reference numerics, :func:`compile_int8` its int8 kernels."""
    batch = torch.export.Dim('batch', min=1, max=4096)
    with torch.no_grad():
        program = torch.export.export(graph, (torch.randn(2, *input_size),), dynamic_shapes=({0: batch},))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    torch.export.save(program, path)
    return path


# ---------------------------------------------------------------------------------------- ONNX Runtime

def quantize_onnx(model_path: str, out_path: str, calibration: Iterable[torch.Tensor]) -> List[str]:
    """Static int8 QDQ quantization of an ONNX file (uint8 activations, per-channel int8 weights, as ONNX
    Runtime recommends on x86), calibrated on ``calibration``. Convolutions, Gemms and MatMuls with a weight
    are quantized; a MatMul of two activations (attention) stays float. Returns the MatMuls kept float."""
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    graph = onnx.load(model_path).graph
    weights = {i.name for i in graph.initializer} | {n.output[0] for n in graph.node if n.op_type == 'Constant'}
    keep = [n.name for n in graph.node if n.op_type == 'MatMul' and not any(i in weights for i in n.input)]
    input_name = graph.input[0].name
    batches = _images(calibration, None)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(batches)

        def get_next(self):
            b = next(self.it, None)
            return None if b is None else {input_name: b.numpy()}

    quantize_static(model_path, out_path, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=['Conv', 'Gemm', 'MatMul'], nodes_to_exclude=keep)
    return keep


# -------------------------------------------------------------------------------------------- OpenVINO

def export_openvino(model: nn.Module, path: str, input_size: Tuple[int, int, int],
                    calibration: Optional[Iterable[torch.Tensor]] = None) -> Dict[str, object]:
    """Convert ``model``'s deploy form with OpenVINO's PyTorch frontend (dynamic batch, fixed height and
    width; its ONNX frontend has no DeformConv, which LITv2 needs) and save it (``path``: ``.xml`` beside its
    ``.bin``, weights kept fp32); with ``calibration``, quantize it to int8 by NNCF's post-training
    quantization first."""
    import openvino as ov
    model = plain_layout(model)
    with torch.no_grad():
        try:
            converted = ov.convert_model(model, example_input=torch.randn(1, *input_size),
                                         input=[ov.PartialShape([-1, *input_size])])
        except Exception as e:  # OpConversionFailure lists the operations without a conversion rule
            if 'OpConversionFailure' not in type(e).__name__:
                raise
            missing = [l.strip(' -') for l in str(e).splitlines() if 'No conversion rule' in l]
            raise UnsupportedByRuntime(f'OpenVINO cannot convert {type(model).__name__}: '
                                       f'{"; ".join(missing) or str(e).splitlines()[-1]}') from None
    if calibration is not None:
        import nncf
        batches = _images(calibration, input_size)
        # subset_size counts the dataset's items, here batches: every one of them is used
        converted = nncf.quantize(converted, nncf.Dataset(batches, lambda b: b.numpy()), subset_size=len(batches))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    ov.save_model(converted, path, compress_to_fp16=False)  # (save_model's default stores weights in fp16)
    return dict(path=path, precision='int8' if calibration is not None else 'fp32')


def openvino_runner(path: str, threads: Optional[int] = None) -> Callable:
    """A compiled OpenVINO model (CPU plugin, fp32 where not quantized, ``threads`` threads) called like the
    torch model."""
    import openvino as ov
    config = {'INFERENCE_PRECISION_HINT': 'f32', 'PERFORMANCE_HINT': 'LATENCY'}
    if threads:
        config['INFERENCE_NUM_THREADS'] = threads
    compiled = ov.Core().compile_model(path, 'CPU', config)
    return lambda x: torch.from_numpy(compiled(x.numpy())[0])


# ------------------------------------------------------------------------------------------ ExecuTorch

def _flatc() -> None:
    """ExecuTorch serializes through the ``flatc`` compiler its wheel installs beside the interpreter, which
    is not on PATH when the venv's python is called directly."""
    if not os.environ.get('FLATC_EXECUTABLE'):
        candidate = os.path.join(os.path.dirname(sys.executable), 'flatc')
        if os.path.exists(candidate):
            os.environ['FLATC_EXECUTABLE'] = candidate


def _xnnpack_means(program) -> None:
    """XNNPACK delegates a mean over a 4-D map only as ``dims=[-2, -1], keepdim=True``: rewrite the same
    means written with positive dims (and without keepdim, followed by a view) so that they are delegated."""
    g = program.graph_module.graph
    for node in list(g.nodes):
        if node.op != 'call_function' or node.target != torch.ops.aten.mean.dim:
            continue
        src = node.args[0]
        if src.meta['val'].dim() != 4 or sorted(d % 4 for d in node.args[1]) != [2, 3]:
            continue
        keepdim = node.args[2] if len(node.args) > 2 else node.kwargs.get('keepdim', False)
        if list(node.args[1]) in ([-2, -1], [-1, -2]) and keepdim:
            continue
        with g.inserting_before(node):
            mean = g.call_function(torch.ops.aten.mean.dim, (src, [-2, -1], True))
            mean.meta['val'] = src.meta['val'].mean((2, 3), keepdim=True)
            out = mean
            if not keepdim:
                out = g.call_function(torch.ops.aten.view.default, (mean, list(node.meta['val'].shape)))
                out.meta['val'] = node.meta['val']
        node.replace_all_uses_with(out)
        g.erase_node(node)
    program.graph_module.recompile()


# the operator namespaces ExecuTorch's runtime has kernels for (XNNPACK's delegate or its portable kernels)
_EXECUTORCH_NAMESPACES = ('aten', 'quantized_decomposed')


def _executorch_kernels(program) -> None:
    """Refuse, before lowering (which takes longer than the export), a program holding an operator that
    ExecuTorch's runtime has no kernel for, as its memory planning would ('Missing out variants')."""
    missing = {n.target._schema.name for n in program.graph_module.graph.nodes
               if n.op == 'call_function' and isinstance(n.target, torch._ops.OpOverload)
               and n.target.namespace not in _EXECUTORCH_NAMESPACES}
    if missing:
        raise UnsupportedByRuntime(f'Missing out variants: {missing}: ExecuTorch has no kernel for '
                                   f'{"these operations" if len(missing) > 1 else "this operation"}')


@contextlib.contextmanager
def _executorch_step(step: str, model: nn.Module):
    """A failure inside ExecuTorch's own tools (an assertion of its XNNPACK partitioner, an index error of the
    graph its quantizer prepared) as :class:`UnsupportedByRuntime` naming the step, the model and the original
    error. A ValueError or TypeError (a bad argument, as an empty calibration) passes unchanged."""
    try:
        yield
    except (UnsupportedByRuntime, ValueError, TypeError):
        raise
    except Exception as e:
        message = (str(e).strip().splitlines() or [''])[0]
        raise UnsupportedByRuntime(f'ExecuTorch cannot {step} {type(model).__name__}: {type(e).__name__}: '
                                   f'{message}') from e


def export_executorch(model: nn.Module, path: str, input_size: Tuple[int, int, int], batch_size: int = 1,
                      calibration: Optional[Iterable[torch.Tensor]] = None) -> Dict[str, object]:
    """``model``'s deploy form as an ExecuTorch program (``.pte``) for batches of ``batch_size``, every
    operation XNNPACK supports delegated to it; int8 (``XNNPACKQuantizer``) with ``calibration``."""
    _flatc()
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    x = torch.randn(batch_size, *input_size)
    if calibration is None:
        module = plain_layout(model)
    else:
        with _executorch_step('quantize for XNNPACK', model):
            module = quantize(model, calibration, 'xnnpack')
    with torch.no_grad():
        program = torch.export.export(module, (x,))
    _executorch_kernels(program)
    _xnnpack_means(program)
    with _executorch_step('lower to XNNPACK', model):
        lowered = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(lowered.buffer)
    return dict(path=path, precision='int8' if calibration is not None else 'fp32', batch_size=batch_size)


@contextlib.contextmanager
def _native_output(sink: List[str]):
    """Collect what native code writes to file descriptors 1 and 2 (ExecuTorch logs the failing step there)."""
    import io
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    text = io.StringIO()  # (the bindings may also write through Python's streams)
    with tempfile.TemporaryFile(mode='w+b') as f:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            with contextlib.redirect_stdout(text), contextlib.redirect_stderr(text):
                yield
        finally:
            import ctypes
            ctypes.CDLL(None).fflush(None)  # the C stdio buffers, before the descriptors go back
            for fd, old in zip((1, 2), saved):
                os.dup2(old, fd)
                os.close(old)
            f.seek(0)
            sink.append(f.read().decode(errors='replace') + text.getvalue())


def _executorch_failure(log: str) -> str:
    lines = [l.split('] ', 1)[-1] for l in log.splitlines() if 'failed' in l.lower() or 'Attempted' in l]
    return '; '.join(lines[:3]) or log.strip()[-300:]


def executorch_runner(path: str, threads: Optional[int] = None) -> Callable:
    """An ExecuTorch program run by its Python runtime (``threads`` XNNPACK threads), called like the torch
    model; a failure raises :class:`UnsupportedByRuntime` naming the operation ExecuTorch reports."""
    from executorch.runtime import Runtime
    if threads:
        from executorch.extension.pybindings.portable_lib import _unsafe_reset_threadpool
        _unsafe_reset_threadpool(threads)
    method = Runtime.get().load_program(path).load_method('forward')

    def run(x):
        log: List[str] = []
        try:
            with _native_output(log):
                return method.execute([x.contiguous()])[0]
        except RuntimeError as e:
            raise UnsupportedByRuntime(f'ExecuTorch cannot run {path}: {_executorch_failure("".join(log))} '
                                       f'({e})') from None
    return run


# ---------------------------------------------------------------------------------------------- Core ML

def export_coreml(model: nn.Module, path: str, input_size: Tuple[int, int, int]) -> Dict[str, object]:
    """``model``'s deploy form as a Core ML ML Program (fp16 compute, iOS 17 / macOS 14 operation set) saved
    as ``path`` (``.mlpackage``); an operation coremltools cannot convert raises
    :class:`UnsupportedByRuntime` naming it."""
    import coremltools as ct
    model = plain_layout(model)
    x = torch.randn(1, *input_size)
    with torch.no_grad():
        program = torch.export.export(model, (x,)).run_decompositions({})
    try:
        converted = ct.convert(program, convert_to='mlprogram', compute_precision=ct.precision.FLOAT16,
                               minimum_deployment_target=ct.target.iOS17)
    except (NotImplementedError, RuntimeError, ValueError) as e:
        raise UnsupportedByRuntime(f'coremltools cannot convert {type(model).__name__}: {str(e).splitlines()[0]}') from None
    converted.save(path)
    return dict(path=path, precision='fp16', **inspect_coreml(path))


def inspect_coreml(path: str) -> Dict[str, object]:
    """What a saved ML Program holds, read without Core ML (which predicts only on macOS): its input and output
    names and shapes and the count of each operation."""
    import coremltools as ct
    spec = ct.utils.load_spec(path)
    shape = lambda f: tuple(int(d) for d in f.type.multiArrayType.shape)
    ops = collections.Counter()
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            for op in block.operations:
                ops[op.type] += 1
    return dict(spec_type=spec.WhichOneof('Type'),
                inputs={f.name: shape(f) for f in spec.description.input},
                outputs={f.name: shape(f) for f in spec.description.output}, ops=dict(ops))


# ------------------------------------------------------------------------------------------------- bf16

def bf16_runner(model: nn.Module) -> Callable:
    """``model`` under CPU autocast to bf16 (its matrix products and convolutions in bf16, accumulations and
    the ops autocast keeps in fp32 in fp32); outputs returned as fp32."""
    def run(x):
        with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16):
            return model(x).float()
    return run


# --------------------------------------------------------------------------------------- one entry point

# every runtime a deploy form is measured or run in; 'coreml' converts only (no predictions off macOS)
FLOAT_RUNTIMES = ('eager', 'compiled', 'onnx', 'bf16', 'openvino', 'executorch')
INT8_RUNTIMES = INT8_FORMATS  # every int8 runtime is also an export format of the same name
RUNTIMES = FLOAT_RUNTIMES + INT8_RUNTIMES
PRECISION = dict({r: 'fp32' for r in FLOAT_RUNTIMES}, bf16='bf16', **{r: 'int8' for r in INT8_RUNTIMES})


class _OnnxSession:
    """An ONNX file run by an onnxruntime CPU session with ``threads`` threads, called like the model."""

    def __init__(self, path: str, threads: Optional[int]):
        import onnxruntime as ort
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # onnxruntime's threads spin for a while after each run by default: taking turns with PyTorch models
        # on the same cores, the spinning would be charged to whichever model runs next
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        self.session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor):
        return torch.from_numpy(self.session.run(None, {self.input: x.numpy()})[0])


class _PerBatch:
    """An ExecuTorch program per batch size (its programs have static shapes), exported on first use."""

    def __init__(self, model, input_size, workdir, calibration, threads):
        self.model, self.input_size, self.workdir = model, tuple(input_size), workdir
        self.calibration, self.threads, self.runners, self.path = calibration, threads, {}, None

    def __call__(self, x):
        n = x.shape[0]
        if n not in self.runners:
            path = os.path.join(self.workdir, f'{id(self)}_b{n}.pte')
            export_executorch(self.model, path, self.input_size, n, self.calibration)
            self.path = self.path or path
            self.runners[n] = executorch_runner(path, self.threads)
        return self.runners[n](x)


def deployed(model: nn.Module, runtime: str, input_size: Tuple[int, int, int], workdir: str,
             calibration: Optional[Sequence[torch.Tensor]] = None, threads: Optional[int] = None) -> Callable:
    """``model`` (its deploy form for every runtime but 'eager' and 'compiled', which take it as given) in
    ``runtime`` (:data:`RUNTIMES`), called like the model on batches at ``input_size``; files go to
    ``workdir`` and the callable's ``path`` names the file (None in PyTorch). The int8 runtimes calibrate on
    ``calibration`` (random images when None: enough for timing, not for accuracy)."""
    if runtime not in RUNTIMES:
        raise ValueError(f'runtime {runtime!r} is not one of {RUNTIMES}')
    input_size = tuple(input_size)
    if runtime in INT8_RUNTIMES:
        calibration = _images(calibration, input_size)
    stem = os.path.join(workdir, f'{id(model)}_{runtime}')
    path = None
    if runtime == 'eager':
        fn = model
    elif runtime == 'compiled':
        fn = torch.compile(model, dynamic=False)
    elif runtime == 'bf16':
        fn = bf16_runner(model)
    elif runtime == 'int8-inductor':
        fn = compile_int8(quantize(model, calibration, 'x86-inductor'))
    elif runtime in ('onnx', 'int8-ort'):
        import warnings
        path = stem + '.onnx'
        with warnings.catch_warnings():  # the tracer's notes on Python values it freezes (sizes, here fixed)
            warnings.simplefilter('ignore')
            export_onnx(plain_layout(model), path, input_size, dynamic_hw=False)
        if runtime == 'int8-ort':
            quantize_onnx(path, stem + '.int8.onnx', calibration)
            path = stem + '.int8.onnx'
        fn = _OnnxSession(path, threads)
    elif runtime in ('openvino', 'openvino-int8'):
        path = stem + '.xml'
        export_openvino(model, path, input_size, calibration if runtime == 'openvino-int8' else None)
        fn = openvino_runner(path, threads)
    else:  # executorch, executorch-int8
        return _PerBatch(model, input_size, workdir, calibration if runtime == 'executorch-int8' else None, threads)
    if not hasattr(fn, 'path'):
        fn = _Called(fn, path)
    return fn


class _Called:
    def __init__(self, fn, path):
        self.fn, self.path = fn, path

    def __call__(self, x):
        return self.fn(x)


def export_for_runtime(model: nn.Module, path: str, input_size, format: str, calibration) -> Dict[str, object]:
    """``export_and_check`` for the runtimes' formats: export ``model`` (its deploy form) for ``format`` and
    compare the result, run back, with PyTorch (Core ML: inspected)."""
    if format in INT8_FORMATS:
        calibration = _images(calibration, input_size)
    row = dict(path=path, dynamic_hw=False, input_size=tuple(input_size),
               precision='int8' if format in INT8_FORMATS else ('fp16' if format == 'coreml' else 'fp32'))
    inputs = check_inputs(input_size, False)
    if format == 'int8-inductor':
        save_int8_program(quantize(model, calibration, 'x86-inductor'), path, input_size)
        row['max_abs_err'] = check_saved(model, path, inputs)
    elif format == 'int8-ort':
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            fp32 = os.path.join(tmp, 'model.onnx')
            export_onnx(plain_layout(model), fp32, input_size, dynamic_hw=False)
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            row['float_matmuls'] = len(quantize_onnx(fp32, path, calibration))
        row['max_abs_err'] = check_onnx(model, path, inputs)
    elif format in ('openvino', 'openvino-int8'):
        export_openvino(model, path, input_size, calibration if format == 'openvino-int8' else None)
        row['max_abs_err'] = _max_abs_error(model, openvino_runner(path), inputs, f'{path}: OpenVINO')
    elif format in ('executorch', 'executorch-int8'):
        export_executorch(model, path, input_size, 1, calibration if format == 'executorch-int8' else None)
        run = executorch_runner(path)
        row['max_abs_err'] = _max_abs_error(model, run, [x for x in inputs if len(x) == 1], f'{path}: ExecuTorch')
    else:  # coreml
        info = export_coreml(model, path, input_size)
        row['coreml'] = info
        row['max_abs_err'] = None
    return row


def export_and_check(name: str, out_dir: str, deploy: bool = True, checkpoint: Optional[str] = None,
                     input_size: Optional[Tuple[int, int, int]] = None, dynamic_hw: Optional[bool] = None,
                     opset: int = OPSET, model: Optional[nn.Module] = None, format: str = 'onnx',
                     calibration: Optional[Sequence[torch.Tensor]] = None) -> Dict[str, object]:
    """Build ``name`` (weights from ``checkpoint`` if given), take its deploy form, export it in ``format`` (a
    :data:`FORMATS` key) and compare the exported model's outputs with PyTorch's (``max_abs_err``; Core ML,
    which predicts only on macOS, is inspected instead: ``coreml``). The int8 formats calibrate on
    ``calibration`` (batches of images; random ones when None, which says nothing of accuracy). ``model``
    replaces the built model (tests pass one with non-trivial weights)."""
    if format not in FORMATS:
        raise ValueError(f'unknown export format {format!r}; one of {sorted(FORMATS)}')
    if model is None:
        model = create_model(name, pretrained=bool(checkpoint),
                             **(dict(pretrained_cfg_overlay=dict(file=checkpoint)) if checkpoint else {}))
    model = model.eval()
    if deploy:
        model = reparameterize(model)
    input_size = tuple(input_size or model.pretrained_cfg.get('input_size', (3, 224, 224)))
    path = os.path.join(out_dir, f'{name}{"" if deploy else ".train"}{FORMATS[format]}')
    row = dict(model=name, form='deploy' if deploy else 'train', format=format)
    if format == 'onnx':
        row.update(export_onnx(model, path, input_size, dynamic_hw, opset))
        row['max_abs_err'] = check_onnx(model, path, check_inputs(input_size, row['dynamic_hw']))
    elif format in ('torch.export', 'torchscript'):
        row.update((export_program if format == 'torch.export' else export_torchscript)(model, path, input_size))
        row['max_abs_err'] = check_saved(model, path, check_inputs(input_size, False))
    else:
        row.update(export_for_runtime(model, path, input_size, format, calibration))
    row['size_mb'] = file_size(path) / 2 ** 20
    return row
