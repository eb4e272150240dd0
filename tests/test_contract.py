"""timm's model contract, the zoo's deploy form and the faults a model must survive, registry-wide.

Every check runs as its own test on each family's smallest variant (the fast tier). Every other registered
variant takes the whole contract in one build at a small input (slow tier): the pretrained cfg, features then
head, intermediates against ``feature_info``, parameter groups, the classifier reset, the input checks, the
FX trace, the deploy form (exact folds, nothing left to fold, traced as export traces it) and the faults
(non-finite inputs come out non-finite, an empty batch gives an empty output). A family's variants share
their code: what a larger variant adds is its widths, depths and configuration, and one build runs all of its
code. Variants above ``LARGE`` parameters, whose every forward costs seconds, take the part of the contract
that their widths and depths can change: the cfg, features then head, and the deploy form's exact folds and
parity (their parameter counts and checkpoint mappings are checked on the meta device). A new family gets all
of this from its record, as tests/test_tiny_family.py shows."""
import math

import pytest
import timm
import torch
from timm.models import group_parameters

import zoo
from conftest import MODELS, SMALLEST, randomize_norms, remaining_norms_are_unfoldable, shallow
from test_fx_script import fx_trace
from zoo.deploy import foldable_modules
from zoo.models._base import CPU_TILE_TOKENS

SMALL = 64  # a multiple of every model's total stride (64 for LSNet and SHViT), small enough for CPU tests
# the one-build contract of the larger variants runs at this size: their cost is in their weights, and at
# 32 x 64 the last stage of a stride-32 model still has two positions
VARIANT_HW = (32, 64)
LARGE = 50e6  # parameters
NON_FINITE = (float('nan'), float('inf'), -float('inf'))


@pytest.fixture(params=SMALLEST)
def model_name(request):
    return request.param


def create(name, **kwargs):
    return timm.create_model('zoo/' + name, **kwargs)


def test_pretrained_cfg_has_every_field(model_name):
    cfg = create(model_name).pretrained_cfg
    for key in ('input_size', 'mean', 'std', 'crop_pct', 'interpolation', 'num_classes', 'classifier',
                'first_conv'):
        assert cfg.get(key) is not None, key
    assert cfg.get('hf_hub_id') or cfg.get('url')  # where the weights come from
    model = create(model_name)
    assert isinstance(model.get_submodule(cfg['first_conv']), torch.nn.Conv2d)
    assert isinstance(model.get_submodule(cfg['classifier']), torch.nn.Linear)
    assert model.get_submodule(cfg['classifier']).out_features == cfg['num_classes']


def test_features_only_matches_feature_info(model_name):
    full = create(model_name)
    n = len(full.feature_info)
    for out_indices in (tuple(range(n)), (1, n - 1), (-1,)):
        model = create(model_name, features_only=True, out_indices=out_indices).eval()
        expected = [full.feature_info[i] for i in out_indices]
        assert model.feature_info.channels() == [f['num_chs'] for f in expected]
        assert model.feature_info.reduction() == [f['reduction'] for f in expected]
        feats = model(torch.randn(2, 3, SMALL, SMALL + 64))
        assert len(feats) == len(out_indices)
        for f, info in zip(feats, expected):
            assert f.shape == (2, info['num_chs'], math.ceil(SMALL / info['reduction']),
                               math.ceil((SMALL + 64) / info['reduction']))


def test_forward_is_features_then_head(model_name):
    model = randomize_norms(create(model_name)).eval()
    x = torch.randn(2, 3, SMALL, SMALL)
    with torch.no_grad():
        feats = model.forward_features(x)
        pre = model.forward_head(feats, pre_logits=True)
        logits = model.forward_head(feats)
        out = model(x)
    assert feats.shape[:2] == (2, model.num_features)
    assert pre.shape == (2, model.head_hidden_size)
    assert logits.shape == (2, 1000)
    torch.testing.assert_close(out, logits)
    torch.testing.assert_close(model.get_classifier()(pre), logits)


def test_forward_intermediates_agree_with_features(model_name):
    model = randomize_norms(create(model_name)).eval()
    x = torch.randn(1, 3, SMALL, SMALL)
    with torch.no_grad():
        final, inter = model.forward_intermediates(x)
        _, normed = model.forward_intermediates(x, norm=True)
        only = model.forward_intermediates(x, indices=[0, 2], intermediates_only=True)
        last = model.forward_intermediates(x, indices=1, stop_early=True, intermediates_only=True)
        feats = model.forward_features(x)
    assert len(inter) == len(model.feature_info)
    torch.testing.assert_close(final, feats)
    # norm=True applies the final norm (where the model has one) to the last stage's map only, as timm
    torch.testing.assert_close(normed[-1], feats)
    for a, b in zip(inter[:-1], normed[:-1]):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(only[0], inter[0])
    torch.testing.assert_close(only[1], inter[2])
    torch.testing.assert_close(last[0], inter[-1])
    with pytest.raises(AssertionError, match='out of range'):
        model.forward_intermediates(x, indices=[len(inter)])


def test_reset_classifier_and_headless_creation(model_name):
    model = create(model_name).eval()
    x = torch.randn(2, 3, SMALL, SMALL)
    model.reset_classifier(10)
    assert model(x).shape == (2, 10) and model.num_classes == 10
    model.reset_classifier(0)
    assert model(x).shape == (2, model.head_hidden_size)
    headless = create(model_name, num_classes=0).eval()
    assert headless(x).shape == (2, headless.head_hidden_size)
    unpooled = create(model_name, num_classes=0, global_pool='').eval()
    assert unpooled(x).ndim == 4
    assert create(model_name, global_pool='max').eval()(x).shape == (2, 1000)


def test_grad_checkpointing_gives_same_outputs_and_grads(model_name):
    torch.manual_seed(0)
    model = create(model_name, num_classes=10)
    x = torch.randn(2, 3, 64, 64)
    grads = []
    outs = []
    for enable in (False, True):
        model.zero_grad()
        model.set_grad_checkpointing(enable)
        out = model(x)
        out.square().sum().backward()
        outs.append(out.detach())
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    torch.testing.assert_close(outs[0], outs[1])
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 0
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], msg=n)


def test_batch_tiles_give_the_whole_batchs_outputs_in_cpu_inference_only(model_name):
    model = zoo.reparameterize(shallow(model_name).eval())
    assert {stage.tile_tokens for stage in model.stages} == {CPU_TILE_TOKENS}
    seen = []  # the batch of each call of a stage's blocks, and each stage output's layout
    for stage in model.stages:
        stage.register_forward_hook(lambda module, args, out: seen.append(
            str(out.is_contiguous(memory_format=torch.channels_last))))
        stage.blocks.register_forward_hook(lambda module, args, out: seen.append(int(args[0].shape[0])))

    def run(tile_tokens, grad=False, x=torch.randn(3, 3, SMALL, SMALL)):
        seen.clear()
        for stage in model.stages:
            stage.tile_tokens = tile_tokens
        with torch.set_grad_enabled(grad):
            out = model(x).detach()
        return out, [s for s in seen if isinstance(s, int)], [s for s in seen if isinstance(s, str)]

    whole, calls, layouts = run(None)
    assert calls == [3] * len(model.stages)
    tiled, calls, tiled_layouts = run(1)  # one image a tile in every stage
    assert calls == [1, 1, 1] * len(model.stages)
    assert tiled_layouts == layouts  # the joined tiles keep the stage output's memory layout
    torch.testing.assert_close(tiled, whole, rtol=1e-5, atol=1e-6)
    assert run(1, grad=True)[1] == [3] * len(model.stages)  # gradients: the whole batch
    assert run(1, x=torch.randn(0, 3, SMALL, SMALL))[1] == [0] * len(model.stages)  # an empty batch: as it is
    model.train()
    assert run(1)[1] == [3] * len(model.stages)  # training mode: the whole batch
    model.eval()
    seen.clear()
    with torch.no_grad():
        torch.jit.trace(model, torch.randn(3, 3, SMALL, SMALL), check_trace=False)
    assert [s for s in seen if isinstance(s, int)] == [3] * len(model.stages)  # a traced graph: the whole batch


def test_no_weight_decay_and_group_matcher_cover_parameters(model_name):
    model = create(model_name)
    names = {n for n, _ in model.named_parameters()}
    assert model.no_weight_decay() <= names
    for coarse in (False, True):
        groups = group_parameters(model, model.group_matcher(coarse=coarse))
        grouped = [n for g in groups.values() for n in g]
        assert sorted(grouped) == sorted(names)
        assert len(groups) >= 3


def test_in_chans_other_than_three(model_name):
    model = create(model_name, in_chans=1).eval()
    assert model(torch.randn(1, 1, SMALL, SMALL)).shape == (1, 1000)
    with pytest.raises(ValueError, match='built for 1 input channels, got 3'):
        model(torch.randn(1, 3, SMALL, SMALL))
    with pytest.raises(ValueError, match='4-D'):
        model(torch.randn(3, SMALL, SMALL))


def test_drop_path_is_stochastic_in_training_only(model_name):
    torch.manual_seed(0)
    plain = randomize_norms(create(model_name, num_classes=10))  # layer scales of 1e-6 would hide a dropped path
    dropped = create(model_name, num_classes=10, drop_path_rate=0.5)
    dropped.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 64, 64)
    dropped.train()
    torch.manual_seed(1)
    a = dropped(x)
    torch.manual_seed(2)
    b = dropped(x)
    assert not torch.allclose(a, b)
    dropped.load_state_dict(plain.state_dict())  # training updated the BN statistics
    plain.eval(), dropped.eval()
    with torch.no_grad():
        torch.testing.assert_close(dropped(x), plain(x))


def test_input_sizes(model_name):
    """Any multiple of the total stride works; other sizes either work, each feature map being the input
    size divided by its reduction (rounded up, or down for a patchify stem), or are refused with an error
    that names the multiple."""
    model = create(model_name, features_only=True).eval()
    stride = max(model.feature_info.reduction())
    for size in [(64, 64), (192, 320), (256, 128), (100, 150), (77, 33)]:
        x = torch.randn(1, 3, *size)
        try:
            feats = model(x)
        except ValueError as e:
            assert size[0] % stride or size[1] % stride, f'{size} is a multiple of {stride} but was refused'
            assert 'multiple' in str(e)
            continue
        for f, r in zip(feats, model.feature_info.reduction()):
            for got, n in zip(f.shape[-2:], size):
                assert got in (n // r, math.ceil(n / r)), (f.shape, size, r)


def check_non_finite(model, clean=None, want=None):
    """A NaN, inf or -inf in a sample makes every output of that sample non-finite and leaves a clean sample
    in the same batch as it was (``want``: the model's output on ``clean``, one sample): nothing crashes,
    nothing turns a broken input into a finite answer."""
    if clean is None:
        clean = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = model(clean) if want is None else want
        x = clean.repeat(len(NON_FINITE) + 1, 1, 1, 1)
        for i, value in enumerate(NON_FINITE):
            x[i, 1, x.shape[2] // 3, x.shape[3] // 2] = value
        out = model(x)
    for i, value in enumerate(NON_FINITE):
        assert not torch.isfinite(out[i]).any(), f'{value} in the input gave finite outputs'
    torch.testing.assert_close(out[-1:], want, rtol=1e-4, atol=1e-4 * max(1.0, want.abs().max().item()))


def check_empty_batch(model, size=(64, 64)):
    with torch.no_grad():
        out = model(torch.randn(0, 3, *size))
        full = model(torch.randn(1, 3, *size))
    outs, fulls = (out, full) if isinstance(out, (list, tuple)) else ([out], [full])
    assert [tuple(o.shape) for o in outs] == [(0,) + tuple(f.shape[1:]) for f in fulls]


def test_non_finite_inputs_come_out_non_finite(model_name):
    """Train form (eval and train mode, with a backward pass) and deploy form."""
    model = randomize_norms(create(model_name)).eval()
    check_non_finite(model)
    check_non_finite(zoo.reparameterize(model))
    x = torch.randn(2, 3, 64, 64)
    x[0, 0, 5, 5] = float('nan')
    out = model.train()(x)  # (batch statistics may spread it to the other sample)
    assert not torch.isfinite(out[0]).any()
    out.sum().backward()


def test_empty_batch_gives_empty_outputs(model_name):
    model = create(model_name).eval()
    check_empty_batch(model)
    check_empty_batch(zoo.reparameterize(model))
    check_empty_batch(create(model_name, features_only=True).eval())
    with torch.no_grad():
        final, inter = model.forward_intermediates(torch.randn(0, 3, 64, 64))
    assert final.shape[0] == 0 and all(f.shape[0] == 0 for f in inter)


@pytest.mark.parametrize('kwargs,arg', [
    (dict(in_chans=0), 'in_chans'), (dict(num_classes=1.5), 'num_classes'), (dict(num_classes=-1), 'num_classes'),
    (dict(drop_path_rate=2.0), 'drop_path_rate'), (dict(drop_rate=-0.1), 'drop_rate'),
    (dict(features_only=True, out_indices=()), 'out_indices'),
    (dict(features_only=True, out_indices=(2, 1)), 'out_indices'),
    (dict(features_only=True, out_indices=(1, 1)), 'out_indices'),
    (dict(features_only=True, out_indices=(9,)), 'out_indices'),
])
def test_bad_model_arguments_are_named(kwargs, arg):
    """Refused before anything is built, with the argument, the value and what is allowed."""
    for name in SMALLEST:
        with pytest.raises(ValueError, match=rf'{arg}=.* is not allowed; {arg} must be'):
            create(name, **kwargs)


@pytest.mark.slow
@pytest.mark.parametrize('name', [m for m in MODELS if m not in SMALLEST])
def test_variant_meets_the_contract(name):
    """The whole contract in one build of a variant other than its family's smallest, at a small input."""
    model = randomize_norms(create(name)).eval()
    cfg = model.pretrained_cfg
    for key in ('input_size', 'mean', 'std', 'crop_pct', 'interpolation', 'num_classes', 'classifier', 'first_conv'):
        assert cfg.get(key) is not None, key
    assert cfg.get('hf_hub_id') or cfg.get('url')
    assert isinstance(model.get_submodule(cfg['first_conv']), torch.nn.Conv2d)
    assert model.get_submodule(cfg['classifier']).out_features == cfg['num_classes'] == model.num_classes
    h, w = VARIANT_HW
    x = torch.randn(1, 3, h, w)
    with torch.no_grad():
        feats = model.forward_features(x)
        pre = model.forward_head(feats, pre_logits=True)
        logits = model(x)
    assert feats.shape[:2] == (1, model.num_features) and pre.shape == (1, model.head_hidden_size)
    torch.testing.assert_close(model.get_classifier()(pre), logits)
    if sum(p.numel() for p in model.parameters()) > LARGE:
        deploy = zoo.reparameterize(model)
        assert not foldable_modules(deploy)
        remaining_norms_are_unfoldable(deploy)
        with torch.no_grad():
            torch.testing.assert_close(deploy(x), logits, rtol=1e-4, atol=1e-4 * max(1.0, logits.abs().max().item()))
        return
    with torch.no_grad():
        final, inter = model.forward_intermediates(x)
        only = model.forward_intermediates(x, indices=[0, 2], intermediates_only=True)
    torch.testing.assert_close(final, feats)
    assert len(inter) == len(model.feature_info)
    for f, info in zip(inter, model.feature_info):
        assert f.shape == (1, info['num_chs'], math.ceil(h / info['reduction']), math.ceil(w / info['reduction']))
    torch.testing.assert_close(only[1], inter[2])
    names = {n for n, _ in model.named_parameters()}
    assert model.no_weight_decay() <= names
    for coarse in (False, True):
        groups = group_parameters(model, model.group_matcher(coarse=coarse))
        assert sorted(n for g in groups.values() for n in g) == sorted(names)
    with pytest.raises(ValueError, match='built for 3 input channels, got 1'):
        model(torch.randn(1, 1, 64, 64))
    # the FX trace (timm's test_model_forward_fx): the same ops, bit for bit
    with torch.no_grad():
        assert torch.equal(fx_trace(model)(x), logits)
    check_non_finite(model, x, logits)
    check_empty_batch(model, VARIANT_HW)
    # the deploy form: every fold exact, nothing left to fold, the train form untouched
    before = {k: v.clone() for k, v in model.state_dict().items()}
    deploy = zoo.reparameterize(model)
    assert not foldable_modules(deploy)
    remaining_norms_are_unfoldable(deploy)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    check_non_finite(deploy, x, logits)  # with the deploy form's parity on the clean sample
    check_empty_batch(deploy, VARIANT_HW)
    # the deploy form traced as export traces it (the graph ONNX and TorchScript export write; the export files
    # themselves are checked against onnxruntime and torch.jit.load on each family's smallest variant)
    with torch.no_grad():
        traced = torch.jit.trace(deploy, (x,), check_trace=False)
        torch.testing.assert_close(traced(x), deploy(x))
    model.reset_classifier(10)
    with torch.no_grad():
        assert model.eval()(x).shape == (1, 10)  # (a new BatchNorm head is in train mode)
    model.reset_classifier(0)
    with torch.no_grad():
        assert model.eval()(x).shape == (1, model.head_hidden_size)
