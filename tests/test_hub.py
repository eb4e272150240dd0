"""Hub checkpoints in timm's layout: the manifest, conversion, loading through timm's `hf-hub:` and
`local-dir:` paths from an offline Hugging Face cache built here, checksums, corrupt files, pickles, pushing."""
import argparse
import hashlib
import json
import os
import re
import shutil
import sys
from pathlib import Path

import huggingface_hub
import pytest
import timm
import torch

import zoo
from conftest import randomize_norms
from test_conv_families import _convnext_official_layout, _fasternet_official_layout
from test_unireplknet import official_layout as _unireplknet_official_layout
from zoo.weights import read_manifest, save_for_hub

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'tools'))
import convert_checkpoint  # noqa: E402
import push_to_hub as push_tool  # noqa: E402

ORG = 'zoo-test'

def _zoo_source(name, to_official):
    ref = randomize_norms(timm.create_model('zoo/' + name)).eval()
    return to_official(ref.state_dict()), ref


def _timm_source(name, to_official):
    """The official layout written from timm's model of the same architecture (its names are the ones the
    layout helper maps from)."""
    payload = to_official(randomize_norms(timm.create_model(name)).state_dict())
    return payload, zoo.load_checkpoint(timm.create_model('zoo/' + name), payload).eval()


# one model of every family: (official-layout payload, the zoo model holding the same weights)
ROUND_TRIP = {
    'lsnet_t': lambda: _zoo_source('lsnet_t', lambda sd: sd),  # the authors' names are the zoo's
    'convnext_atto': lambda: _zoo_source('convnext_atto', lambda sd: {'model': _convnext_official_layout(sd)}),
    'inceptionnext_atto': lambda: _zoo_source('inceptionnext_atto', lambda sd: sd),
    'fasternet_t0': lambda: _timm_source('fasternet_t0', _fasternet_official_layout),
    'unireplknet_a': lambda: _zoo_source('unireplknet_a', lambda sd: {'model': _unireplknet_official_layout(sd)}),
}


def put_in_hf_cache(cache: Path, repo_id: str, folder: Path, revision: str = 'a' * 40) -> None:
    """Lay ``folder``'s files out as huggingface_hub's cache does: blobs named by content hash, snapshot
    symlinks, refs/main naming the snapshot."""
    repo = cache / ('models--' + repo_id.replace('/', '--'))
    (repo / 'blobs').mkdir(parents=True, exist_ok=True)
    (repo / 'refs').mkdir(exist_ok=True)
    snapshot = repo / 'snapshots' / revision
    snapshot.mkdir(parents=True, exist_ok=True)
    for f in folder.iterdir():
        digest = hashlib.sha256(f.read_bytes()).hexdigest()
        shutil.copyfile(f, repo / 'blobs' / digest)
        (snapshot / f.name).symlink_to(Path('..') / '..' / 'blobs' / digest)
    (repo / 'refs' / 'main').write_text(revision)


@pytest.fixture
def offline_hub(tmp_path, monkeypatch):
    """An empty Hugging Face cache with the Hub unreachable: every file comes from the cache."""
    cache = tmp_path / 'hf-cache'
    cache.mkdir()
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_OFFLINE', True)
    monkeypatch.setattr(huggingface_hub.constants, 'HF_HUB_CACHE', str(cache))
    empty = tmp_path / 'empty-manifest.toml'  # no recorded checksums: the files are as the test writes them
    empty.write_text('')
    monkeypatch.setenv('ZOO_MANIFEST', str(empty))
    return cache


def _write_manifest(path, entries):
    lines = []
    for e in entries:
        lines.append('[[checkpoint]]')
        lines += [f'{k} = {json.dumps(v)}' for k, v in e.items()]
    path.write_text('\n'.join(lines) + '\n')


def _entry(model, tag='in1k', **kw):
    e = dict(model=model, tag=tag, dataset='imagenet-1k', resolution=224, num_classes=1000,
             source=f'https://example.org/{model}.pth', file=f'{model}.pth', sha256='',
             hub_repo=f'{ORG}/{model}.{tag}', hub_sha256='', license='mit')
    e.update(kw)
    return e


def _convert(name, tmp_path, deploy=False):
    """An official-layout file of ``name`` with random weights, converted by the tool; returns the folder, the
    train-form model it came from and the tool's digest."""
    payload, ref = ROUND_TRIP[name]()
    official = tmp_path / f'{name}_official.pth'
    torch.save(payload, official)
    out = tmp_path / (name + ('_deploy' if deploy else ''))
    args = ['--check-size', '64'] + (['--deploy'] if deploy else [])
    digest = convert_checkpoint.main([name, str(official), str(out), *args])
    return out, ref, digest


# ---------------------------------------------------------------------------------------------------------
# the manifest


def test_manifest_covers_every_released_checkpoint():
    entries = read_manifest()
    listed = {f"zoo/{e['model']}.{e['tag']}" for e in entries}
    assert listed == set(timm.list_pretrained('zoo/*'))
    families = {e['model'].split('_')[0] for e in entries}
    assert families == {'lsnet', 'convnext', 'inceptionnext', 'fasternet', 'unireplknet', 'shvit', 'litv2',
                        'biformer'}
    for e in entries:
        # a OneDrive share link serves every file as 'content'; `file` is then the name the authors save it as
        assert e['source'].startswith('https://')
        assert e['source'].endswith(e['file']) or e['source'].endswith('/root/content')
        assert e['hub_repo'] == f"zoo-models/{e['model']}.{e['tag']}"
        assert e['resolution'] in (192, 224, 256, 384) and e['num_classes'] in (1000, 21841)
    # the hash prefixes torch hub file names carry are recorded
    assert next(e for e in entries if e['model'] == 'convnext_atto')['sha256'] == '01bb0f51'


def test_manifest_errors_name_the_entry(tmp_path):
    bad = tmp_path / 'm.toml'
    _write_manifest(bad, [_entry('lsnet_t', sha256='not-hex')])
    with pytest.raises(ValueError, match=r'entry 1 \(lsnet_t.in1k\): sha256 must be lowercase hex'):
        read_manifest(bad)
    _write_manifest(bad, [_entry('lsnet_t'), _entry('lsnet_t')])
    with pytest.raises(ValueError, match='listed twice'):
        read_manifest(bad)
    e = _entry('lsnet_t')
    del e['license']
    _write_manifest(bad, [e])
    with pytest.raises(ValueError, match=r"missing fields \['license'\]"):
        read_manifest(bad)


def test_hub_ids_name_real_repos():
    """timm completes an org-only hub id with the registry name; the zoo's cfgs must not end up under
    'timm/zoo/...'."""
    for name in timm.list_pretrained('zoo/*'):
        hub_id = timm.models.get_pretrained_cfg(name).hf_hub_id
        if hub_id:
            assert re.fullmatch(r'[\w.-]+/[\w.-]+', hub_id), (name, hub_id)
    assert timm.models.get_pretrained_cfg('zoo/convnext_atto.d2_in1k').hf_hub_id == 'timm/convnext_atto.d2_in1k'


# ---------------------------------------------------------------------------------------------------------
# round trips: official file -> folder -> hf-hub: (offline cache) and local-dir: -> identical outputs


@pytest.mark.parametrize('name', list(ROUND_TRIP))
def test_round_trip_through_hub_cache_and_local_dir(name, tmp_path, offline_hub):
    folder, ref, digest = _convert(name, tmp_path)
    assert sorted(p.name for p in folder.iterdir()) == ['README.md', 'config.json', 'model.safetensors']
    config = json.loads((folder / 'config.json').read_text())
    assert config['architecture'] == 'zoo/' + name and config['num_classes'] == 1000
    assert digest == hashlib.sha256((folder / 'model.safetensors').read_bytes()).hexdigest()
    assert digest in (folder / 'README.md').read_text()
    put_in_hf_cache(offline_hub, f'{ORG}/{name}', folder)
    from_hub = timm.create_model(f'hf-hub:{ORG}/{name}', pretrained=True).eval()
    from_dir = timm.create_model(f'local-dir:{folder}', pretrained=True).eval()
    assert type(from_hub) is type(ref) and from_hub.pretrained_cfg['architecture'] == 'zoo/' + name
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = ref(x)
        assert torch.equal(from_hub(x), expected)
        assert torch.equal(from_dir(x), expected)


def test_deploy_form_round_trip(tmp_path, offline_hub):
    folder, ref, _ = _convert('unireplknet_a', tmp_path, deploy=True)
    assert json.loads((folder / 'config.json').read_text())['model_args']['deploy'] is True
    put_in_hf_cache(offline_hub, f'{ORG}/unireplknet_a-deploy', folder)
    model = timm.create_model(f'hf-hub:{ORG}/unireplknet_a-deploy', pretrained=True).eval()
    assert not zoo.deploy.foldable_modules(model)  # built in the deploy structure
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert (model(x) - ref(x)).abs().max() <= 1e-4
        torch.testing.assert_close(model(x), zoo.reparameterize(ref)(x), rtol=0, atol=1e-6)


def test_deploy_flag_needs_a_deploy_constructor(tmp_path):
    ref = timm.create_model('zoo/lsnet_t')
    torch.save(ref.state_dict(), tmp_path / 'l.pth')
    with pytest.raises(SystemExit, match='no deploy-form constructor'):
        convert_checkpoint.main(['lsnet_t', str(tmp_path / 'l.pth'), str(tmp_path / 'out'), '--deploy',
                                 '--check-size', '64'])


def test_registered_name_loads_from_hub_with_manifest_checksum(tmp_path, offline_hub, monkeypatch):
    """`timm.create_model('zoo/<name>', pretrained=True)` fetches the cfg's Hub repo through huggingface_hub and
    checks the manifest's sha256 before timm loads the file."""
    folder, ref, digest = _convert('lsnet_t', tmp_path)
    put_in_hf_cache(offline_hub, f'{ORG}/lsnet_t.in1k', folder)
    manifest = tmp_path / 'manifest.toml'
    _write_manifest(manifest, [_entry('lsnet_t', hub_sha256=digest)])
    monkeypatch.setenv('ZOO_MANIFEST', str(manifest))
    overlay = dict(hf_hub_id=f'{ORG}/lsnet_t.in1k', url=None)
    model = timm.create_model('zoo/lsnet_t', pretrained=True, pretrained_cfg_overlay=overlay).eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model(x), ref(x))
    # the recorded checksum no longer matches: refused before loading
    _write_manifest(manifest, [_entry('lsnet_t', hub_sha256='0' * 64)])
    with pytest.raises(zoo.ChecksumMismatchError, match=f'expected {"0" * 64}'):
        timm.create_model('zoo/lsnet_t', pretrained=True, pretrained_cfg_overlay=overlay)


# ---------------------------------------------------------------------------------------------------------
# integrity


def test_corrupted_hub_file_is_refused(tmp_path, offline_hub):
    folder, _, digest = _convert('lsnet_t', tmp_path)
    put_in_hf_cache(offline_hub, f'{ORG}/lsnet_t', folder)
    blob = offline_hub / f'models--{ORG}--lsnet_t' / 'blobs' / digest
    data = bytearray(blob.read_bytes())
    blob.write_bytes(bytes(data[:len(data) // 2]))  # truncated in the cache
    with pytest.raises(zoo.ChecksumMismatchError, match='nothing was loaded'):
        timm.create_model(f'hf-hub:{ORG}/lsnet_t', pretrained=True, checksum=digest)
    with pytest.raises(zoo.CheckpointError, match='model.safetensors'):  # no checksum: still a clear error
        timm.create_model(f'hf-hub:{ORG}/lsnet_t', pretrained=True)


def test_wrong_checksum_leaves_the_model_untouched(tmp_path):
    model = timm.create_model('zoo/lsnet_t')
    other = randomize_norms(timm.create_model('zoo/lsnet_t'))
    path = tmp_path / 'w.pth'
    torch.save(other.state_dict(), path)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(zoo.ChecksumMismatchError, match=str(path)):
        zoo.load_checkpoint(model, path, checksum='deadbeef')
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    zoo.load_checkpoint(model, path, checksum=digest[:8])  # a prefix, as torch hub names carry
    assert torch.equal(model.state_dict()['head.fc.weight'], other.state_dict()['head.fc.weight'])
    with pytest.raises(ValueError, match='8 to 64 hex'):
        zoo.load_checkpoint(model, path, checksum='xyz')


def test_pickles_with_objects_need_an_explicit_opt_in(tmp_path):
    model = timm.create_model('zoo/lsnet_t')
    path = tmp_path / 'train_state.pth'
    torch.save({'model': model.state_dict(), 'args': argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(zoo.CheckpointError, match='trust_pickle=True'):
        zoo.load_checkpoint(model, path)
    zoo.load_checkpoint(model, path, trust_pickle=True)


# ---------------------------------------------------------------------------------------------------------
# pushing


def test_push_uploads_the_folder(tmp_path, monkeypatch):
    calls = []

    class FakeApi:
        def __init__(self, token=None):
            calls.append(('init', token))

        def create_repo(self, repo_id, private=False, exist_ok=False):
            calls.append(('create_repo', repo_id, private, exist_ok))

        def upload_folder(self, folder_path, repo_id, commit_message, revision=None):
            calls.append(('upload_folder', sorted(os.listdir(folder_path)), repo_id, commit_message))
            return 'commit-url'

    monkeypatch.setattr(huggingface_hub, 'HfApi', FakeApi)
    folder = tmp_path / 'out'
    save_for_hub(timm.create_model('zoo/lsnet_t'), folder)
    assert push_tool.main([str(folder), 'me/lsnet_t', '--private', '--token', 'tok']) == 'commit-url'
    assert calls == [('init', 'tok'), ('create_repo', 'me/lsnet_t', True, True),
                     ('upload_folder', ['README.md', 'config.json', 'model.safetensors'], 'me/lsnet_t',
                      'Add zoo checkpoint')]
    (folder / 'model.safetensors').unlink()
    with pytest.raises(FileNotFoundError, match='model.safetensors is missing'):
        push_tool.main([str(folder), 'me/lsnet_t'])


def test_model_card_states_the_flops_it_is_given():
    """The card counts nothing itself (the weights layer sits below measuring): the converter passes the FLOPs."""
    from zoo.measure import count_flops
    model = timm.create_model('zoo/lsnet_t').eval()
    gflops = count_flops(model, torch.zeros(1, 3, 224, 224)) / 1e9
    card = zoo.weights.model_card(model, 'zoo/lsnet_t', 'ab' * 32, gflops=gflops)
    assert 'library_name: timm' in card and 'license: mit' in card and 'FLOPs: 0.63G at 224 px' in card
    assert 'https://arxiv.org/abs/2503.23135' in card
    assert 'FLOPs' not in zoo.weights.model_card(model, 'zoo/lsnet_t', 'ab' * 32)


def test_push_refuses_a_truncated_or_replaced_weights_file(tmp_path, monkeypatch):
    uploads = []
    monkeypatch.setattr(huggingface_hub, 'HfApi', lambda token=None: uploads.append(token))
    folder = tmp_path / 'out'
    save_for_hub(timm.create_model('zoo/lsnet_t'), folder)
    weights = folder / 'model.safetensors'
    whole = weights.read_bytes()
    weights.write_bytes(whole[:len(whole) // 2])
    with pytest.raises(zoo.CheckpointError, match='model.safetensors'):
        push_tool.main([str(folder), 'me/lsnet_t'])
    # a whole file, but not the one the card describes
    save_for_hub(timm.create_model('zoo/lsnet_t', num_classes=10), tmp_path / 'other')
    weights.write_bytes((tmp_path / 'other' / 'model.safetensors').read_bytes())
    with pytest.raises(zoo.ChecksumMismatchError, match='model card states'):
        push_tool.main([str(folder), 'me/lsnet_t'])
    assert uploads == []  # nothing reached the Hub


def test_converter_removes_only_what_it_wrote(tmp_path, monkeypatch):
    ref = timm.create_model('zoo/lsnet_t')
    torch.save(ref.state_dict(), tmp_path / 'l.pth')
    out = tmp_path / 'out'
    out.mkdir()
    (out / 'notes.txt').write_text('mine')
    # a reload that differs: the tool fails, and the folder keeps what it held, with nothing added
    real_create = timm.create_model

    def create(name, *args, **kwargs):
        model = real_create(name, *args, **kwargs)
        if name.startswith('local-dir:'):
            with torch.no_grad():
                next(iter(model.parameters())).add_(1.0)
        return model
    monkeypatch.setattr(timm, 'create_model', create)
    with pytest.raises(SystemExit, match='different logits'):
        convert_checkpoint.main(['lsnet_t', str(tmp_path / 'l.pth'), str(out), '--check-size', '64'])
    assert sorted(os.listdir(out)) == ['notes.txt'] and sorted(os.listdir(tmp_path)) == ['l.pth', 'out']
    monkeypatch.setattr(timm, 'create_model', real_create)
    convert_checkpoint.main(['lsnet_t', str(tmp_path / 'l.pth'), str(out), '--check-size', '64'])
    assert sorted(os.listdir(out)) == ['README.md', 'config.json', 'model.safetensors', 'notes.txt']
    # files of an earlier conversion are replaced only when asked
    with pytest.raises(SystemExit):
        convert_checkpoint.main(['lsnet_t', str(tmp_path / 'l.pth'), str(out), '--check-size', '64'])
    convert_checkpoint.main(['lsnet_t', str(tmp_path / 'l.pth'), str(out), '--check-size', '64', '--overwrite'])


def test_checksums_cannot_be_turned_off_by_accident(tmp_path, monkeypatch):
    path = tmp_path / 'l.pth'
    torch.save(timm.create_model('zoo/lsnet_t').state_dict(), path)
    # an empty or malformed checksum is refused, on both load paths, before anything is read
    for bad in ('', 'xyz', 42):
        with pytest.raises(ValueError, match='checksum=.* is not allowed'):
            timm.create_model('zoo/lsnet_t', pretrained=True, pretrained_cfg_overlay=dict(file=str(path)),
                              checksum=bad)
        with pytest.raises(ValueError, match='checksum=.* is not allowed'):
            zoo.load_checkpoint(timm.create_model('zoo/lsnet_t'), path, checksum=bad)
    # a missing manifest is an error, not an empty one
    monkeypatch.setenv('ZOO_MANIFEST', str(tmp_path / 'missing.toml'))
    with pytest.raises(FileNotFoundError, match='missing.toml does not exist'):
        read_manifest()
    monkeypatch.delenv('ZOO_MANIFEST')
    assert len(read_manifest()) == len(zoo.weights.checksum.read_manifest(zoo.weights.MANIFEST_PATH))
