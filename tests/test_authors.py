"""The authors' code as a benchmark peer (zoo.measure.authors): the plain-PyTorch stand-ins for their CUDA-only
pieces compute what the zoo computes, importing a checkout leaves the process as it was, and a benchmark row
of the authors' model is paired with the zoo model on the same weights.

No authors' repository is fetched here: a checkout is written into tmp_path, laid out as SHViT's is
(``model/build.py``, ``utils.py``), whose model is timm's SHViT (the same keys as the authors', which the
zoo's checkpoint filter maps)."""
import importlib
import os
import sys
import textwrap

import pytest
import timm
import torch

import zoo
from zoo.layers import DeformConv2dPack
from zoo.measure import benchmark, to_markdown
from zoo.measure.authors import (AUTHORS, TorchvisionDeformConv2dPack, UnfoldSKA, _checkout, authors_model,
                                 authors_modules, randomize_)
from zoo.models.lsnet import ska_reference

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'tools'))


@pytest.mark.parametrize('shape,groups,k', [((2, 16, 5, 7), 8, 3), ((1, 6, 4, 3), 2, 5), ((1, 4, 1, 1), 4, 3)])
def test_unfold_ska_is_the_zoo_ska(shape, groups, k):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=g)
    weight = torch.randn(shape[0], groups, k * k, *shape[2:], generator=g)
    torch.testing.assert_close(UnfoldSKA()(x, weight), ska_reference(x, weight), rtol=0, atol=1e-5)


def test_torchvision_deform_pack_is_the_zoo_deformable_conv():
    torch.manual_seed(0)
    theirs = TorchvisionDeformConv2dPack(8, 16, kernel_size=2, stride=2, padding=0)
    ours = DeformConv2dPack(8, 16, 2, 2)
    randomize_(theirs)
    with torch.no_grad():
        theirs.conv_offset.weight.normal_(0, 0.3)  # offsets away from the grid, so the sampling is tested
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(2, 8, 6, 10)
    with torch.no_grad():
        torch.testing.assert_close(theirs(x), ours(x), rtol=0, atol=1e-5)


def _fake_checkout(root):
    """A checkout laid out as SHViT's: ``model/build.py`` registers ``shvit_s1`` with timm (as the authors'
    does) and builds timm's SHViT-S1; ``utils.py`` has their deploy step."""
    (root / 'model').mkdir(parents=True)
    (root / 'model' / '__init__.py').write_text('from .build import *\n')
    (root / 'model' / 'build.py').write_text(textwrap.dedent('''
        import timm
        from timm.models.registry import register_model

        @register_model
        def shvit_s1(**kwargs):
            return timm.create_model('shvit_s1', **kwargs)
    '''))
    (root / 'utils.py').write_text(textwrap.dedent('''
        from timm.utils import reparameterize_model

        def replace_batchnorm(model):
            reparameterize_model(model, inplace=True)
    '''))
    return str(root)


def test_importing_a_checkout_leaves_timm_and_sys_modules_as_they_were(tmp_path):
    checkout = _fake_checkout(tmp_path / 'SHViT')
    before = timm.models._registry._model_entrypoints['shvit_s1']
    sentinel = type(sys)('model')
    sys.modules['model'] = sentinel  # another project's package of the same name
    try:
        with _checkout(checkout, ('model',)):
            build = importlib.import_module('model.build')  # the checkout's package
            assert build.__file__.startswith(checkout)
        assert timm.models._registry._model_entrypoints['shvit_s1'] is before  # timm's, not the checkout's
        assert sys.modules['model'] is sentinel and 'model.build' not in sys.modules
        assert checkout not in sys.path
    finally:
        del sys.modules['model']


def test_authors_model_holds_the_zoo_models_weights_and_refuses_what_it_cannot_build(tmp_path):
    checkout = _fake_checkout(tmp_path / 'SHViT')
    theirs, ours = authors_model('shvit_s1', checkout)
    assert not theirs.training and not ours.training
    assert 'model.build' not in sys.modules
    with authors_modules(theirs):  # back while their code runs (torch.compile imports it by name)
        assert importlib.import_module('model.build').__file__.startswith(checkout)
    assert 'model.build' not in sys.modules
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(theirs(x), zoo.reparameterize(ours)(x), rtol=0, atol=1e-4)
    with pytest.raises(ValueError, match="name='convnext_atto'.*families with it"):
        authors_model('convnext_atto', checkout)
    with pytest.raises(zoo.UnknownModelError, match="'shvit_s9'"):
        authors_model('shvit_s9', checkout)
    for family, code in AUTHORS.items():  # every variant of the family has the authors' name for it
        assert sorted(code.variants) == zoo.list_models(f'{family}_*')
    with pytest.raises(FileNotFoundError, match="checkout='/no/such'.*ysj9909/SHViT"):
        authors_model('shvit_s1', '/no/such')


@pytest.mark.usefixtures('ratios_of_medians')
def test_benchmark_pairs_the_authors_row_with_the_zoo_deploy_form(tmp_path):
    checkout = _fake_checkout(tmp_path / 'SHViT')
    rows = benchmark(['shvit_s1'], forms=['train', 'deploy'], authors={'shvit': checkout}, img_size=64,
                     batch_size=2, threads=1, warmup=1, repeats=2, memory=False)
    assert [(r.model, r.form) for r in rows] == [('shvit_s1', 'train'), ('shvit_s1', 'deploy'),
                                                 ('shvit_s1', 'authors')]
    train, deploy, theirs = rows
    assert theirs.latency_ratio == theirs.latency_ms / deploy.latency_ms
    assert theirs.throughput_ratio == pytest.approx(deploy.throughput / theirs.throughput, rel=1e-12)
    assert theirs.gflops == deploy.gflops and 0 < theirs.peak_fraction
    assert theirs.max_abs_error is not None and theirs.max_abs_error < 1e-4
    assert train.max_abs_error is None and deploy.max_abs_error is None
    assert 'same weights, outputs differ by' in to_markdown(rows)
    # in any other runtime the zoo forms take, the authors' code still runs as they run it, in eager, once;
    # its row names its ratios to each zoo deploy form
    rows = benchmark(['shvit_s1'], forms=['deploy'], runtimes=['eager', 'bf16'], authors={'shvit': checkout},
                     img_size=64, batch_size=2, threads=1, warmup=1, repeats=2, memory=False)
    assert [(r.form, r.runtime) for r in rows] == [('deploy', 'eager'), ('deploy', 'bf16'), ('authors', 'eager')]
    deploy, bf16, theirs = rows
    assert theirs.latency_ratio == theirs.latency_ms / deploy.latency_ms
    assert f'; [deploy, bf16] {theirs.latency_ms / bf16.latency_ms:.2f}x / ' \
           f'{bf16.throughput / theirs.throughput:.2f}x' in theirs.reference
    with pytest.raises(ValueError, match=r"authors: no authors' code is wired for \['convnext'\]"):
        benchmark(['convnext_atto'], authors={'convnext': checkout})


def test_authors_code_that_cannot_be_built_costs_its_rows_only(tmp_path, capsys):
    """Their code importing a package this environment lacks gives 'not measured' rows for it, named with the
    error, and the zoo's rows are measured; a checkout that is not there stops the run before any measuring."""
    checkout = _fake_checkout(tmp_path / 'SHViT')
    build = tmp_path / 'SHViT' / 'model' / 'build.py'
    build.write_text('import no_such_package_here\n' + build.read_text())
    rows = benchmark(['shvit_s1'], forms=['deploy'], authors={'shvit': checkout}, img_size=64, batch_size=2,
                     threads=1, warmup=1, repeats=2, memory=False)
    assert [(r.form, r.error) for r in rows] == [
        ('deploy', ''), ('authors', "ModuleNotFoundError: No module named 'no_such_package_here'")]
    deploy, theirs = rows
    assert deploy.latency_ms > 0 and theirs.params is None and theirs.latency_ratio is None
    assert "the authors' code of shvit_s1 could not be built: ModuleNotFoundError" in capsys.readouterr().err
    assert "| shvit_s1 | authors | eager |  |  |" in to_markdown(rows)
    assert 'model.build' not in sys.modules and checkout not in sys.path
    with pytest.raises(FileNotFoundError, match="checkout='/no/such'.*ysj9909/SHViT"):
        benchmark(['convnext_atto', 'shvit_s1'], authors={'shvit': '/no/such'}, memory=False)


@pytest.mark.usefixtures('ratios_of_medians')
def test_compiled_zoo_forms_are_set_against_the_authors_code_compiled_too(tmp_path, monkeypatch):
    """Where the zoo forms are compiled, the authors' code is compiled as well and each of its rows is paired
    with the deploy form in the same runtime; its eager row names the other runtimes only. (The compiler is
    stubbed: what is checked is who goes into it and how the rows pair.)"""
    bench = sys.modules[benchmark.__module__]  # the module (zoo.measure's name 'benchmark' is its function)
    checkout = _fake_checkout(tmp_path / 'SHViT')
    compiled, real = [], bench.in_runtime

    def in_runtime(model, runtime, *args, **kwargs):
        if runtime != 'compiled':
            return real(model, runtime, *args, **kwargs)
        compiled.append(type(model).__module__)
        return model

    monkeypatch.setattr(bench, 'in_runtime', in_runtime)
    rows = benchmark(['shvit_s1'], forms=['deploy'], runtimes=['eager', 'compiled', 'bf16'],
                     authors={'shvit': checkout}, img_size=64, batch_size=2, threads=1, warmup=1, repeats=2,
                     memory=False)
    assert [(r.form, r.runtime) for r in rows] == [('deploy', 'eager'), ('deploy', 'compiled'), ('deploy', 'bf16'),
                                                   ('authors', 'eager'), ('authors', 'compiled')]
    assert compiled == ['zoo.models.shvit', 'timm.models.shvit']  # the fake checkout builds timm's model
    eager, zoo_compiled, bf16, theirs, theirs_compiled = rows
    assert theirs_compiled.latency_ratio == theirs_compiled.latency_ms / zoo_compiled.latency_ms
    assert theirs_compiled.reference.startswith('shvit_s1 [deploy, compiled] vs this')
    assert theirs.latency_ratio == theirs.latency_ms / eager.latency_ms
    assert '[deploy, bf16]' in theirs.reference and '[deploy, compiled]' not in theirs.reference


def test_cli_authors_takes_family_equals_checkout(capsys):
    import benchmark as cli  # tools/benchmark.py
    assert cli.parse_args(['shvit_s1', '--authors', 'shvit=../SHViT']).authors == {'shvit': '../SHViT'}
    for bad in ('../SHViT', 'convnext=../ConvNeXt'):
        with pytest.raises(SystemExit):
            cli.parse_args(['shvit_s1', '--authors', bad])
        assert f"--authors takes FAMILY=CHECKOUT with FAMILY one of ['biformer', 'litv2', 'lsnet', 'shvit'], " \
               f"got {bad!r}" in capsys.readouterr().err
