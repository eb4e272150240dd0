"""The deploy runtimes (zoo.deploy.runtimes) on every family: OpenVINO and ExecuTorch in fp32 against eager,
bf16 autocast, int8 (PT2E for inductor and XNNPACK, ONNX Runtime QDQ, NNCF), Core ML's converted program; the
files load back, and a runtime that cannot run a family says which operation. Exporters and compilers take each
family's smallest variant with one block a stage (conftest.SHALLOW, its deploy form): their cost grows with the
blocks, what they can get wrong is in the kinds of block; docs/deploy.md measures the whole variants."""
import collections
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import zoo
from zoo.deploy import export_and_check
from zoo.deploy import runtimes as rt
from zoo.deploy.runtimes import PRECISION

from conftest import SMALLEST, randomize_norms, shallow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SIZE = (3, 64, 64)
# what the pinned ExecuTorch (1.0.1) cannot run: its XNNPACK delegate returns a (B, C, 1, 1) map with its
# dimensions permuted (FasterNet's head, SHViT's squeeze-excite), and the runtime names the failing step; it has
# no kernel for LITv2's deformable conv; its int8 path fails on SHViT's partition (lowering) and BiFormer's gather
# (calibrating the graph its quantizer prepared)
# (the exception and the pattern its message matches)
_RESIZE = (rt.UnsupportedByRuntime, r'ExecuTorch cannot run .*Failed to resize output tensor for XNNExecutor')
_NO_DEFORM = (rt.UnsupportedByRuntime, re.escape("Missing out variants: {'torchvision::deform_conv2d'}"))
EXECUTORCH_FAILS = {'fasternet_t0': _RESIZE, 'shvit_s1': _RESIZE, 'litv2_s': _NO_DEFORM}
EXECUTORCH_INT8_FAILS = {'shvit_s1': (rt.UnsupportedByRuntime, 'ExecuTorch cannot lower to XNNPACK SHViT: '
                                       'AssertionError: Invalid partition, found dependency cycles'),
                         'biformer_t': (rt.UnsupportedByRuntime, 'ExecuTorch cannot quantize for XNNPACK BiFormer: '
                                        'IndexError: tensors used as indices must be long'),
                         'litv2_s': _NO_DEFORM}
# what coremltools (9.0) cannot convert: LITv2's non-finite check before its deformable conv, LSNet's
# multiply-add of its per-pixel kernels (and, given a converter for that, its rank-6 kernel layout)
COREML_FAILS = {'litv2_s': 'isfinite', 'lsnet_t': 'addcmul'}


def _model(name, seed=0):
    torch.manual_seed(seed)
    return randomize_norms(zoo.create_model(name, num_classes=10), seed).eval()


def _deploy(name, seed=0):
    """``name`` with one block a stage (conftest.SHALLOW: its widths, every kind of block), its deploy form."""
    torch.manual_seed(seed)
    return zoo.reparameterize(shallow(name, seed, num_classes=10).eval())


def _inputs(n=2, seed=1):
    return torch.randn(n, *SIZE, generator=torch.Generator().manual_seed(seed))


def _close(got, want, tol=1e-4):
    scale = max(1.0, want.abs().max().item())
    assert (got - want).abs().max().item() <= tol * scale, (got - want).abs().max().item()


@pytest.mark.parametrize('name', SMALLEST)
def test_openvino_fp32_matches_eager_and_loads_back(name, tmp_path):
    model = _deploy(name)
    x = _inputs()
    with torch.no_grad():
        want = model(x)
    info = rt.export_openvino(model, str(tmp_path / f'{name}.xml'), SIZE)
    assert os.path.exists(tmp_path / f'{name}.bin') and info['precision'] == 'fp32'
    _close(rt.openvino_runner(info['path'], threads=1)(x), want)


@pytest.mark.parametrize('name', SMALLEST)
def test_executorch_fp32_and_int8_run_or_name_the_failure(name, tmp_path):
    """Each family (a shallow copy of its smallest variant: every kind of block) as ExecuTorch programs with
    the XNNPACK delegate, fp32 and int8, loaded back by ExecuTorch's runtime: fp32 within 1e-4 of eager, int8
    following fp32; where the delegate or the exporter cannot take a family, the error names the step or op."""
    model = _deploy(name)
    x = _inputs(1)
    with torch.no_grad():
        want = model(x)
    calibration = rt.calibration_batches(None, SIZE, 8, 4)
    for runtime, expected in (('executorch', EXECUTORCH_FAILS), ('executorch-int8', EXECUTORCH_INT8_FAILS)):
        path = str(tmp_path / f'{name}.{runtime}.pte')
        int8 = calibration if runtime == 'executorch-int8' else None
        if name in expected:
            error, message = expected[name]
            with pytest.raises(error, match=message):
                rt.export_executorch(model, path, SIZE, 1, int8)
                rt.executorch_runner(path, threads=1)(x)
            continue
        assert rt.export_executorch(model, path, SIZE, 1, int8)['precision'] == PRECISION[runtime]
        got = rt.executorch_runner(path, threads=1)(x)
        if int8 is None:
            _close(got, want)
        else:
            assert _cosine(got, want) >= 0.98


@pytest.mark.parametrize('name', SMALLEST)
def test_bf16_autocast_error_is_bounded(name):
    """bf16 autocast (docs/deploy.md gives each family's error on the digits): logits within 5% of their range
    of fp32's, and the same class for nearly every input."""
    model = _model(name)
    x = _inputs(8)
    with torch.no_grad():
        want = model(x)
    got = rt.bf16_runner(model)(x)
    assert got.dtype == torch.float32
    span = (want.max() - want.min()).item()
    assert (got - want).abs().max().item() <= 0.05 * span
    assert (got.argmax(-1) == want.argmax(-1)).float().mean().item() >= 0.75


def _cosine(a, b):
    return F.cosine_similarity(a.flatten(), b.flatten(), dim=0).item()


@pytest.mark.parametrize('name', SMALLEST)
def test_int8_onnxruntime_follows_fp32(name, tmp_path):
    """ONNX Runtime's QDQ file loads back and gives logits of cosine similarity >= 0.98 to fp32's on held-out
    inputs of the calibration distribution; convolutions and weight products are quantized, attention
    products stay float."""
    model = _deploy(name)
    calibration = rt.calibration_batches(None, SIZE, 16, 8)
    x = _inputs(4)
    with torch.no_grad():
        want = model(x)
    row = export_and_check(name, str(tmp_path), model=model, input_size=SIZE, format='int8-ort',
                           calibration=calibration)
    assert row['size_mb'] > 0 and row['precision'] == 'int8'
    assert _cosine(rt._OnnxSession(row['path'], 1)(x), want) >= 0.98
    import onnx
    graph = onnx.load(row['path']).graph
    assert {'QuantizeLinear', 'DequantizeLinear'} <= {n.op_type for n in graph.node}
    if name in ('biformer_t', 'litv2_s', 'shvit_s1'):  # their attention's products are left float
        assert row['float_matmuls'] > 0


@pytest.mark.parametrize('name', SMALLEST)
def test_int8_openvino_nncf_follows_fp32(name, tmp_path):
    """NNCF's int8 OpenVINO model of each family (a shallow copy of its smallest variant), read back from its
    files: logits following fp32's."""
    model = _deploy(name)
    calibration = rt.calibration_batches(None, SIZE, 16, 8)
    x = _inputs(4)
    path = str(tmp_path / f'{name}.int8.xml')
    rt.export_openvino(model, path, SIZE, calibration)
    with torch.no_grad():
        assert _cosine(rt.openvino_runner(path, 1)(x), model(x)) >= 0.98


@pytest.mark.parametrize('name', SMALLEST)
def test_int8_pt2e_inductor_on_every_family(name, tmp_path):
    """Each family (a shallow copy of its smallest variant) through PT2E's x86 quantizer: every convolution
    and Linear int8, the converted graph's reference numerics close to fp32, the saved .pt2 program loading
    back to the same outputs, and the whole graph under torch.compile with freezing (oneDNN's int8 kernels)
    agreeing with the reference numerics."""
    model = _deploy(name)
    calibration = rt.calibration_batches(None, SIZE, 16, 8)
    x = _inputs(4)
    with torch.no_grad():
        want = model(x)
    graph = zoo.quantize(model, calibration, backend='x86-inductor')
    summary = rt.quantization_summary(graph)
    assert summary['int8'] and not summary['float'].get('linear') and not summary['float'].get('conv2d')
    with torch.no_grad():
        reference = graph(x)
    assert _cosine(reference, want) >= 0.98
    path = rt.save_int8_program(graph, str(tmp_path / f'{name}.pt2'), SIZE)
    with torch.no_grad():
        _close(torch.export.load(path).module()(x), reference, tol=1e-5)
    compiled = rt.compile_int8(graph)
    _close(compiled(x), reference, tol=2e-2)
    # each int8 Linear of the graph runs as oneDNN's int8 kernel once compiled, not as a float product on its
    # dequantized weight (the NHWC view of an NCHW map reached inductor as a batched product it kept float)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        compiled(x)
    calls = collections.Counter({e.key: e.count for e in prof.key_averages()})
    assert calls['onednn::qlinear_pointwise'] == summary['int8']['linear']


@pytest.mark.parametrize('name', SMALLEST)
def test_coreml_program_converts_or_names_the_operation(name, tmp_path):
    """Core ML predicts only on macOS: the saved ML Program is read back and checked (input, output, its
    operations: every convolution and matrix product converted, no op left unconverted); LITv2's non-finite
    check has no Core ML operation, which the error names."""
    model = _deploy(name)
    path = str(tmp_path / f'{name}.mlpackage')
    if name in COREML_FAILS:
        with pytest.raises(rt.UnsupportedByRuntime, match=COREML_FAILS[name]):
            rt.export_coreml(model, path, SIZE)
        return
    info = rt.export_coreml(model, path, SIZE)
    assert info['spec_type'] == 'mlProgram'
    assert list(info['inputs'].values()) == [(1, *SIZE)] and list(info['outputs'].values()) == [(1, 10)]
    assert info['ops'].get('conv', 0) + info['ops'].get('linear', 0) + info['ops'].get('matmul', 0) > 0
    assert rt.inspect_coreml(path) == {k: info[k] for k in ('spec_type', 'inputs', 'outputs', 'ops')}


def test_bad_arguments_are_named(tmp_path):
    model = _model('lsnet_t')
    with pytest.raises(ValueError, match="backend must be one of .*got 'arm'"):
        zoo.quantize(model, [torch.randn(1, *SIZE)], backend='arm')
    with pytest.raises(ValueError, match='at least one batch'):
        zoo.quantize(model, [])
    with pytest.raises(FileNotFoundError, match='calibration directory'):
        rt.calibration_batches(str(tmp_path / 'none'), SIZE)
    with pytest.raises(ValueError, match="runtime 'tensorrt' is not one of"):
        rt.deployed(model, 'tensorrt', SIZE, str(tmp_path))


def _image_folder(root, classes=2, per_class=6, size=40):
    g = np.random.default_rng(0)
    for c in range(classes):
        os.makedirs(root / str(c), exist_ok=True)
        for i in range(per_class):
            Image.fromarray(g.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / str(c) / f'{i}.png')
    return root


@pytest.mark.slow
def test_tools_quantize_and_export_cli(tmp_path):
    """tools/quantize.py measures top-1 and errors of several runtimes on an ImageFolder; tools/export.py
    writes an OpenVINO int8 model calibrated on a folder, and a Core ML package."""
    data = _image_folder(tmp_path / 'data')
    ckpt = tmp_path / 'fasternet_t0.pth'
    model = _model('fasternet_t0')
    model.reset_classifier(2)
    torch.save(model.state_dict(), ckpt)
    out = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'quantize.py'), '--model', 'fasternet_t0',
                          '--num-classes', '2', '--checkpoint', str(ckpt), '--calibration', str(data), '--val',
                          str(data), '--runtimes', 'eager', 'int8-ort', 'openvino', '--threads', '1',
                          '--markdown', str(tmp_path / 'table.md')], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    table = (tmp_path / 'table.md').read_text()
    assert '| fasternet_t0 | int8-ort | int8 |' in table and '| fasternet_t0 | openvino | fp32 |' in table
    out = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', 'export.py'), '--model', 'fasternet_t0',
                          '--format', 'openvino-int8', '--calibration', str(data), '--calibration-images', '8',
                          '--size', '64', '64', '--out', str(tmp_path / 'exports')], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    assert 'int8 (accuracy: tools/quantize.py)' in out.stdout
    assert (tmp_path / 'exports' / 'fasternet_t0.int8.xml').exists()
