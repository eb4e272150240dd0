"""torch.compile on each family's smallest variant (its widths and kinds of block, one block a stage: conftest.SHALLOW),
train and deploy form: dynamo captures each forward as one
whole graph (no graph breaks, no fallback to eager) and the compiled model computes what eager computes,
gradients and BatchNorm statistics included. ``aot_eager`` runs the captured graphs through AOTAutograd
(forward and backward graphs, functionalized) on every family. Inductor's generated C++ is checked twice:
LSNet's deploy form (the large-kernel convs and SKA's per-pixel kernels, the attention-bias gather) and a
training step of FasterNet, the cheapest family to compile (convs, BatchNorm statistics and their backward).
Each costs a minute of C++ compiles on 2 cores, and what inductor makes of any other block is inductor's own
business: the graphs it is handed are the ones checked here with ``aot_eager``."""
import copy

import pytest
import torch
from torch._dynamo.testing import CompileCounterWithBackend

import zoo
from conftest import SMALLEST, randomize_norms, shallow
from zoo.models.biformer import BiLevelRoutingAttention
from zoo.models.litv2 import HiLo

pytestmark = pytest.mark.slow  # each capture takes tens of seconds

def _compile(model, backend):
    """``model`` compiled whole, and a counter of the graphs dynamo hands the backend."""
    torch._dynamo.reset()  # a fresh cache: no earlier model's guards, no recompile limit reached
    counter = CompileCounterWithBackend(backend)
    return torch.compile(model, backend=counter, fullgraph=True), counter


def _close(got, want, tol):
    scale = want.abs().max().item() + 1e-6
    assert (got - want).abs().max().item() <= tol * scale


def check_deploy(name, backend, tol, size=64, model=None):
    """The deploy form of ``model`` (built when not given) compiled whole, against eager."""
    model = randomize_norms(zoo.create_model(name)) if model is None else model
    deploy = zoo.reparameterize(model.eval())
    compiled, counter = _compile(deploy, backend)
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        want = deploy(x)
        got = compiled(x)
    assert counter.frame_count == 1 and counter.op_count > 0
    _close(got, want, tol)


def check_train(name, backend, tol, size=64, batch=2, model=None):
    """The train form of ``model`` (built when not given) compiled whole, outputs, gradients and BatchNorm
    statistics against eager; returns the model."""
    model = (randomize_norms(zoo.create_model(name)) if model is None else model).train()
    twin = copy.deepcopy(model)
    compiled, counter = _compile(twin, backend)
    x = torch.randn(batch, 3, size, size)
    weights = torch.randn(batch, model.num_classes)
    want = model(x)
    got = compiled(x)
    assert counter.frame_count == 1
    _close(got.detach(), want.detach(), tol)
    (want * weights).sum().backward()
    (got * weights).sum().backward()
    # gradients against the largest of them: a parameter whose gradient is all rounding noise (behind a
    # zero-initialized branch) is held to the same absolute bound as the rest
    scale = max(p.grad.abs().max().item() for p in model.parameters() if p.grad is not None)
    for (pname, p), q in zip(model.named_parameters(), twin.parameters()):
        if p.grad is None:
            assert q.grad is None, pname
            continue
        assert (q.grad - p.grad).abs().max().item() <= tol * scale, pname
    for (bname, b), c in zip(model.named_buffers(), twin.buffers()):
        if b.is_floating_point():
            _close(c, b, tol)
    return model


@pytest.mark.parametrize('name', SMALLEST)
def test_train_and_deploy_forms_compile_whole_and_match_eager(name):
    """One build for both forms: the train form with gradients, then its deploy form, on each family's
    smallest variant with one block a stage. A family's other variants run the same code at other widths and
    depths, so dynamo captures the same kinds of graph from them (every variant's eager forward, deploy parity
    and FX / TorchScript capture are checked in tests/test_contract.py, test_reparam.py and test_fx_script.py)."""
    model = check_train(name, 'aot_eager', 1e-4, model=shallow(name))
    check_deploy(name, 'aot_eager', 1e-5, model=model)


def test_inductor_deploy_form_matches_eager():
    check_deploy('lsnet_t', 'inductor', 1e-4, model=shallow('lsnet_t'))


def test_inductor_train_form_matches_eager_with_gradients():
    # batch statistics over enough values (8 x 5 x 5 in the last stage) that inductor's other summation order
    # is not amplified by a near-zero variance
    check_train('fasternet_t0', 'inductor', 5e-3, size=160, batch=8, model=shallow('fasternet_t0'))


@pytest.mark.parametrize('layer', [
    lambda: BiLevelRoutingAttention(32, 2, n_win=7, topk=4),  # BiFormer: a grid of 7 x 7 regions
    lambda: HiLo(32, 2, window_size=2),  # LITv2: 2 x 2 windows
], ids=['biformer', 'litv2'])
def test_compiled_attention_still_pads_odd_sizes(layer):
    """The region / window padding is computed from the input size: a second size makes dynamo capture a
    graph with symbolic sizes, whose padding must follow the size (dynamo's own graphs, run eagerly: the
    sizes are dynamo's business, not a backend's). The layers that pad, alone: whole models capture the
    same code at several seconds a block."""
    layer = layer().eval()
    compiled, counter = _compile(layer, 'eager')
    with torch.no_grad():
        for h, w in ((14, 21), (17, 26), (9, 11)):  # the second size captures the symbolic-size graph
            x = torch.randn(1, h, w, 32)
            got = compiled(x)
            assert got.shape == x.shape
            _close(got, layer(x), 1e-5)
    assert counter.frame_count == 2  # one static graph, then one that serves every other size
