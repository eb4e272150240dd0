"""TorchScript and torch.fx on every registered model, the checks timm's own model tests run on timm's models:

* FX forward: the model symbolically traced the way timm traces (its registered leaf modules and notrace
  functions, parameter shapes constant) computes exactly what the eager model computes;
* FX backward: the traced train-mode graph backpropagates into every parameter;
* TorchScript: ``torch.jit.script(model)`` computes what the eager model computes;
* FX then TorchScript: the traced graph scripts and computes the same;

and, per family (its smallest variant): ``features_only=True, feature_cls='fx'`` (timm's FX feature extractor)
and torchvision's ``create_feature_extractor`` with no tracer settings at all, the deploy form traced and
scripted, and the input check kept by a traced and a scripted model.

Cost: inputs are the smallest each model takes (its total stride: 32, or 64 for LSNet and SHViT), and the checks
of one model share its build and its traced graph (a class-scoped fixture). Tracing and scripting cost about
their number of modules (TorchScript's frontend alone takes seconds for a model of a few hundred modules), so
they run on each family's smallest variant: a family's variants share their code, so they script and trace
alike. Every other variant is traced forward in its one-build contract (tests/test_contract.py).
"""
import pytest
import torch
from timm.layers import get_notrace_functions, get_notrace_modules, set_scriptable
from torchvision.models.feature_extraction import LeafModuleAwareTracer, create_feature_extractor

import zoo
from conftest import SMALLEST, randomize_norms

NUM_CLASSES = 42  # as timm's backward test: a head that is not the pretrained one


@pytest.fixture(scope='module', autouse=True)
def jit_executor():
    """timm's setting for its TorchScript tests: the profiling executor without profiling runs, which compiles
    large models much faster than the legacy executor. Restored afterwards."""
    executor = torch._C._jit_set_profiling_executor(True)
    mode = torch._C._jit_set_profiling_mode(False)
    yield
    torch._C._jit_set_profiling_executor(executor)
    torch._C._jit_set_profiling_mode(mode)


def tracer_kwargs():
    """What timm passes torchvision's tracer: its registry of modules not to trace into and functions to call
    as one node (the zoo registers its own there), and parameter shapes as constants."""
    return dict(leaf_modules=get_notrace_modules(), autowrap_functions=get_notrace_functions(),
                param_shapes_constant=True)


def fx_trace(model: torch.nn.Module) -> torch.fx.GraphModule:
    """``model`` symbolically traced in its current mode (train or eval) as timm's tracer traces it, as one
    GraphModule returning what ``model`` returns. (timm goes through torchvision's ``create_feature_extractor``,
    whose tracer also names every node after its module path, at a cost that grows with the square of the
    graph's size; the graph is the same.)"""
    tracer = LeafModuleAwareTracer(**tracer_kwargs())
    graph = tracer.trace(model)
    return torch.fx.GraphModule(tracer.root, graph, type(model).__name__)


def input_size(model) -> int:
    """The smallest input a model takes: one pixel per map at its total stride."""
    return max(info['reduction'] for info in model.feature_info)


class Built:
    """One model (``num_classes=42``, its norms randomized so that no branch is an identity) and its eval-mode
    trace, shared by the checks of a model."""

    def __init__(self, name):
        self.name = name
        with set_scriptable(True):  # as timm builds the models it scripts (the zoo's are the same either way)
            self.model = randomize_norms(zoo.create_model(name, num_classes=NUM_CLASSES)).eval()
        self.size = input_size(self.model)
        self._traced = None

    @property
    def traced(self) -> torch.fx.GraphModule:
        if self._traced is None:
            self._traced = fx_trace(self.model.eval())
        return self._traced

    def input(self, batch: int = 1) -> torch.Tensor:
        return torch.randn(batch, 3, self.size, self.size)


def check_fx_forward(built):
    x = built.input()
    with torch.inference_mode():
        want = built.model.eval()(x)
        got = built.traced(x)
    assert got.shape == (1, NUM_CLASSES)
    assert torch.equal(got, want)  # the same ops on the same values: bit for bit
    assert not torch.isnan(got).any()


@pytest.mark.parametrize('name', SMALLEST)
def test_fx_forward(name):
    """timm's ``test_model_forward_fx``."""
    check_fx_forward(Built(name))


@pytest.fixture(scope='class', params=SMALLEST)
def built(request):
    return Built(request.param)


class TestEveryModel:
    """timm's ``test_model_forward_torchscript``, ``test_model_forward_fx_torchscript`` and
    ``test_model_backward_fx``, each model built and traced once (the backward check last: it trains BatchNorm
    statistics in the shared model). Scripted models run without the graph executor's optimization passes,
    which take longer than the run itself."""

    def test_torchscript_forward(self, built):
        scripted = torch.jit.script(built.model.eval())
        x = built.input()
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            want = built.model(x)
            got = scripted(x)
        assert got.shape == (1, NUM_CLASSES)
        torch.testing.assert_close(got, want)

    @pytest.mark.filterwarnings('ignore:The TorchScript type system:UserWarning')  # from GraphModule's own code
    def test_fx_then_torchscript_forward(self, built):
        scripted = torch.jit.script(built.traced)
        x = built.input()
        with torch.inference_mode(), torch.jit.optimized_execution(False):
            want = built.model.eval()(x)
            got = scripted(x)
        torch.testing.assert_close(got, want)

    def test_fx_backward(self, built):
        model = built.model.train()
        traced = fx_trace(model)
        out = traced(built.input(batch=2))
        assert out.shape == (2, NUM_CLASSES)
        assert not torch.isnan(out).any()
        out.mean().backward()
        missing = [n for n, p in traced.named_parameters() if p.grad is None]
        assert not missing, f'no gradient for {missing}'
        assert sum(p.numel() for p in traced.parameters()) == sum(p.numel() for p in model.parameters())


def _create_seeded(name, **kwargs):
    torch.manual_seed(0)
    return zoo.create_model(name, **kwargs).eval()


@pytest.mark.parametrize('name', SMALLEST)
def test_fx_feature_extractors(name):
    """``features_only=True, feature_cls='fx'`` (timm's FX feature extractor) and torchvision's
    ``create_feature_extractor`` with no tracer settings give the stage maps ``forward_intermediates`` gives.
    Without timm's tracer settings the zoo's notrace functions stay whole too: they are ``torch.fx.wrap``-ped
    in the modules that call them."""
    model = randomize_norms(_create_seeded(name))
    feats = _create_seeded(name, features_only=True, feature_cls='fx')
    # the model's weights (the head is not in the extractor's graph)
    assert not feats.graph_module.load_state_dict(model.state_dict(), strict=False).missing_keys
    extractor = create_feature_extractor(model, {f'stages.{i}': f'p{i}' for i in range(len(model.feature_info))})
    model.eval()
    extractor.eval()
    x = torch.randn(2, 3, input_size(model), input_size(model) + 32)
    with torch.inference_mode():
        want = model.forward_intermediates(x, intermediates_only=True)
        timm_fx = feats(x)
        plain_fx = extractor(x)
    assert feats.feature_info.channels() == [f['num_chs'] for f in model.feature_info]
    assert isinstance(timm_fx, list) and len(timm_fx) == len(want)
    assert list(plain_fx) == [f'p{i}' for i in range(len(want))]
    for a, b, w in zip(timm_fx, plain_fx.values(), want):
        assert torch.equal(a, w) and torch.equal(b, w)


@pytest.mark.parametrize('name', SMALLEST)
def test_deploy_form_traces_and_scripts(name):
    """The deploy form (``zoo.reparameterize``) traces and scripts too. Traced by timm's tracer, its fused
    Linears stay leaf modules that run oneDNN's kernels; scripted, they are ``F.linear`` plus the activation:
    the same to float rounding."""
    deploy = zoo.reparameterize(randomize_norms(_create_seeded(name)))
    x = torch.randn(2, 3, input_size(deploy), input_size(deploy) + 32)
    traced = fx_trace(deploy)
    scripted = torch.jit.script(deploy)
    with torch.inference_mode():
        want = deploy(x)
        assert torch.equal(traced(x), want)
        torch.testing.assert_close(scripted(x), want, rtol=1e-4, atol=1e-5)


def test_traced_and_scripted_models_check_their_input():
    """The input check is one node of a traced graph and part of a scripted model: a wrong input still gets
    the eager model's message, not a conv's."""
    model = _create_seeded(SMALLEST[0])
    traced, scripted = fx_trace(model), torch.jit.script(model)
    plain = torch.fx.symbolic_trace(model)
    for run in (model, traced, plain):
        with pytest.raises(ValueError, match='built for 3 input channels, got 1'):
            run(torch.randn(1, 1, 32, 32))
        with pytest.raises(ValueError, match='4-D'):
            run(torch.randn(3, 32, 32))
    # TorchScript raises its own error type, with the model's message
    with pytest.raises(torch.jit.Error, match='built for 3 input channels, got 1'):
        scripted(torch.randn(1, 1, 32, 32))
    with pytest.raises(torch.jit.Error, match='4-D'):
        scripted(torch.randn(3, 32, 32))
