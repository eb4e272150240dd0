"""ONNX export: every family's smallest variant, deploy and train form, with non-trivial weights (norm
statistics, layer scales, attention biases and LITv2's deformable offsets perturbed), matches PyTorch within
1e-4 in onnxruntime, at several batch sizes and, where dynamic, input sizes."""
import onnx
import pytest
import torch

import zoo
from zoo.deploy import export_and_check

from conftest import SMALLEST, randomize_norms


def _nontrivial(name):
    model = randomize_norms(zoo.create_model(name))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if 'conv_offset' in n:  # offsets of a few pixels, so the deformable sampling is exercised
                p.copy_(torch.randn(p.shape, generator=g) * (0.05 if n.endswith('weight') else 1.0))
    return model


@pytest.mark.slow
@pytest.mark.parametrize('deploy', [True, False], ids=['deploy', 'train'])
@pytest.mark.parametrize('name', SMALLEST)
def test_onnx_matches_pytorch(name, deploy, tmp_path):
    model = _nontrivial(name)
    row = export_and_check(name, str(tmp_path), deploy=deploy, model=model)
    assert row['max_abs_err'] <= 1e-4, row
    assert row['dynamic_hw'] == (zoo.family_of(name).static_hw is None)
    graph = onnx.load(row['path']).graph
    dims = graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == 'batch'
    assert bool(dims[2].dim_param) == row['dynamic_hw']
    ops = {n.op_type for n in graph.node}
    if deploy and name in ('fasternet_t0', 'shvit_s1', 'inceptionnext_atto'):
        assert 'BatchNormalization' not in ops  # folded into the convolutions
    if name == 'litv2_s':
        assert 'DeformConv' in ops
    if not row['dynamic_hw']:  # a graph fixed to one input size refuses another
        import onnxruntime as ort
        session = ort.InferenceSession(row['path'], providers=['CPUExecutionProvider'])
        with pytest.raises(Exception, match='(?i)dimension|shape'):
            session.run(None, {'input': torch.randn(1, 3, 256, 192).numpy()})


def test_old_opset_is_refused(tmp_path):
    with pytest.raises(ValueError, match='opset 17'):
        export_and_check('lsnet_t', str(tmp_path), opset=17)


@pytest.mark.slow
@pytest.mark.parametrize('fmt', ['torch.export', 'torchscript'])
@pytest.mark.parametrize('name', SMALLEST)
def test_saved_program_matches_pytorch(name, fmt, tmp_path):
    # the deploy form as a torch.export program (dynamic batch) or a traced TorchScript module, loaded back
    row = export_and_check(name, str(tmp_path), model=_nontrivial(name), input_size=(3, 96, 96), format=fmt)
    assert row['format'] == fmt and row['path'].endswith('.pt2' if fmt == 'torch.export' else '.pt')
    assert row['max_abs_err'] <= 1e-4, row


def test_unknown_export_format_is_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown export format 'tflite'"):
        export_and_check('lsnet_t', str(tmp_path), format='tflite')
