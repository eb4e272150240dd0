"""Official LSNet checkpoints load unchanged; checkpoints that do not fit are refused before any copy."""
import argparse

import pytest
import timm
import torch
import torch.nn.functional as F

import zoo
from conftest import count_params
from zoo.weights import CheckpointError, CheckpointMismatchError

# The official implementation's parameter counts (jameslahm/lsnet, model/lsnet.py, distillation=False).
OFFICIAL_PARAMS = {'lsnet_t': 11_409_832, 'lsnet_s': 16_146_304, 'lsnet_b': 23_313_608}
OFFICIAL_ARCH = {  # embed_dim, depth, num_heads from the official variant functions
    'lsnet_t': ((64, 128, 256, 384), (0, 2, 8, 10), (3, 3, 3, 4)),
    'lsnet_s': ((96, 192, 320, 448), (1, 2, 8, 10), (3, 3, 3, 4)),
    'lsnet_b': ((128, 256, 384, 512), (4, 6, 8, 10), (3, 3, 3, 4)),
}


def _conv_bn(sd, prefix, cin, cout, k=1, groups=1):
    sd[f'{prefix}.c.weight'] = torch.randn(cout, cin // groups, k, k) / (cin // groups * k * k) ** 0.5
    _bn(sd, f'{prefix}.bn', cout)


def _bn(sd, prefix, n):
    sd[f'{prefix}.weight'] = torch.rand(n) + 0.5
    sd[f'{prefix}.bias'] = torch.randn(n) * 0.1
    sd[f'{prefix}.running_mean'] = torch.randn(n) * 0.1
    sd[f'{prefix}.running_var'] = torch.rand(n) + 0.5
    sd[f'{prefix}.num_batches_tracked'] = torch.tensor(100)


def official_state_dict(name, distillation=False, num_classes=1000):
    """A state dict with the key names and shapes of the official LSNet (model/lsnet.py): patch_embed,
    blocks1..4 (blocks{i+1} opening with the two downsampling Conv2d_BN), Residual wrappers `.m`,
    Conv2d_BN children `c`/`bn`, the LeViT bias index buffer, head `bn`/`l`."""
    dims, depths, heads = OFFICIAL_ARCH[name]
    sd = {}
    _conv_bn(sd, 'patch_embed.0', 3, dims[0] // 4, 3)
    _conv_bn(sd, 'patch_embed.2', dims[0] // 4, dims[0] // 2, 3)
    _conv_bn(sd, 'patch_embed.4', dims[0] // 2, dims[0], 3)
    res = 28
    for i, (d, depth, nh) in enumerate(zip(dims, depths, heads)):
        pre = f'blocks{i + 1}'
        offset = 0
        if i > 0:
            _conv_bn(sd, f'{pre}.0', dims[i - 1], dims[i - 1], 3, groups=dims[i - 1])
            _conv_bn(sd, f'{pre}.1', dims[i - 1], d)
            offset = 2
            res = (res - 1) // 2 + 1
        for j in range(depth):
            b = f'{pre}.{j + offset}'
            if j % 2 == 0:
                _conv_bn(sd, f'{b}.mixer.conv', d, d, 3, groups=d)
                _conv_bn(sd, f'{b}.mixer.conv1', d, d, 1, groups=d)
                sd[f'{b}.se.fc1.weight'] = torch.randn(d // 4, d, 1, 1) * 0.1
                sd[f'{b}.se.fc1.bias'] = torch.randn(d // 4)
                sd[f'{b}.se.fc2.weight'] = torch.randn(d, d // 4, 1, 1) * 0.1
                sd[f'{b}.se.fc2.bias'] = torch.randn(d)
            elif i == 3:
                kd, vd = 16, d // nh
                _conv_bn(sd, f'{b}.mixer.m.qkv', d, 2 * kd * nh + vd * nh)
                _conv_bn(sd, f'{b}.mixer.m.proj.1', vd * nh, d)
                _conv_bn(sd, f'{b}.mixer.m.dw', kd * nh, kd * nh, 3, groups=kd * nh)
                sd[f'{b}.mixer.m.attention_biases'] = torch.randn(nh, res * res)
                sd[f'{b}.mixer.m.attention_bias_idxs'] = torch.zeros(res * res, res * res, dtype=torch.long)
            else:
                h = d // 2
                _conv_bn(sd, f'{b}.mixer.lkp.cv1', d, h)
                _conv_bn(sd, f'{b}.mixer.lkp.cv2', h, h, 7, groups=h)
                _conv_bn(sd, f'{b}.mixer.lkp.cv3', h, h)
                sd[f'{b}.mixer.lkp.cv4.weight'] = torch.randn(9 * d // 8, h, 1, 1) * 0.1
                sd[f'{b}.mixer.lkp.cv4.bias'] = torch.randn(9 * d // 8)
                sd[f'{b}.mixer.lkp.norm.weight'] = torch.rand(9 * d // 8) + 0.5
                sd[f'{b}.mixer.lkp.norm.bias'] = torch.randn(9 * d // 8)
                _bn(sd, f'{b}.mixer.bn', d)
            _conv_bn(sd, f'{b}.ffn.m.pw1', d, 2 * d)
            _conv_bn(sd, f'{b}.ffn.m.pw2', 2 * d, d)
    for head in ('head', 'head_dist') if distillation else ('head',):
        _bn(sd, f'{head}.bn', dims[-1])
        sd[f'{head}.l.weight'] = torch.randn(num_classes, dims[-1]) * 0.02
        sd[f'{head}.l.bias'] = torch.randn(num_classes)
    return sd


@pytest.mark.parametrize('name', list(OFFICIAL_PARAMS))
def test_param_count_equals_official(name):
    assert count_params(name) == OFFICIAL_PARAMS[name]


@pytest.mark.parametrize('name', list(OFFICIAL_PARAMS))
def test_official_checkpoint_loads_through_timm(name, tmp_path):
    sd = official_state_dict(name)
    path = tmp_path / f'{name}.pth'
    torch.save({'model': sd}, path)  # the official training script's wrapping
    model = timm.create_model(f'zoo/{name}', pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    loaded = model.state_dict()
    last = len(OFFICIAL_ARCH[name][1]) + 1
    expect = {  # official key -> zoo key, spelled out
        'patch_embed.4.c.weight': 'stem.4.conv.weight',
        'blocks2.0.c.weight': 'stages.1.downsample.0.conv.weight',
        'blocks2.1.bn.running_var': 'stages.1.downsample.1.bn.running_var',
        'blocks2.2.mixer.conv1.c.weight': 'stages.1.blocks.0.mixer.conv1.conv.weight',
        'blocks3.3.mixer.lkp.cv4.weight': 'stages.2.blocks.1.mixer.lkp.cv4.weight',
        'blocks3.3.mixer.bn.bias': 'stages.2.blocks.1.mixer.bn.bias',
        f'blocks{last - 1}.3.mixer.m.attention_biases': 'stages.3.blocks.1.mixer.attention_biases',
        f'blocks{last - 1}.3.mixer.m.proj.1.c.weight': 'stages.3.blocks.1.mixer.proj.1.conv.weight',
        f'blocks{last - 1}.3.ffn.m.pw2.bn.weight': 'stages.3.blocks.1.ffn.pw2.bn.weight',
        'head.bn.running_mean': 'head.bn.running_mean',
        'head.l.weight': 'head.fc.weight',
    }
    for official, ours in expect.items():
        torch.testing.assert_close(loaded[ours], sd[official], msg=f'{official} -> {ours}')
    # every official tensor but the index buffers landed somewhere, none twice
    values = sorted(float(v.double().sum()) for k, v in sd.items() if 'attention_bias_idxs' not in k)
    assert sorted(float(v.double().sum()) for v in loaded.values()) == pytest.approx(values)


def test_bare_safetensors_and_zoo_layout_load_too(tmp_path):
    import safetensors.torch
    sd = official_state_dict('lsnet_t')
    bare = tmp_path / 'bare.pth'
    torch.save(sd, bare)
    a = zoo.load_checkpoint(zoo.create_model('lsnet_t'), bare)
    st = tmp_path / 'zoo.safetensors'
    safetensors.torch.save_file(a.state_dict(), str(st))
    b = zoo.create_model('lsnet_t', pretrained=True, pretrained_cfg_overlay=dict(file=str(st)))
    for k, v in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v)


def test_distilled_checkpoint_predicts_the_mean_of_both_heads(tmp_path):
    sd = official_state_dict('lsnet_t', distillation=True)
    path = tmp_path / 'dist.pth'
    torch.save({'model': sd}, path)
    model = zoo.create_model('lsnet_t', pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        out = model(x)

    def official_head(prefix):
        y = F.batch_norm(pooled, sd[f'{prefix}.bn.running_mean'], sd[f'{prefix}.bn.running_var'],
                         sd[f'{prefix}.bn.weight'], sd[f'{prefix}.bn.bias'], eps=1e-5)
        return F.linear(y, sd[f'{prefix}.l.weight'], sd[f'{prefix}.l.bias'])
    ref = (official_head('head') + official_head('head_dist')) / 2
    assert (out - ref).abs().max() <= 1e-5 * ref.abs().max()
    # built with its distillation head (to continue distilling), the model keeps the two heads apart
    two = zoo.create_model('lsnet_t', distillation=True, pretrained=True,
                           pretrained_cfg_overlay=dict(file=str(path))).eval()
    with torch.no_grad():
        for prefix in ('head', 'head_dist'):
            torch.testing.assert_close(getattr(two, prefix)(pooled), official_head(prefix))


def test_other_num_classes_and_in_chans_adapt_from_checkpoint(tmp_path):
    sd = official_state_dict('lsnet_t')
    path = tmp_path / 'ck.pth'
    torch.save({'model': sd}, path)
    m = zoo.create_model('lsnet_t', pretrained=True, num_classes=7, in_chans=1,
                         pretrained_cfg_overlay=dict(file=str(path)))
    assert m.head.fc.out_features == 7
    torch.testing.assert_close(m.stem[0].conv.weight, sd['patch_embed.0.c.weight'].sum(1, keepdim=True))
    torch.testing.assert_close(m.stages[1].downsample[0].conv.weight, sd['blocks2.0.c.weight'])


@pytest.mark.parametrize('name', ['lsnet_t', 'convnext_atto'])
def test_headless_model_loads_a_checkpoint_with_a_classifier(name, tmp_path):
    # num_classes=0 (a feature extractor) drops the classifier: its keys are neither missing nor unexpected
    full = zoo.create_model(name)
    path = tmp_path / 'ck.pth'
    torch.save(full.state_dict(), path)
    m = timm.create_model(f'zoo/{name}', pretrained=True, num_classes=0, pretrained_cfg_overlay=dict(file=str(path)))
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(m.eval()(x), full.eval().forward_head(full.forward_features(x), pre_logits=True))


def _snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def _assert_untouched(model, before):
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), f'{k} changed'


def test_checkpoint_of_another_variant_is_refused_and_model_untouched(tmp_path):
    path = tmp_path / 'lsnet_s.pth'
    torch.save({'model': official_state_dict('lsnet_s')}, path)
    model = zoo.create_model('lsnet_t')
    before = _snapshot(model)
    with pytest.raises(CheckpointMismatchError, match=r'(?s)does not fit zoo/lsnet_t.*shape mismatch'):
        zoo.load_checkpoint(model, path)
    _assert_untouched(model, before)
    with pytest.raises(CheckpointMismatchError, match='unexpected keys'):
        timm.create_model('zoo/lsnet_t', pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))


def test_missing_and_unexpected_keys_are_named(tmp_path):
    sd = official_state_dict('lsnet_t')
    del sd['blocks3.3.mixer.lkp.cv4.bias']
    sd['blocks3.3.mixer.extra.weight'] = torch.zeros(1)
    model = zoo.create_model('lsnet_t')
    before = _snapshot(model)
    with pytest.raises(CheckpointMismatchError) as e:
        zoo.load_checkpoint(model, {'model': sd})
    msg = str(e.value)
    assert 'missing keys (1): stages.2.blocks.1.mixer.lkp.cv4.bias' in msg
    assert 'unexpected keys (1): stages.2.blocks.1.mixer.extra.weight' in msg
    _assert_untouched(model, before)


@pytest.mark.parametrize('content', [b'', b'not a checkpoint at all' * 10, 'truncated'])
def test_corrupt_file_is_a_clear_error(tmp_path, content):
    path = tmp_path / 'bad.pth'
    if content == 'truncated':
        torch.save({'model': official_state_dict('lsnet_t')}, path)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    model = zoo.create_model('lsnet_t')
    before = _snapshot(model)
    with pytest.raises(CheckpointError, match=f'checkpoint {path} is corrupt'):
        zoo.load_checkpoint(model, path)
    _assert_untouched(model, before)
    with pytest.raises(CheckpointError, match=str(path)):
        timm.create_model('zoo/lsnet_t', pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))


def test_missing_file_and_pickled_objects_are_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.pth'):
        zoo.create_model('lsnet_t', pretrained=True, pretrained_cfg_overlay=dict(file=str(tmp_path / 'nope.pth')))
    path = tmp_path / 'with_args.pth'
    torch.save({'model': official_state_dict('lsnet_t'), 'args': argparse.Namespace(lr=1)}, path)
    with pytest.raises(CheckpointError, match='Python objects other than tensors'):
        zoo.load_checkpoint(zoo.create_model('lsnet_t'), path)


def test_a_file_with_model_and_model_ema_loads_model_on_both_paths(tmp_path):
    """One rule for what a training checkpoint holds: timm.create_model(pretrained=True, file=...) and
    zoo.load_checkpoint both load ``model``, not ``model_ema`` (timm's own file reader would take the EMA)."""
    weights = zoo.create_model('fasternet_t0').state_dict()
    ema = {k: v + 1 if v.is_floating_point() else v for k, v in weights.items()}
    path = tmp_path / 'training.pth'
    torch.save({'model': weights, 'model_ema': ema, 'epoch': 299}, path)
    through_timm = timm.create_model('zoo/fasternet_t0', pretrained=True,
                                     pretrained_cfg_overlay=dict(file=str(path)))
    through_zoo = zoo.load_checkpoint(zoo.create_model('fasternet_t0'), str(path))
    for model in (through_timm, through_zoo):
        for k, v in weights.items():
            assert torch.equal(model.state_dict()[k], v), k
    # the weights the zoo read are not kept a second time in the model's cfg
    assert through_timm.pretrained_cfg.get('state_dict') is None
    assert through_timm.pretrained_cfg['file'] == str(path)
    # the file does tell the two apart: timm's own reader takes the EMA weights
    from timm.models import load_state_dict
    assert torch.equal(load_state_dict(str(path))['stem.conv.weight'], ema['stem.conv.weight'])


def test_legacy_pth_loads_on_every_path(tmp_path):
    """Files saved before PyTorch's zip format (many authors' releases) load on the pretrained path and through
    zoo.load_checkpoint, still with weights_only=True."""
    ref = zoo.create_model('lsnet_t')
    path = tmp_path / 'legacy.pth'
    torch.save({'model': ref.state_dict()}, path, _use_new_zipfile_serialization=False)
    via_timm = timm.create_model('zoo/lsnet_t', pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    via_zoo = zoo.load_checkpoint(zoo.create_model('lsnet_t'), path)
    from zoo.weights import read_checkpoint
    mapped = read_checkpoint(path, mmap=True)
    for k, v in ref.state_dict().items():
        assert torch.equal(via_timm.state_dict()[k], v) and torch.equal(via_zoo.state_dict()[k], v)
        assert torch.equal(mapped[k], v)


def test_partial_load_loads_what_fits_and_says_what_did_not(tmp_path):
    model = zoo.create_model('lsnet_t')
    before = {k: v.clone() for k, v in model.state_dict().items()}
    donor = zoo.create_model('lsnet_t')
    sd = donor.state_dict()
    del sd['head.fc.weight']
    sd['extra.weight'] = torch.zeros(1)
    with pytest.warns(UserWarning, match=r"690 of 691 keys loaded; missing .*head.fc.weight.*unexpected .*extra"):
        zoo.load_checkpoint(model, sd, strict=False)
    assert torch.equal(model.state_dict()['head.fc.weight'], before['head.fc.weight'])
    assert torch.equal(model.state_dict()['stem.0.conv.weight'], donor.state_dict()['stem.0.conv.weight'])
    # a mis-shaped key, or nothing that fits, still refuses before anything is copied
    fresh = zoo.create_model('lsnet_t')
    kept = {k: v.clone() for k, v in fresh.state_dict().items()}
    for bad in (zoo.create_model('lsnet_t', num_classes=10).state_dict(), {'foo': torch.zeros(3)}):
        with pytest.raises(zoo.CheckpointMismatchError, match='nothing was loaded'):
            zoo.load_checkpoint(fresh, bad, strict=False)
        assert all(torch.equal(v, kept[k]) for k, v in fresh.state_dict().items())
    # timm's pretrained_strict=False takes the same rule
    torch.save(sd, tmp_path / 'part.pth')
    timm.create_model('zoo/lsnet_t', pretrained=True, pretrained_cfg_overlay=dict(file=str(tmp_path / 'part.pth')),
                      pretrained_strict=False)
    with pytest.raises(zoo.CheckpointMismatchError, match='missing keys'):
        timm.create_model('zoo/lsnet_t', pretrained=True, pretrained_cfg_overlay=dict(file=str(tmp_path / 'part.pth')))
