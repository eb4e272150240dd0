"""ConvNeXt, InceptionNeXt and FasterNet: the official architectures, the official and timm checkpoint
layouts, and the pieces their deploy forms are made of."""
import copy
import re

import pytest
import timm
import torch
import torch.nn.functional as F

import zoo
from conftest import count_params, randomize_norms, smallest_fast
from zoo.layers import FusedLinear, LayerNorm2d, NormConv, fold_affine_into_next, onednn_available
from zoo.models.fasternet import PartialConv
from zoo.models.inceptionnext import InceptionDWConv2d

# measured by instantiating the authors' model definitions (ConvNeXt V1 class for atto..nano with the
# ConvNeXt-V2 / timm widths); FasterNet counts are the train structure, before BN folding
OFFICIAL_PARAMS = {
    'convnext_atto': 3_695_520, 'convnext_femto': 5_217_784, 'convnext_pico': 9_045_672,
    'convnext_nano': 15_593_560, 'convnext_tiny': 28_589_128, 'convnext_small': 50_223_688,
    'convnext_base': 88_591_464, 'convnext_large': 197_767_336, 'convnext_xlarge': 350_196_968,
    'inceptionnext_atto': 4_156_520, 'inceptionnext_tiny': 28_055_680, 'inceptionnext_small': 49_374_016,
    'inceptionnext_base': 86_672_136,
    'fasternet_t0': 3_905_500, 'fasternet_t1': 7_595_368, 'fasternet_t2': 14_982_888, 'fasternet_s': 31_181_032,
    'fasternet_m': 53_521_464, 'fasternet_l': 93_465_192,
}
TIMM_NAME = {name: name.replace('inceptionnext_', 'inception_next_') for name in OFFICIAL_PARAMS}
# above 80M parameters: timm's weights are mapped on the meta device (every key and shape, no numbers); their
# outputs and deploy forms are checked in the variant contract (tests/test_contract.py)
HEAVY = {'convnext_base', 'convnext_large', 'convnext_xlarge', 'inceptionnext_base', 'fasternet_l'}


def _pair(name):
    """A timm model with non-trivial norms and layer scales, and the zoo model of the same variant."""
    ref = randomize_norms(timm.create_model(TIMM_NAME[name])).eval()
    return ref, timm.create_model('zoo/' + name).eval()


def test_every_conv_variant_is_registered():
    assert set(zoo.list_models('convnext_*') + zoo.list_models('inceptionnext_*')
               + zoo.list_models('fasternet_*')) == set(OFFICIAL_PARAMS)


@pytest.mark.parametrize('name', list(OFFICIAL_PARAMS))
def test_param_count_equals_official(name):
    assert count_params(name) == OFFICIAL_PARAMS[name]


@pytest.mark.parametrize('name', smallest_fast(OFFICIAL_PARAMS))
def test_timm_weights_give_timm_outputs(name):
    """The same weights in timm's model and the zoo's give the same logits: the architectures are identical."""
    if name in HEAVY:
        with torch.device('meta'):
            ref, model = timm.create_model(TIMM_NAME[name]), timm.create_model('zoo/' + name)
        zoo.load_checkpoint(model, ref.state_dict())  # strict: every key mapped, every shape equal
        return
    ref, model = _pair(name)
    zoo.load_checkpoint(model, ref.state_dict())
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        expected = ref(x)
        assert (model(x) - expected).abs().max() <= 1e-5 * max(1.0, expected.abs().max().item())
        deploy = zoo.reparameterize(model)(x)
        assert (deploy - expected).abs().max() <= 1e-4 * max(1.0, expected.abs().max().item())


# official ConvNeXt names (facebookresearch/ConvNeXt models/convnext.py), written from timm's
def _convnext_official_layout(sd):
    out = {}
    for k, v in sd.items():
        k = re.sub(r'^stem\.(\d)\.', r'downsample_layers.0.\1.', k)
        k = re.sub(r'^stages\.(\d)\.downsample\.(\d)\.', r'downsample_layers.\1.\2.', k)
        k = re.sub(r'^stages\.(\d)\.blocks\.(\d+)\.', r'stages.\1.\2.', k)
        k = k.replace('.conv_dw.', '.dwconv.').replace('.mlp.fc1.', '.pwconv1.').replace('.mlp.fc2.', '.pwconv2.')
        k = re.sub(r'^head\.norm\.', 'norm.', k)
        k = re.sub(r'^head\.fc\.', 'head.', k)
        out[k] = v.flatten(1) if k.endswith(('pwconv1.weight', 'pwconv2.weight')) else v
    return out


# official FasterNet names (JierunChen/FasterNet models/fasternet.py): stages and merges interleaved
def _fasternet_official_layout(sd):
    out = {}
    for k, v in sd.items():
        m = re.match(r'^stages\.(\d)\.downsample\.(reduction|norm)\.(.*)$', k)
        if m:
            k = f'stages.{2 * int(m[1]) - 1}.{m[2]}.{m[3]}'
        else:
            k = re.sub(r'^stages\.(\d)\.blocks\.', lambda n: f'stages.{2 * int(n[1])}.blocks.', k)
        k = re.sub(r'^conv_head\.', 'avgpool_pre_head.1.', k)
        k = re.sub(r'^classifier\.', 'head.', k)
        out[k] = v
    return out


@pytest.mark.parametrize('name', ['convnext_atto', 'convnext_tiny', 'inceptionnext_atto', 'fasternet_t0',
                                  'fasternet_t2'])
def test_official_checkpoint_file_loads(name, tmp_path):
    """An official release file (ConvNeXt's ``{'model': ...}`` wrapper, InceptionNeXt's and FasterNet's
    raw state dicts, the authors' key names) loads through ``pretrained_cfg`` and predicts as timm does."""
    ref, _ = _pair(name)
    sd = ref.state_dict()
    if name.startswith('convnext'):
        payload = {'model': _convnext_official_layout(sd)}
        assert 'downsample_layers.1.1.weight' in payload['model'] and 'stages.2.1.pwconv2.weight' in payload['model']
    elif name.startswith('fasternet'):
        payload = _fasternet_official_layout(sd)
        assert 'stages.6.blocks.1.spatial_mixing.partial_conv3.weight' in payload and 'stages.5.norm.running_var' in payload
        assert 'avgpool_pre_head.1.weight' in payload and 'patch_embed.proj.weight' in payload
    else:
        payload = sd  # timm keeps the authors' names for InceptionNeXt
        assert 'stem.1.running_mean' in payload and 'stages.0.blocks.0.token_mixer.dwconv_w.weight' in payload
    path = tmp_path / 'official.pth'
    torch.save(payload, path)
    model = timm.create_model('zoo/' + name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), atol=1e-5, rtol=1e-5)


def test_convnext_in22k_file_needs_its_class_count(tmp_path):
    ref = timm.create_model('convnext_atto', num_classes=21841)
    path = tmp_path / 'in22k.pth'
    torch.save({'model': _convnext_official_layout(ref.state_dict())}, path)
    model = timm.create_model('zoo/convnext_atto', pretrained=True, num_classes=21841,
                              pretrained_cfg_overlay=dict(file=str(path), num_classes=21841))
    assert model.get_classifier().out_features == 21841
    with pytest.raises(zoo.CheckpointMismatchError, match='head.fc.weight'):
        zoo.load_checkpoint(timm.create_model('zoo/convnext_atto'), str(path))


def test_inception_dwconv_splits_identity_first():
    """Channels split (C - 3g, g, g, g) into identity, 3x3, 1 x band and band x 1 depthwise branches."""
    mixer = InceptionDWConv2d(40, band_kernel_size=9, branch_ratio=0.25)
    assert mixer.split_sizes == (10, 10, 10, 10)
    x = torch.randn(2, 40, 12, 10)
    with torch.no_grad():
        out = mixer(x)
        torch.testing.assert_close(out[:, :10], x[:, :10])
        torch.testing.assert_close(out[:, 10:20], F.conv2d(x[:, 10:20], mixer.dwconv_hw.weight, mixer.dwconv_hw.bias,
                                                           padding=1, groups=10))
        torch.testing.assert_close(out[:, 20:30], F.conv2d(x[:, 20:30], mixer.dwconv_w.weight, mixer.dwconv_w.bias,
                                                           padding=(0, 4), groups=10))
        torch.testing.assert_close(out[:, 30:], F.conv2d(x[:, 30:], mixer.dwconv_h.weight, mixer.dwconv_h.bias,
                                                         padding=(4, 0), groups=10))
    assert InceptionDWConv2d(96).split_sizes == (60, 12, 12, 12)


def test_partial_conv_touches_only_the_first_quarter():
    pconv = PartialConv(40, n_div=4)
    x = torch.randn(2, 40, 9, 7)
    with torch.no_grad():
        out = pconv(x)
    torch.testing.assert_close(out[:, 10:], x[:, 10:])
    torch.testing.assert_close(out[:, :10], F.conv2d(x[:, :10], pconv.partial_conv3.weight, padding=1))
    assert pconv.partial_conv3.weight.shape == (10, 10, 3, 3)  # dense, not depthwise


def test_layer_norm_2d_normalizes_channels_only():
    norm = randomize_norms(LayerNorm2d(6, eps=1e-6))
    for x in (torch.randn(2, 6, 5, 4), torch.randn(2, 6, 5, 4).contiguous(memory_format=torch.channels_last)):
        mean = x.mean(1, keepdim=True)
        var = x.var(1, keepdim=True, unbiased=False)
        expected = (x - mean) / torch.sqrt(var + 1e-6) * norm.weight[:, None, None] + norm.bias[:, None, None]
        torch.testing.assert_close(norm(x), expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize('norm', [lambda: torch.nn.BatchNorm2d(8), lambda: LayerNorm2d(8)])
def test_norm_conv_fuse(norm):
    unit = randomize_norms(NormConv(norm(), torch.nn.Conv2d(8, 12, 2, 2))).eval()
    x = torch.randn(2, 8, 10, 6)
    with torch.no_grad():
        fused = unit.fuse()
        torch.testing.assert_close(fused(x), unit(x), atol=1e-5, rtol=1e-5)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())


def test_affine_fold_refuses_padded_conv():
    with pytest.raises(ValueError, match='without padding'):
        fold_affine_into_next(torch.nn.Conv2d(4, 4, 3, padding=1), torch.ones(4), torch.zeros(4))


@pytest.mark.parametrize('act', ['none', 'gelu', 'relu'])
def test_fused_linear_matches_plain_layers(act):
    """oneDNN's fused kernel (inference on CPU) and the plain path (autograd) compute the same function."""
    torch.manual_seed(0)
    layer = FusedLinear(24, 40, act=act)
    x = torch.randn(2, 5, 3, 24)
    reference = lambda x: {'none': lambda y: y, 'gelu': F.gelu, 'relu': F.relu}[act](
        F.linear(x, layer.weight, layer.bias))
    expected = reference(x)
    with torch.no_grad():
        fast = layer(x)
        if onednn_available():  # oneDNN's path was taken, and the next call reuses its packed weight
            packed = layer._packed.last
            assert packed is not None and layer._packed_weight(x, layer.weight, layer.bias) is packed
    torch.testing.assert_close(fast, expected, atol=1e-5, rtol=1e-5)
    x.requires_grad_(True)
    slow = layer(x)
    slow.sum().backward()  # the autograd path really differentiates
    assert x.grad is not None
    torch.testing.assert_close(slow.detach(), expected.detach(), atol=1e-6, rtol=1e-6)
    with torch.no_grad():  # a weight update invalidates the packed copy
        layer.weight.mul_(2)
        torch.testing.assert_close(layer(x), reference(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match='activation'):
        FusedLinear(2, 2, act='swish')


def test_deploy_form_survives_copy_and_state_dict(tmp_path):
    model = randomize_norms(timm.create_model('zoo/convnext_atto')).eval()
    deploy = zoo.reparameterize(model)
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        expected = deploy(x)  # packs the fused weights
        copied = copy.deepcopy(deploy)
        torch.testing.assert_close(copied(x), expected)
        again = zoo.reparameterize(timm.create_model('zoo/convnext_atto'))
        again.load_state_dict(deploy.state_dict())
        torch.testing.assert_close(again(x), expected)


@pytest.mark.parametrize('name', ['convnext_atto', 'inceptionnext_atto', 'fasternet_t0'])
def test_four_stage_features_at_strides_4_to_32(name):
    model = timm.create_model('zoo/' + name, features_only=True).eval()
    assert model.feature_info.reduction() == [4, 8, 16, 32]
    with torch.no_grad():
        feats = model(torch.randn(1, 3, 128, 96))
    assert [f.shape[-2:] for f in feats] == [(32, 24), (16, 12), (8, 6), (4, 3)]
    assert [f.shape[1] for f in feats] == model.feature_info.channels()


@pytest.mark.parametrize('act', ['relu', 'gelu'])
def test_fused_linear_follows_every_weight_edit_and_keeps_nan(act):
    """The packed weight is rebuilt after any edit, through .data too (whose version counter PyTorch does not
    share with the parameter), and a NaN / inf in the input or the weights comes out as the plain ops give it
    (oneDNN's fused ReLU would turn NaN into 0)."""
    layer = FusedLinear(32, 64, act=act).eval()
    x = torch.randn(16, 32)
    fn = {'relu': torch.relu, 'gelu': F.gelu}[act]

    def plain():
        return fn(torch.nn.functional.linear(x, layer.weight, layer.bias))
    edits = [lambda: layer.weight.data.copy_(torch.randn(64, 32)),
             lambda: layer.weight.data.mul_(2.0),
             lambda: layer.bias.data.add_(1.0),
             lambda: layer.load_state_dict(FusedLinear(32, 64, act=act).state_dict()),
             lambda: setattr(layer.weight, 'data', torch.randn(64, 32))]
    with torch.no_grad():
        layer(x)
        for edit in edits:
            edit()
            torch.testing.assert_close(layer(x), plain())
        x[3, 5], x[6, 1], x[9, 0] = float('nan'), float('inf'), -float('inf')
        out = layer(x)
        torch.testing.assert_close(out, plain(), equal_nan=True)  # NaN where the plain ops give NaN
        assert out[3].isnan().all() and not torch.isfinite(out[[6, 9]]).all(dim=1).any()
        assert torch.isfinite(out[[0, 1, 2, 4]]).all()
        x[3, 5] = x[6, 1] = x[9, 0] = 0.0
        layer.weight.data[7, 0] = float('inf')
        torch.testing.assert_close(layer(x), plain(), equal_nan=True)
    assert repr(layer.weight).startswith('Parameter containing')
