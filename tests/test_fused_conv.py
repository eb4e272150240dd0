"""FusedConv2d: oneDNN's convolution on a packed weight in CPU inference, the plain conv everywhere else; the
same function either way, through weight edits, non-finite values, shapes and layouts; and the deploy forms
of the attention families hold it in place of their plain convs."""
import copy

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import zoo
from conftest import randomize_norms
from zoo.layers import FusedConv2d

ACTS = {'none': lambda y: y, 'gelu': F.gelu, 'relu': F.relu}


def _plain(layer: FusedConv2d, x: torch.Tensor) -> torch.Tensor:
    return ACTS[layer.act](F.conv2d(x, layer.weight, layer.bias, layer.stride, layer.padding, layer.dilation,
                                    layer.groups))


@pytest.mark.parametrize('act', ['none', 'gelu', 'relu'])
@pytest.mark.parametrize('conv', [
    dict(in_channels=8, out_channels=16, kernel_size=1),
    dict(in_channels=12, out_channels=12, kernel_size=3, padding=1, groups=12),
    dict(in_channels=6, out_channels=8, kernel_size=3, stride=2, padding=1, groups=2),
    dict(in_channels=4, out_channels=4, kernel_size=(3, 5), padding=(2, 1), dilation=(2, 1), bias=False),
])
def test_fused_conv_is_the_plain_conv_in_both_layouts_and_under_autograd(act, conv):
    torch.manual_seed(0)
    layer = FusedConv2d(**conv, act=act).eval()
    x = torch.randn(2, conv['in_channels'], 9, 7)
    with torch.no_grad():
        want = _plain(layer, x)
        torch.testing.assert_close(layer(x), want, atol=1e-5, rtol=1e-5)
        cl = layer(x.contiguous(memory_format=torch.channels_last))
        torch.testing.assert_close(cl, want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(layer(x[:1]), want[:1], atol=1e-5, rtol=1e-5)  # another shape, packed anew
    x.requires_grad_(True)
    out = layer(x)
    out.sum().backward()  # the plain path, which autograd differentiates
    assert x.grad is not None and layer.weight.grad is not None
    torch.testing.assert_close(out.detach(), want, atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize('act', ['relu', 'gelu'])
@pytest.mark.parametrize('k', [3, 1])  # 1: the rows path (oneDNN's linear op)
def test_fused_conv_follows_every_weight_edit_and_keeps_nan(act, k):
    layer = FusedConv2d(4, 8, k, padding=k // 2, act=act).eval()
    x = torch.randn(2, 4, 6, 6)
    edits = [lambda: layer.weight.data.copy_(torch.randn(8, 4, k, k)),
             lambda: layer.bias.data.add_(1.0),
             lambda: layer.load_state_dict(FusedConv2d(4, 8, k, padding=k // 2, act=act).state_dict()),
             lambda: setattr(layer.weight, 'data', torch.randn(8, 4, k, k)),
             # a new Parameter over the same storage, then an edit through its .data
             lambda: layer.load_state_dict(layer.state_dict(), assign=True),
             lambda: layer.weight.data.mul_(2.0)]
    with torch.no_grad():
        layer(x)
        for edit in edits:
            edit()
            torch.testing.assert_close(layer(x), _plain(layer, x), atol=1e-5, rtol=1e-5)
        x[0, 1, 2, 3] = float('nan')  # oneDNN's fused ReLU would give 0 where the plain conv gives NaN
        out = layer(x)
        torch.testing.assert_close(out, _plain(layer, x), atol=1e-5, rtol=1e-5, equal_nan=True)
        assert out[0].isnan().any() and torch.isfinite(out[1]).all()
        x[0, 1, 2, 3] = 0.0
        layer.weight.data[0, 0, 0, 0] = float('inf')  # never packed: the plain conv keeps the inf's results
        torch.testing.assert_close(layer(x), _plain(layer, x), equal_nan=True)


def test_fused_conv_keeps_a_few_packed_shapes_and_survives_copies():
    layer = FusedConv2d(3, 4, 3, padding=1).eval()
    with torch.no_grad():
        for size in range(4, 4 + FusedConv2d._MAX_SHAPES + 2):
            x = torch.randn(1, 3, size, size)
            torch.testing.assert_close(layer(x), _plain(layer, x), atol=1e-5, rtol=1e-5)
        assert len(layer._packed.cache) == FusedConv2d._MAX_SHAPES
        copied = copy.deepcopy(layer)
        torch.testing.assert_close(copied(x), layer(x))
        scripted = torch.jit.script(layer)
        torch.testing.assert_close(scripted(x), layer(x), atol=1e-5, rtol=1e-5)


def test_a_fused_conv_pickled_before_its_geometry_was_kept_loads_and_runs():
    """A whole model saved with torch.save before FusedConv2d answered its geometry once (``_rows``,
    ``_pointwise``) loads, and its 1x1 convs still run as Linears on the rows."""
    import io
    layer = FusedConv2d(8, 4, 1).eval()
    for name in ('_rows', '_pointwise'):
        del layer.__dict__[name]
    buf = io.BytesIO()
    torch.save(layer, buf)
    buf.seek(0)
    loaded = torch.load(buf, weights_only=False)
    assert loaded._rows and loaded._pointwise
    x = torch.randn(2, 8, 5, 5)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), _plain(loaded, x), atol=1e-5, rtol=1e-5)
    if zoo.layers.onednn_available():  # packed once for the linear op, for any rows: no shape key
        assert loaded._packed.last_key is None and loaded._packed.last is not None


def test_fused_conv_from_conv_shares_the_tensors_and_refuses_what_it_cannot_run():
    conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
    layer = FusedConv2d.from_conv(conv, act='relu')
    assert layer.weight is conv.weight and layer.bias is conv.bias
    assert (layer.stride, layer.padding, layer.groups) == ((2, 2), (1, 1), 2)
    with pytest.raises(ValueError, match="activation must be one of .* got 'swish'"):
        FusedConv2d(2, 2, 1, act='swish')
    with pytest.raises(ValueError, match="zero padding given as numbers, got padding='same'"):
        FusedConv2d(2, 2, 3, padding='same')
    with pytest.raises(ValueError, match="padding_mode='reflect'"):
        FusedConv2d(2, 2, 3, padding=1, padding_mode='reflect')


@pytest.mark.parametrize('name', ['lsnet_t', 'shvit_s1', 'litv2_s', 'biformer_t'])
def test_attention_families_deploy_with_fused_convs_only(name):
    """No plain conv is left in the deploy form (each became a FusedConv2d), and the train form has none."""
    model = randomize_norms(zoo.create_model(name)).eval()
    deploy = zoo.reparameterize(model)
    assert not any(isinstance(m, FusedConv2d) for m in model.modules())
    assert not [n for n, m in deploy.named_modules() if type(m) is nn.Conv2d]
    assert any(isinstance(m, FusedConv2d) for m in deploy.modules())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(deploy(x), model(x), atol=1e-4, rtol=1e-4)


def test_packing_fuses_the_activation_that_follows_a_conv_in_a_sequential():
    """In an nn.Sequential a ReLU or GELU right after a plain conv runs in the conv's layer (an Identity in its
    place): the same outputs, a NaN still NaN. An activation elsewhere stays: not right after a conv, in a
    module whose forward decides the order, after a conv held twice; a conv with a hook stays a plain conv."""
    from zoo.deploy.reparam import _pack_convs

    class Block(nn.Module):  # its forward, not its attribute order, decides what follows the conv
        def __init__(self):
            super().__init__()
            self.conv, self.act = nn.Conv2d(4, 4, 3, padding=1), nn.ReLU()

        def forward(self, x):
            return self.conv(self.act(x))

    class Reversed(nn.Sequential):  # a Sequential whose forward runs its children backwards
        def forward(self, x):
            for m in reversed(self):
                x = m(x)
            return x

    torch.manual_seed(0)
    shared = nn.Conv2d(4, 4, 1)
    hooked = nn.Conv2d(4, 4, 1)
    hooked.register_forward_hook(lambda m, i, o: o.mul(1.0))
    act_calls = []
    hooked_act = nn.ReLU()  # its hook must still run: it stays, and its conv fuses nothing
    hooked_act.register_forward_hook(lambda m, i, o: act_calls.append(1))
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 1), nn.GELU(),
                          nn.GELU(approximate='tanh'), nn.Conv2d(4, 4, 1), nn.GELU(approximate='tanh'),
                          nn.ReLU(), Block(), Reversed(nn.Conv2d(4, 4, 1), nn.ReLU()), shared, shared, nn.ReLU(),
                          hooked, nn.ReLU(), nn.Conv2d(4, 4, 1), hooked_act).eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        want = model(x)
        _pack_convs(model)
        assert [type(m).__name__ for m in model] == [
            'FusedConv2d', 'Identity', 'FusedConv2d', 'Identity', 'GELU', 'FusedConv2d', 'GELU', 'ReLU', 'Block',
            'Reversed', 'FusedConv2d', 'FusedConv2d', 'ReLU', 'Conv2d', 'ReLU', 'FusedConv2d', 'ReLU']
        assert [model[i].act for i in (0, 2, 5, 10, 11, 15)] == ['relu', 'gelu', 'none', 'none', 'none', 'none']
        assert model[16] is hooked_act and len(act_calls) == 1
        assert model[13] is hooked
        assert type(model[8].act) is nn.ReLU and model[8].conv.act == 'none'
        assert type(model[9][1]) is nn.ReLU and model[9][0].act == 'none'
        torch.testing.assert_close(model(x), want, atol=1e-5, rtol=1e-5)
        assert len(act_calls) == 2
        x[0, 0, 0, 0] = float('nan')
        out = model(x)
    assert out[0].isnan().any() and torch.isfinite(out[1]).all()


@pytest.mark.parametrize('flag', ['torchscript', 'dynamo'])
def test_fused_layers_step_aside_while_onnx_exports(monkeypatch, flag):
    """is_plain_eager() reads the ONNX exporters' flags itself (torch.onnx.is_in_onnx_export() costs more than
    all its other tests together); it must answer as torch does, and a fused layer then runs the plain conv."""
    from torch.onnx._internal.exporter import _flags
    from torch.onnx._internal.torchscript_exporter._globals import GLOBALS
    from zoo.layers._fx import is_plain_eager
    layer = FusedConv2d(4, 4, 3, padding=1).eval()
    calls = []
    run = layer._run
    monkeypatch.setattr(layer, '_run', lambda *args: calls.append(1) or run(*args))
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        layer(x)
        assert is_plain_eager() and calls == [1]
        if flag == 'torchscript':
            monkeypatch.setattr(GLOBALS, 'in_onnx_export', True)
        else:
            monkeypatch.setattr(_flags, '_is_onnx_exporting', True)
        assert torch.onnx.is_in_onnx_export() and not is_plain_eager()
        torch.testing.assert_close(layer(x), _plain(layer, x), atol=1e-5, rtol=1e-5)
    assert calls == [1]


def _spy(monkeypatch, name):
    """Count the calls of one of zoo.patches.onednn's op wrappers."""
    from zoo.patches import onednn
    calls = []
    op = getattr(onednn, name)
    monkeypatch.setattr(onednn, name, lambda *a: calls.append(1) or op(*a))
    return calls


def test_forward_add_takes_the_shortcut_in_the_kernels_pass_with_the_same_numbers(monkeypatch):
    """``forward_add(x, other)`` is ``layer(x) + other``: in oneDNN's pass for a Linear, or a 1x1 conv (run as a
    Linear on the rows of the channels-last map), without activation and a shortcut of the output's shape and
    layout; another conv adds it after oneDNN's conv; the layer then an add for anything else. NaN and inf pass."""
    from zoo.layers import FusedLinear
    torch.manual_seed(0)
    linear_calls, conv_calls = _spy(monkeypatch, 'linear_add'), _spy(monkeypatch, 'conv_pointwise')
    linear = FusedLinear(12, 20).eval()
    x, other = torch.randn(2, 5, 12), torch.randn(2, 5, 20)
    other[0, 1, 3], other[1, 2, 4] = float('nan'), float('inf')
    want = F.linear(x, linear.weight, linear.bias) + other
    conv = FusedConv2d(6, 8, 3, stride=2, padding=1).eval()
    xc = torch.randn(2, 6, 9, 7)
    want_c = F.conv2d(xc, conv.weight, conv.bias, 2, 1)
    other_c = torch.randn_like(want_c).contiguous(memory_format=torch.channels_last)
    other_c[1, 2, 3, 1] = float('nan')
    with torch.no_grad():
        torch.testing.assert_close(linear.forward_add(x, other), want, atol=1e-5, rtol=1e-5, equal_nan=True)
        assert len(linear_calls) == 1
        got = conv.forward_add(xc, other_c)
        torch.testing.assert_close(got, want_c + other_c, atol=1e-5, rtol=1e-5, equal_nan=True)
        assert len(conv_calls) == 1 and got[1, 2, 3, 1].isnan() and got.isnan().sum() == 1
        # the layer, then an add: a broadcast or strided shortcut, an NCHW one for the conv, an activation
        for other_ in (other[0, 0], other.transpose(0, 1).contiguous().transpose(0, 1)):
            torch.testing.assert_close(linear.forward_add(x, other_), F.linear(x, linear.weight, linear.bias) + other_,
                                       atol=1e-5, rtol=1e-5, equal_nan=True)
        plain_c = other_c.contiguous()
        torch.testing.assert_close(conv.forward_add(xc, plain_c), want_c + plain_c, atol=1e-5, rtol=1e-5,
                                   equal_nan=True)
        one = FusedConv2d(6, 8, 1).eval()  # a 1x1 map: NCHW strides, which PyTorch calls channels-last too
        x1, other1 = torch.randn(2, 6, 1, 1), torch.randn(2, 8, 1, 1)
        torch.testing.assert_close(one.forward_add(x1, other1), one(x1) + other1)
        relu = FusedConv2d(6, 8, 3, stride=2, padding=1, act='relu').eval()
        torch.testing.assert_close(relu.forward_add(xc, other_c), _plain(relu, xc) + other_c, atol=1e-5,
                                   rtol=1e-5, equal_nan=True)
        assert len(linear_calls) == 1 and len(conv_calls) == 3  # the plain NCHW shortcut: the layer, then an add
        pointwise = FusedConv2d(6, 8, 1).eval()
        xp = torch.randn(2, 6, 5, 3).contiguous(memory_format=torch.channels_last)
        other_p = torch.randn(2, 8, 5, 3).contiguous(memory_format=torch.channels_last)
        other_p[0, 7, 4, 2] = float('nan')
        got = pointwise.forward_add(xp, other_p)
        torch.testing.assert_close(got, _plain(pointwise, xp) + other_p, atol=1e-5, rtol=1e-5, equal_nan=True)
        assert got.is_contiguous(memory_format=torch.channels_last) and got.isnan().sum() == 1
        assert len(linear_calls) == 2 and len(conv_calls) == 3
        seen = []  # a hook on the layer still sees its output
        linear.register_forward_hook(lambda m, i, o: seen.append(o))
        linear.forward_add(x, other)
        assert len(seen) == 1 and len(linear_calls) == 2
    x.requires_grad_(True)  # autograd: the plain ops
    (conv.forward_add(xc, other_c.nan_to_num()).sum() + linear.forward_add(x, other.nan_to_num()).sum()).backward()
    assert x.grad is not None and conv.weight.grad is not None


def test_fused_conv_reads_any_layout_and_writes_channels_last():
    """On oneDNN's path the output is channels-last whatever the input's layout (SHViT's deploy form then
    reads the NCHW image as it comes); the plain path keeps the input's layout, with the same numbers."""
    torch.manual_seed(0)
    layer = FusedConv2d(3, 8, 3, stride=2, padding=1, act='relu').eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        assert layer.writes_channels_last(x)
        out = layer(x)
        assert out.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(out, _plain(layer, x), atol=1e-5, rtol=1e-5)
        assert not layer.writes_channels_last(x.double())
    assert not layer.writes_channels_last(x.requires_grad_(True))


@pytest.mark.parametrize('act', ['none', 'relu', 'gelu'])
def test_a_one_pixel_map_takes_a_matrix_vector_product(monkeypatch, act):
    """A 1x1 conv on a pooled (B, C, 1, 1) map (squeeze-excite) is computed as F.linear, not by oneDNN's conv:
    the plain conv's numbers, NaN kept; a padded or grouped 1x1 conv takes oneDNN's conv, and on a larger map
    the 1x1 conv is oneDNN's linear op on the rows."""
    from zoo.layers import onednn_available
    assert onednn_available()  # its one-time self-check runs oneDNN's conv before the count starts
    torch.manual_seed(0)
    calls, rows = _spy(monkeypatch, 'conv_pointwise'), _spy(monkeypatch, 'linear_pointwise')
    layer = FusedConv2d(16, 8, 1, act=act).eval()
    x = torch.randn(3, 16, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(layer(x), _plain(layer, x), atol=1e-5, rtol=1e-5)
        assert not calls and not rows
        nan = x.clone()
        nan[1, 4] = float('nan')
        got = layer(nan)
        torch.testing.assert_close(got, _plain(layer, nan), atol=1e-5, rtol=1e-5, equal_nan=True)
        assert got.shape == (3, 8, 1, 1) and got[1].isnan().all() and not got[[0, 2]].isnan().any()
        for other, y in ((FusedConv2d(16, 8, 1, padding=1, act=act), x), (FusedConv2d(16, 8, 1, groups=2, act=act), x),
                         (layer, torch.randn(3, 16, 2, 1))):
            torch.testing.assert_close(other.eval()(y), _plain(other, y), atol=1e-5, rtol=1e-5, equal_nan=True)
    assert len(calls) == 2 and len(rows) == 1


def test_shvit_deploy_form_reads_the_image_as_it_comes_and_adds_shortcuts_in_the_kernels(monkeypatch):
    """No channels-last copy of the image before the stem (its first conv reads NCHW), and every residual
    FFN and attention adds its shortcut in its last Linear's pass; the outputs are the train form's."""
    torch.manual_seed(0)
    model = randomize_norms(zoo.create_model('shvit_s1', num_classes=10)).eval()
    deploy = zoo.reparameterize(model)
    calls = _spy(monkeypatch, 'linear_add')
    seen = []
    deploy.stem[0].register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(deploy(x), model(x), atol=1e-4, rtol=1e-4)
    assert seen[0] is x  # not a copy
    blocks = [m for m in deploy.modules() if type(m).__name__ == 'SHViTBlock']
    residual_ffns = [m for m in deploy.modules() if type(m).__name__ == 'ResidualFFN']
    attentions = [b for b in blocks if b.has_mixer]
    assert len(calls) == len(blocks) + len(residual_ffns) + len(attentions) > 0
    with torch.no_grad():  # off oneDNN's path (a double input) the copy comes back, the numbers stay
        torch.testing.assert_close(deploy.double()(x.double()), model.double()(x.double()), atol=1e-6, rtol=1e-6)
    assert seen[-1] is not x and seen[-1].is_contiguous(memory_format=torch.channels_last)


def test_a_parametrized_weight_takes_the_plain_ops():
    """The fused layers read their weight from ``_parameters``; a parametrization computes it elsewhere, and the
    layer then runs the plain ops on the computed weight (no stale packed copy)."""
    from torch.nn.utils import parametrize

    class Double(nn.Module):
        def forward(self, w):
            return 2 * w

    torch.manual_seed(0)
    conv = FusedConv2d(4, 6, 3, padding=1).eval()
    x = torch.randn(2, 4, 5, 5)
    with torch.no_grad():
        conv(x)  # packed once for the plain weight
        parametrize.register_parametrization(conv, 'weight', Double())
        torch.testing.assert_close(conv(x), F.conv2d(x, 2 * conv.parametrizations.weight.original, conv.bias,
                                                     padding=1), atol=1e-5, rtol=1e-5)
        other = torch.randn(2, 6, 5, 5).contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(conv.forward_add(x, other), conv(x) + other)
        assert not conv.writes_channels_last(x)
