"""UniRepLKNet: parameter counts in both forms, the official checkpoint layouts in both forms against a
functional statement of the official forward pass, the Dilated Reparam Block merge, GRN, and the large-kernel
depthwise conv alternatives."""
import re

import pytest
import timm
import torch
import torch.nn.functional as F

import zoo
from conftest import randomize_norms
from zoo.measure import kernel_table_markdown, large_kernel_table
from zoo.layers import DEPTHWISE_METHODS, DilatedReparamBlock, GlobalResponseNorm, dilate_kernel, depthwise_conv
from zoo.models.unireplknet import default_kernel_sizes

# measured by instantiating the authors' UniRepLKNet class with deploy=False / deploy=True
OFFICIAL_PARAMS = {  # name: (train form, deploy form)
    'unireplknet_a': (4_649_060, 4_437_300), 'unireplknet_f': (6_489_328, 6_235_216),
    'unireplknet_p': (11_080_520, 10_741_704), 'unireplknet_n': (18_818_880, 18_318_560),
    'unireplknet_t': (31_693_420, 31_037_980), 'unireplknet_s': (56_456_704, 55_645_984),
    'unireplknet_b': (99_089_416, 98_008_456), 'unireplknet_l': (220_076_056, 218_454_616),
    'unireplknet_xl': (388_690_984, 386_529_064),
}
# the released branch settings of a 13x13 Dilated Reparam Block: (kernel size, dilation)
BRANCHES_13 = ((5, 1), (7, 2), (3, 3), (3, 4), (3, 5))


def test_every_variant_is_registered():
    assert set(zoo.list_models('unireplknet_*')) == set(OFFICIAL_PARAMS)


@pytest.mark.parametrize('name', list(OFFICIAL_PARAMS))
def test_param_counts_equal_official_in_both_forms(name):
    with torch.device('meta'):  # counting needs no values
        train = timm.create_model('zoo/' + name)
        deploy = timm.create_model('zoo/' + name, deploy=True)
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert (count(train), count(deploy)) == OFFICIAL_PARAMS[name]


def test_released_kernel_sizes():
    assert default_kernel_sizes((2, 2, 6, 2)) == ((3, 3), (13, 13), (13,) * 6, (13, 13))
    assert default_kernel_sizes((3, 3, 18, 3))[2] == (13, 3) * 9
    assert default_kernel_sizes((3, 3, 27, 3))[2][:6] == (13, 3, 3, 13, 3, 3)
    with pytest.raises(ValueError, match='no released kernel sizes'):
        default_kernel_sizes((1, 1, 1, 1))
    with pytest.raises(ValueError, match='one size per block'):
        zoo.create_model('unireplknet_a', kernel_sizes=((3, 3), (13,), (13,) * 6, (13, 13)))


# ---------------------------------------------------------------------------------------------------------
# the official layout (AILab-CVC/UniRepLKNet unireplknet.py), written from the zoo's names

_TO_OFFICIAL = [
    (r'\.conv_dw\.lk\.conv\.', '.dwconv.lk_origin.'), (r'\.conv_dw\.lk\.bn\.', '.dwconv.origin_bn.'),
    (r'\.conv_dw\.dilated\.k(\d+)_r(\d+)\.conv\.', r'.dwconv.dil_conv_k\1_\2.'),
    (r'\.conv_dw\.dilated\.k(\d+)_r(\d+)\.bn\.', r'.dwconv.dil_bn_k\1_\2.'),
    (r'\.se\.fc1\.', '.se.down.'), (r'\.se\.fc2\.', '.se.up.'), (r'\.mlp\.fc1\.', '.pwconv1.1.'),
    (r'\.mlp\.grn\.weight$', '.act.1.gamma'), (r'\.mlp\.grn\.bias$', '.act.1.beta'),
    (r'\.mlp\.fc2\.', '.pwconv2.0.'), (r'\.mlp_norm\.', '.pwconv2.2.'),
]


def official_layout(sd):
    """The zoo's state dict (either form) under the official names and shapes."""
    out = {}
    for key, v in sd.items():
        k = re.sub(r'^stem\.', 'downsample_layers.0.', key)
        k = re.sub(r'^stages\.(\d)\.downsample\.', r'downsample_layers.\1.', k)
        k = re.sub(r'^stages\.(\d)\.blocks\.(\d+)\.', r'stages.\1.\2.', k)
        if re.search(r'\.conv_dw\.(weight|bias)$', k):  # deploy form: the merged kernel
            large = sd[key.rsplit('.', 1)[0] + '.weight'].shape[-1] >= 7
            k = k.replace('.conv_dw.', '.dwconv.lk_origin.' if large else '.dwconv.')
        for pattern, repl in _TO_OFFICIAL:
            k = re.sub(pattern, repl, k)
        k = re.sub(r'^head\.norm\.', 'norm.', k)
        k = re.sub(r'^head\.fc\.', 'head.', k)
        out[k] = v.reshape(1, 1, 1, -1) if '.act.1.' in k else v
    return out


def official_forward(sd, x, depths):
    """The official train-form forward pass (eval mode), written against the official key names."""
    def conv(t, p, stride=1, padding=0, dilation=1, groups=1):
        return F.conv2d(t, sd[p + '.weight'], sd.get(p + '.bias'), stride, padding, dilation, groups)

    def bn(t, p):
        return F.batch_norm(t, sd[p + '.running_mean'], sd[p + '.running_var'], sd[p + '.weight'], sd[p + '.bias'],
                            False, 0.0, 1e-5)

    def ln_channels_first(t, p):
        u = t.mean(1, keepdim=True)
        s = (t - u).pow(2).mean(1, keepdim=True)
        return sd[p + '.weight'][:, None, None] * (t - u) / torch.sqrt(s + 1e-6) + sd[p + '.bias'][:, None, None]

    x = ln_channels_first(conv(x, 'downsample_layers.0.0', 2, 1), 'downsample_layers.0.1')
    x = ln_channels_first(conv(F.gelu(x), 'downsample_layers.0.3', 2, 1), 'downsample_layers.0.4')
    for i, kernels in enumerate(default_kernel_sizes(depths)):
        if i > 0:
            x = ln_channels_first(conv(x, f'downsample_layers.{i}.0', 2, 1), f'downsample_layers.{i}.1')
        for j, k in enumerate(kernels):
            p, c = f'stages.{i}.{j}', x.shape[1]
            if k == 13:
                y = bn(conv(x, p + '.dwconv.lk_origin', padding=6, groups=c), p + '.dwconv.origin_bn')
                for kb, r in BRANCHES_13:
                    y = y + bn(conv(x, f'{p}.dwconv.dil_conv_k{kb}_{r}', padding=r * (kb - 1) // 2, dilation=r,
                                    groups=c), f'{p}.dwconv.dil_bn_k{kb}_{r}')
            else:
                y = conv(x, p + '.dwconv', padding=k // 2, groups=c)
            y = bn(y, p + '.norm')
            s = torch.sigmoid(conv(F.relu(conv(F.adaptive_avg_pool2d(y, 1), p + '.se.down')), p + '.se.up'))
            y = F.gelu(F.linear((y * s).permute(0, 2, 3, 1), sd[p + '.pwconv1.1.weight'], sd[p + '.pwconv1.1.bias']))
            g = torch.norm(y, p=2, dim=(1, 2), keepdim=True)
            y = (sd[p + '.act.1.gamma'] * (g / (g.mean(-1, keepdim=True) + 1e-6)) + 1) * y + sd[p + '.act.1.beta']
            y = bn(F.linear(y, sd[p + '.pwconv2.0.weight']).permute(0, 3, 1, 2), p + '.pwconv2.2')
            x = x + sd[p + '.gamma'].view(1, -1, 1, 1) * y
    x = F.layer_norm(x.mean((2, 3)), (x.shape[1],), sd['norm.weight'], sd['norm.bias'], 1e-6)
    return F.linear(x, sd['head.weight'], sd['head.bias'])


def _random_train_model(name, seed=0):
    torch.manual_seed(seed)
    return randomize_norms(timm.create_model('zoo/' + name), seed).eval()


@pytest.mark.parametrize('name,size', [('unireplknet_a', 96), ('unireplknet_t', 64)])
def test_official_train_form_file_loads_and_predicts_as_official(name, size, tmp_path):
    """A released-style file (``{'model': ...}``, train form, the authors' names) loads with no missing or
    unexpected key and gives the official forward pass's logits; so does its deploy form."""
    sd = official_layout(_random_train_model(name).state_dict())
    assert 'stages.1.0.dwconv.dil_conv_k7_2.weight' in sd and sd['stages.0.0.act.1.gamma'].shape[:3] == (1, 1, 1)
    path = tmp_path / 'official.pth'
    torch.save({'model': sd}, path)
    model = timm.create_model('zoo/' + name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    x = torch.randn(2, 3, size, size)
    depths = [len(s.blocks) for s in model.stages]
    with torch.no_grad():
        expected = official_forward(sd, x, depths)
        torch.testing.assert_close(model(x), expected, atol=1e-5, rtol=1e-5)
        assert (zoo.reparameterize(model)(x) - expected).abs().max() <= 1e-4


def test_official_deploy_form_loads_into_deploy_model(tmp_path):
    """The official deploy layout (``lk_origin`` with a bias, no BNs, no GRN bias) loads strictly into a model
    built with ``deploy=True`` and predicts as the train form it came from."""
    train = _random_train_model('unireplknet_a')
    deploy_sd = official_layout(zoo.reparameterize(train).state_dict())
    assert 'stages.1.0.dwconv.lk_origin.bias' in deploy_sd and 'stages.0.0.dwconv.bias' in deploy_sd
    assert not any(re.match(r'^stages\.\d\.\d+\.(norm\.|dwconv\.(origin_bn|dil_)|act\.1\.beta|pwconv2\.2|gamma$)', k)
                   for k in deploy_sd)
    path = tmp_path / 'deploy.pth'
    torch.save(deploy_sd, path)
    model = timm.create_model('zoo/unireplknet_a', deploy=True, pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(path))).eval()
    assert set(model.state_dict()) == set(zoo.reparameterize(train).state_dict())
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        assert (model(x) - train(x)).abs().max() <= 1e-4


def test_checkpoint_of_the_other_form_is_refused_untouched():
    train = _random_train_model('unireplknet_a')
    deploy_sd = zoo.reparameterize(train).state_dict()
    target = timm.create_model('zoo/unireplknet_a')
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(zoo.CheckpointMismatchError, match='deploy form .* train form.*deploy=True'):
        zoo.load_checkpoint(target, official_layout(deploy_sd))
    with pytest.raises(zoo.CheckpointMismatchError, match='deploy=True'):
        zoo.load_checkpoint(target, deploy_sd)
    assert all(torch.equal(v, before[k]) for k, v in target.state_dict().items())
    with pytest.raises(zoo.CheckpointMismatchError, match='zoo.reparameterize'):
        zoo.load_checkpoint(timm.create_model('zoo/unireplknet_a', deploy=True), train.state_dict())


@pytest.mark.parametrize('name', ['unireplknet_a', 'unireplknet_n'])
def test_deploy_form_is_the_deploy_structure(name):
    """reparameterize gives exactly the keys and shapes of a deploy=True model: no branch, BN or GRN bias left."""
    deploy = zoo.reparameterize(_random_train_model(name))
    built = timm.create_model('zoo/' + name, deploy=True)
    assert {k: v.shape for k, v in deploy.state_dict().items()} == {k: v.shape for k, v in built.state_dict().items()}
    assert not any(isinstance(m, (DilatedReparamBlock, torch.nn.BatchNorm2d)) for m in deploy.modules())


@pytest.mark.parametrize('size', [(64, 64), (96, 160), (224, 32)])
def test_any_multiple_of_32_gives_features_at_strides_4_to_32(size):
    model = timm.create_model('zoo/unireplknet_a', features_only=True).eval()
    with torch.no_grad():
        feats = model(torch.randn(1, 3, *size))
    assert [tuple(f.shape[1:]) for f in feats] == [(c, size[0] // r, size[1] // r)
                                                   for c, r in zip((40, 80, 160, 320), (4, 8, 16, 32))]


# ---------------------------------------------------------------------------------------------------------
# pieces


def test_dilate_kernel_equals_dilated_conv():
    w = torch.randn(6, 1, 3, 3)
    x = torch.randn(2, 6, 17, 19)
    dense = dilate_kernel(w, 4)
    assert dense.shape[-2:] == (9, 9) and torch.count_nonzero(dense) == torch.count_nonzero(w)
    torch.testing.assert_close(F.conv2d(x, dense, padding=4, groups=6), F.conv2d(x, w, padding=4, dilation=4, groups=6))


@pytest.mark.parametrize('kernel_size', [7, 9, 11, 13, 15, 17])
def test_dilated_reparam_block_merges_into_one_kernel(kernel_size):
    block = randomize_norms(DilatedReparamBlock(8, kernel_size)).eval()
    with torch.no_grad():
        for conv in block.modules():
            if isinstance(conv, torch.nn.Conv2d):
                conv.weight.normal_(0, 0.3)
        merged = block.fuse()
        x = torch.randn(2, 8, 21, 23)
        assert isinstance(merged, torch.nn.Conv2d) and merged.kernel_size == (kernel_size, kernel_size)
        assert (merged(x) - block(x)).abs().max() <= 1e-5 * block(x).abs().max()
    if kernel_size == 13:
        assert list(block.dilated) == [f'k{k}_r{r}' for k, r in BRANCHES_13]
    with pytest.raises(ValueError, match='kernel sizes'):
        DilatedReparamBlock(8, 6)


def test_grn_matches_its_definition():
    grn = GlobalResponseNorm(5)
    with torch.no_grad():
        grn.weight.normal_()
        grn.bias.normal_()
    x = torch.randn(2, 4, 3, 5)
    gx = torch.sqrt((x ** 2).sum((1, 2), keepdim=True))
    nx = gx / (gx.mean(-1, keepdim=True) + 1e-6)
    torch.testing.assert_close(grn(x), (grn.weight * nx + 1) * x + grn.bias)
    assert GlobalResponseNorm(5, bias=False).bias is None


def test_grn_in_place_only_without_autograd():
    grn = GlobalResponseNorm(6, inplace=True)
    with torch.no_grad():
        grn.weight.normal_()
        grn.bias.normal_()
    x = torch.randn(3, 9, 8, 6)
    expected = GlobalResponseNorm(6)
    expected.load_state_dict(grn.state_dict())
    ref = expected(x)
    leaf = x.clone().requires_grad_()
    out = grn(leaf)
    out.sum().backward()  # recorded: not in place, differentiable
    torch.testing.assert_close(out, ref)
    torch.testing.assert_close(leaf.detach(), x)
    assert grn.weight.grad is not None and leaf.grad is not None
    y = x.clone()
    with torch.no_grad():
        out = grn(y)
    assert out.data_ptr() == y.data_ptr()
    torch.testing.assert_close(out, ref.detach())


@pytest.mark.parametrize('method', list(DEPTHWISE_METHODS))
@pytest.mark.parametrize('shape,k', [((2, 8, 20, 20), 13), ((1, 4, 7, 9), 13), ((1, 3, 16, 12), 5)])
def test_large_kernel_methods_are_exact(method, shape, k):
    x = torch.randn(shape)
    w = torch.randn(shape[1], 1, k, k) / k
    b = torch.randn(shape[1])
    out = depthwise_conv(x, w, b, method)
    assert out.shape == shape
    assert (out - F.conv2d(x, w, b, padding=k // 2, groups=shape[1])).abs().max() <= 1e-4


def test_large_kernel_bad_input_is_named():
    with pytest.raises(ValueError, match='unknown depthwise conv method'):
        depthwise_conv(torch.randn(1, 2, 8, 8), torch.randn(2, 1, 3, 3), method='winograd')
    with pytest.raises(ValueError, match='same C'):
        depthwise_conv(torch.randn(1, 2, 8, 8), torch.randn(3, 1, 3, 3))
    with pytest.raises(ValueError, match='square, odd'):
        depthwise_conv(torch.randn(1, 2, 8, 8), torch.randn(2, 1, 4, 4))


def test_large_kernel_table_times_and_checks_every_method():
    rows = large_kernel_table([(1, 8, 14, 14)], kernel_size=13, warmup=1, repeats=2, threads=1)
    assert [r.method for r in rows] == list(DEPTHWISE_METHODS) + ['dilated branches']
    assert all(r.ms > 0 and r.max_abs_err <= 1e-4 for r in rows)
    assert sum(r.chosen for r in rows) == 1
    assert next(r for r in rows if r.method == 'direct').speedup == 1.0
    assert '| (1, 8, 14, 14) | 13 | fft |' in kernel_table_markdown(rows)


def test_wrapped_file_handed_over_by_timm_is_unwrapped():
    """timm passes URL and Hub downloads to the filter as stored; the authors' ``{'model': ...}`` wrapper is
    taken off before the keys are mapped."""
    train = _random_train_model('unireplknet_a')
    wrapped = {'model': official_layout(train.state_dict())}
    model = timm.create_model('zoo/unireplknet_a', pretrained=True,
                              pretrained_cfg_overlay=dict(state_dict=wrapped)).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(model(x), train(x))


def test_grn_statistic_over_batch_slices():
    """Large inputs are reduced in slices of the batch; the result is the per-sample statistic all the same."""
    grn = GlobalResponseNorm(64)
    with torch.no_grad():
        grn.weight.normal_()
    x = torch.randn(5, 64, 128, 64)  # 0.5M elements per sample: slices of two samples
    gx = torch.sqrt((x ** 2).sum((1, 2), keepdim=True))
    torch.testing.assert_close(grn(x), (grn.weight * gx / (gx.mean(-1, keepdim=True) + 1e-6) + 1) * x)


def test_grn_gradient_is_finite_where_a_channel_is_all_zeros():
    """A channel that is zero over the whole map (small late-stage maps after GELU underflow) has norm 0; the
    backward must stay finite there (it once gave NaN and stopped a training run), and match autograd through
    torch.linalg.vector_norm (timm's and the authors' form) everywhere."""
    grn = GlobalResponseNorm(6)
    with torch.no_grad():
        grn.weight.copy_(torch.linspace(-1, 1, 6))
        grn.bias.copy_(torch.linspace(0, 1, 6))
    x = torch.randn(3, 2, 2, 6, dtype=torch.float64)
    x[0, :, :, 2] = 0
    x[1] = 0
    ours = x.clone().requires_grad_()
    grn.double()(ours).sum().backward()
    ref = x.clone().requires_grad_()
    g = torch.linalg.vector_norm(ref, dim=(1, 2), keepdim=True)
    (ref + grn.weight * ref * (g / (g.mean(-1, keepdim=True) + grn.eps)) + grn.bias).sum().backward()
    assert torch.isfinite(ours.grad).all()
    assert torch.allclose(ours.grad, ref.grad, atol=1e-12)
