"""Deploy form: every fold exact, for each fusable unit and on each family's smallest variant at 224 px (every
other variant's deploy form is checked at a small input in tests/test_contract.py, in its one-build contract)."""
import itertools

import pytest
import timm
import torch
import torch.nn.functional as F
from timm.utils import reparameterize_model

import zoo
from conftest import SMALLEST, randomize_norms, remaining_norms_are_unfoldable
from zoo.layers import BNLinear, ConvBN, RepVGGDW
from zoo.models.lsnet import Attention, small_kernel_aggregation
from zoo.deploy import foldable_modules


@pytest.mark.parametrize('model_name', SMALLEST)
def test_deploy_form_matches_train_form(model_name):
    model = randomize_norms(timm.create_model('zoo/' + model_name)).eval()
    x = torch.randn(2, 3, 224, 224)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    deploy = zoo.reparameterize(model)
    via_timm = reparameterize_model(model)
    with torch.no_grad():
        ref = model(x)
        out = deploy(x)
        out_timm = via_timm(x)
    assert (out - ref).abs().max() <= 1e-4
    assert (out_timm - ref).abs().max() <= 1e-4
    assert not foldable_modules(deploy) and not foldable_modules(via_timm)
    remaining_norms_are_unfoldable(deploy)
    remaining_norms_are_unfoldable(via_timm)
    # folding leaves fewer numbers (SHViT's deploy attention adds zero padding, which holds no information)
    assert sum(int((p != 0).sum()) for p in deploy.parameters()) < sum(p.numel() for p in model.parameters())
    for k, v in model.state_dict().items():  # the train form is left as it was
        assert torch.equal(v, before[k])


@pytest.mark.parametrize('model_name', SMALLEST)
def test_deploy_form_features_match(model_name):
    model = randomize_norms(timm.create_model('zoo/' + model_name, features_only=True)).eval()
    deploy = zoo.reparameterize(model)
    x = torch.randn(1, 3, 160, 96)
    with torch.no_grad():
        for a, b in zip(model(x), deploy(x)):
            # stage outputs reach |x| ~ 400 with random statistics: float rounding is relative
            assert (a - b).abs().max() <= 1e-5 * a.abs().max()


def test_conv_bn_fuse():
    unit = randomize_norms(ConvBN(6, 12, 3, stride=2, padding=1, groups=3)).eval()
    x = torch.randn(2, 6, 9, 11)
    bn = unit.bn
    ref = (F.conv2d(x, unit.conv.weight, None, 2, 1, 1, 3) - bn.running_mean[:, None, None]) \
        / torch.sqrt(bn.running_var[:, None, None] + bn.eps) * bn.weight[:, None, None] + bn.bias[:, None, None]
    with torch.no_grad():
        torch.testing.assert_close(unit.fuse()(x), ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('bias', [True, False])
def test_bn_linear_fuse(bias):
    unit = randomize_norms(BNLinear(16, 5, bias=bias)).eval()
    x = torch.randn(4, 16)
    with torch.no_grad():
        torch.testing.assert_close(unit.fuse()(x), unit(x), atol=1e-5, rtol=1e-5)


def test_repvgg_dw_fuse_is_one_kernel():
    unit = randomize_norms(RepVGGDW(8)).eval()
    x = torch.randn(2, 8, 10, 7)
    fused = unit.fuse()
    assert isinstance(fused, torch.nn.Conv2d) and fused.kernel_size == (3, 3) and fused.groups == 8
    with torch.no_grad():
        torch.testing.assert_close(fused(x), unit(x), atol=1e-5, rtol=1e-5)


def test_squeeze_excite_deploy_form_is_timms_se_on_the_pooled_vector():
    """``SqueezeExcite.fuse()``: the same function as timm's SEModule with the same weights (tensors shared, names
    kept), Linears on the pooled vector; NaN stays NaN; it differentiates, scripts and traces."""
    from timm.layers import SEModule
    from zoo.layers import FusedSqueezeExcite, SqueezeExcite
    torch.manual_seed(0)
    se = SqueezeExcite(32, rd_ratio=0.25).eval()
    ref = SEModule(32, rd_ratio=0.25).eval()
    ref.load_state_dict(se.state_dict())
    fused = se.fuse()
    assert isinstance(fused, FusedSqueezeExcite) and set(fused.state_dict()) == set(se.state_dict())
    assert fused.fc1.weight.data_ptr() == se.fc1.weight.data_ptr() and fused.fc2.bias is se.fc2.bias
    x = torch.randn(3, 32, 5, 4).contiguous(memory_format=torch.channels_last)
    x[1, 7, 2, 3] = float('nan')
    with torch.no_grad():
        want = ref(x)
        got = fused(x)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6, equal_nan=True)
    assert got[1].isnan().all() and not got[[0, 2]].isnan().any()
    x = x.nan_to_num().requires_grad_()
    fused(x).sum().backward()
    assert x.grad is not None and fused.fc1.weight.grad is not None
    y = torch.randn(2, 32, 3, 3)
    with torch.no_grad():
        torch.testing.assert_close(torch.jit.script(fused)(y), fused(y))
        torch.testing.assert_close(torch.fx.symbolic_trace(fused)(y), fused(y))


def _ska_reference(x, w):
    """out[b,c,i,j] = sum over the 3x3 window of x[b,c] times the kernel of weight channel c % G."""
    B, C, H, W = x.shape
    G = w.shape[1]
    cols = F.unfold(x, 3, padding=1).view(B, C, 9, H, W)
    return (cols * w[:, torch.arange(C) % G]).sum(2)


def test_small_kernel_aggregation_matches_reference_and_grads():
    x = torch.randn(2, 16, 7, 9, requires_grad=True)
    w = torch.randn(2, 2, 9, 7, 9, requires_grad=True)
    out = small_kernel_aggregation(x, w)
    ref = _ska_reference(x, w)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(out)
    gx, gw = torch.autograd.grad(out, (x, w), g)
    rx, rw = torch.autograd.grad(ref, (x, w), g)
    torch.testing.assert_close(gx, rx, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(gw, rw, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match='divisible'):
        small_kernel_aggregation(torch.randn(1, 15, 4, 4), torch.randn(1, 2, 9, 4, 4))


@pytest.mark.parametrize('channels,groups,size', [(64, 8, 7), (64, 16, 3), (256, 32, 7)])
def test_small_kernel_aggregation_on_a_channels_last_map(channels, groups, size):
    """A channels-last input (the deploy form's) is aggregated in whichever layout the loop runs faster in
    (NCHW for (64, 8, 7), channels-last for the others): the same sums either way, forward and backward."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, channels, size, size + 1, generator=g, requires_grad=True)
    w = torch.randn(2, groups, 9, size, size + 1, generator=g)
    ref = _ska_reference(x, w)
    x_cl = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_()
    out = small_kernel_aggregation(x_cl, w)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    (grad,) = torch.autograd.grad(out.sum(), x_cl)
    torch.testing.assert_close(grad, torch.autograd.grad(ref.sum(), x)[0], atol=1e-5, rtol=1e-5)


def _official_bias_index(res):
    """The official (LeViT) construction: offsets numbered in first-seen order over all point pairs."""
    points = list(itertools.product(range(res), range(res)))
    offsets, idxs = {}, []
    for p1 in points:
        for p2 in points:
            off = (abs(p1[0] - p2[0]), abs(p1[1] - p2[1]))
            idxs.append(offsets.setdefault(off, len(offsets)))
    return torch.tensor(idxs).view(len(points), len(points))


@pytest.mark.parametrize('grid', [(4, 4), (3, 2), (7, 5)])
def test_attention_sdpa_matches_softmax_reference(grid):
    torch.manual_seed(0)
    attn = randomize_norms(Attention(dim=32, key_dim=8, num_heads=2, attn_ratio=2, resolution=4)).eval()
    H, W = grid
    x = torch.randn(2, 32, H, W)
    bias = attn.attention_bias(H, W)
    if (H, W) == (4, 4):  # the trained grid: the official index applies
        torch.testing.assert_close(bias, attn.attention_biases[:, _official_bias_index(4)])
    with torch.no_grad():
        q, k, v = attn.qkv(x).split(attn.split, dim=1)
        q = attn.dw(q)
        q, k, v = (t.reshape(2, 2, -1, H * W) for t in (q, k, v))
        a = (q.transpose(-2, -1) @ k) * attn.key_dim ** -0.5 + bias
        ref = attn.proj((v @ a.softmax(-1).transpose(-2, -1)).reshape(2, -1, H, W))
        torch.testing.assert_close(attn(x), ref, atol=1e-5, rtol=1e-5)


def test_attention_bias_cache_follows_weight_changes():
    attn = Attention(dim=16, key_dim=4, num_heads=2, attn_ratio=2, resolution=4).eval()
    first = attn.attention_bias(4, 4).clone()
    with torch.no_grad():
        attn.attention_biases.add_(1.0)
    torch.testing.assert_close(attn.attention_bias(4, 4), first + 1.0)
