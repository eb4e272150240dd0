import importlib

import pytest
import torch

import zoo
from zoo.layers import GlobalResponseNorm

# two test workers share two cores
torch.set_num_threads(1)

MODELS = zoo.list_models()
# each family's smallest variant, where a check per family is enough
SMALLEST = [family.smallest for family in zoo.families()]


def smallest_fast(names):
    """Parameters for a test over many variants: each family's smallest in the fast tier, the rest ``slow``."""
    return [n if n in SMALLEST else pytest.param(n, marks=pytest.mark.slow) for n in names]


def pytest_collection_modifyitems(items):
    # the slow tests first: the two workers then end together instead of one finishing a long run alone
    items.sort(key=lambda item: item.get_closest_marker('slow') is None)


# Each family's smallest variant with one block a stage (two where a stage alternates two kinds of block, as
# LSNet's do): the widths and every kind of block of the variant, and a graph a fraction of the size. What
# capturing, compiling and exporting cost grows with the blocks; what they can get wrong is in the kinds of
# block. A family missing here is built at its full depth.
SHALLOW = {
    'convnext_atto': dict(depths=(1, 1, 1, 1)),
    'inceptionnext_atto': dict(depths=(1, 1, 1, 1)),
    'unireplknet_a': dict(depths=(1, 1, 1, 1), kernel_sizes=((3,), (13,), (13,), (13,))),
    'fasternet_t0': dict(depths=(1, 1, 1, 1)),
    'lsnet_t': dict(depth=(0, 2, 2, 2)),
    'shvit_s1': dict(depth=(1, 1, 1)),
    'litv2_s': dict(depths=(1, 1, 1, 1)),
    'biformer_t': dict(depth=(1, 1, 1, 1)),
}


def shallow(name: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    """``name`` built with :data:`SHALLOW`'s depths, its norms and layer scales made non-trivial."""
    return randomize_norms(zoo.create_model(name, **SHALLOW.get(name, {}), **kwargs), seed)


def count_params(name: str, deploy: bool = False, **kwargs) -> int:
    """Parameters of zoo model ``name`` (its deploy form with ``deploy``), built on the meta device: shapes
    only, no memory and no initialization, so that a 390M-parameter model costs what a small one does."""
    with torch.device('meta'):
        model = zoo.create_model(name, **kwargs)
        if deploy:
            model = zoo.reparameterize(model.eval())
    return sum(p.numel() for p in model.parameters())


def randomize_norms(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Give every BatchNorm non-trivial statistics and affine parameters, every LayerNorm a non-trivial affine
    map, every layer scale (``gamma``) values near 1 instead of its 1e-6 init, every GRN (zero at init) a
    non-zero scale and bias, and every attention bias table non-zero values, so that a wrong fold or a wrong bias index changes the output."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) * 2 - 1)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
            elif isinstance(m, torch.nn.LayerNorm) and m.elementwise_affine:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
                m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
            elif isinstance(m, GlobalResponseNorm):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) - 0.5)
                if m.bias is not None:
                    m.bias.copy_(torch.rand(m.bias.shape, generator=g) - 0.5)
            for name, p in m.named_parameters(recurse=False):
                if 'attention_biases' in name:
                    p.copy_(torch.randn(p.shape, generator=g))
                elif name == 'gamma':
                    p.copy_(torch.rand(p.shape, generator=g) * 0.5 + 0.5)
    return model


@pytest.fixture(autouse=True)
def seeded():
    """Every test starts from the same random state, so that its result depends neither on test order nor on
    chance: BiFormer's top-k region routing is a discrete choice, and float rounding (a folded deploy form)
    can flip a near-tie on an unlucky random input."""
    torch.manual_seed(0)


def remaining_norms_are_unfoldable(model):
    """Every BatchNorm left in a deploy form is one its parent declares unfoldable (``unfoldable_norms``)."""
    modules = dict(model.named_modules())
    for name, m in modules.items():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            parent, _, child = name.rpartition('.')
            assert child in getattr(modules[parent], 'unfoldable_norms', ()), f'{name} could have been folded'


@pytest.fixture
def ratios_of_medians(monkeypatch):
    """The benchmark's speed-ups as the ratio of two rows' medians instead of the median of their per-round
    ratios (zoo.measure.timing.paired_ratio), so that a test can recompute each ratio from the rows and check
    which row it was taken against. tests/test_benchmark.py checks the paired ratio itself."""
    import statistics
    bench = importlib.import_module('zoo.measure.benchmark')  # the module: zoo.measure.benchmark is its function
    monkeypatch.setattr(bench, 'paired_ratio', lambda a, b: statistics.median(a) / statistics.median(b))
