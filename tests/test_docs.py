"""The generated documentation: reported figures agree with the configs, the generated pages are what the
committed benchmark CSV gives, and the plot draws what it should."""
import glob
import os
import re
import sys

import pytest

import zoo
from zoo.measure import BenchmarkRow, from_csv
from zoo.measure.report import load_reported, models_table, speed_accuracy_plot, update_generated, variants_table

ROOT = os.path.join(os.path.dirname(__file__), '..')
DOCS = os.path.join(ROOT, 'docs')
REPORTED = os.path.join(DOCS, 'reported.toml')
sys.path.insert(0, os.path.join(ROOT, 'tools'))


def _header(path):
    with open(path) as f:
        return ' '.join(line.lstrip('# ').strip() for line in f.read().split('\n\n')[0].splitlines())


def _config_model(path):
    arch = re.search(r"arch='([a-z0-9_]+)'", open(path).read())
    if arch:
        return arch.group(1)
    # a larger variant inheriting its first variant's file names its arch in the file name
    stem = os.path.basename(path)
    return next(m for m in sorted(zoo.list_models(), key=len, reverse=True) if re.search(f'_{m}[_-]', stem))


def _figure_key(stem):
    """The reported.toml key of a config's setting, from its file name: the detector or head, then the
    pre-training (``-in22k``), the crop (``_640_``) and LITv2's window (``-ws4``) where they are not the default."""
    if stem.startswith('upernet'):
        key = 'ade_upernet'
    elif stem.startswith('fpn'):
        key = 'ade_fpn'
    else:
        key = {'mask-rcnn': 'coco_mask_rcnn', 'cascade-mask-rcnn': 'coco_cascade_mask_rcnn',
               'retinanet': 'coco_retinanet'}[stem.split('_')[0]]
    if '-in22k' in stem:
        key += '_in22k'
    if '_640_' in stem:
        key += '_640'
    if '-ws4' in stem:  # LITv2's HiLo window 4
        key += '_ws4'
    return key


def test_reported_figures_equal_the_config_headers():
    """Each config's header states the figure reported for its setting, which is the one in reported.toml; and
    every downstream figure there has its config."""
    reported = load_reported(REPORTED)['models']
    covered = set()
    for path in sorted(glob.glob(os.path.join(ROOT, 'configs', 'coco', '*.py')) +
                       glob.glob(os.path.join(ROOT, 'configs', 'ade20k', '*.py'))):
        header = _header(path)
        name = _config_model(path)
        fig = reported[name]
        key = _figure_key(os.path.basename(path))
        if m := re.search(r'reported box / mask AP ([\d.]+) / ([\d.]+)', header):
            assert fig[key] == [float(m[1]), float(m[2])], path
        elif m := re.search(r'reported box AP ([\d.]+)', header):
            assert fig[key] == float(m[1]), path
        elif m := re.search(r'reported [\w\s-]*mIoU ([\d.]+)', header):
            assert fig[key] == float(m[1]), path
        else:
            assert 'Not reported' in header, f'{path}: no reported figure and no "Not reported"'
            continue
        covered.add((name, key))
    dense = {(name, key) for name, fig in reported.items() for key in fig if key.startswith(('coco_', 'ade_'))}
    assert dense - covered == set(), f'reported figures without a config: {sorted(dense - covered)}'
    assert len(covered) >= 60


def test_reported_file_must_cover_every_model(tmp_path):
    bad = tmp_path / 'reported.toml'
    bad.write_text('[models.lsnet_t]\ntop1 = 74.9\ntop1_res = 224\ntop1_data = "in1k"\n')
    with pytest.raises(ValueError, match='models without reported figures'):
        load_reported(str(bad))
    bad.write_text(open(REPORTED).read().replace('[models.lsnet_t]\ntop1 = 74.9', '[models.lsnet_t]\ntop1 = "x"'))
    with pytest.raises(ValueError, match=r'\[models.lsnet_t\] needs top1'):
        load_reported(str(bad))


def _rows(names, peers=()):
    rows = []
    for i, name in enumerate(names):
        rows.append(BenchmarkRow(name, 'train', 1_000_000 + i, 1.0 + i, 224, 10.0 + i, 100.0, 16))
        rows.append(BenchmarkRow(name, 'deploy', 900_000 + i, 0.5 + i, 224, 5.0 + i, 200.0, 16))
    rows += [BenchmarkRow(p, 'timm', 5_000_000, 0.3, 224, 7.0, 150.0, 16) for p in peers]
    return rows


def test_tables_have_every_model_of_a_family_smallest_first():
    reported = load_reported(REPORTED)
    rows = _rows(zoo.list_models())
    table = variants_table('lsnet', rows, reported)
    lines = [line for line in table.splitlines() if line.startswith('| `')]
    assert [line.split('|')[1].strip() for line in lines] == ['`lsnet_b`', '`lsnet_s`', '`lsnet_t`']  # by GFLOPs
    t = next(line for line in lines if '`lsnet_t`' in line)
    assert '74.9' in t and '35.0 / 32.7' in t and '34.2' in t and '40.1' in t
    everything = models_table(rows, reported)
    assert everything.count('| `') == len(zoo.list_models())
    assert all(f'[{f.display}]({f.docs_page})' in everything for f in zoo.families())
    with pytest.raises(ValueError, match='no eager train and deploy rows for lsnet_t'):
        variants_table('lsnet', [r for r in rows if r.model != 'lsnet_t'], reported)


def test_update_generated_replaces_only_its_block():
    text = 'intro\n<!-- generated:variants -->\nold\n<!-- end:variants -->\noutro\n'
    assert update_generated(text, 'variants', 'new\ntable') == \
        'intro\n<!-- generated:variants -->\nnew\ntable\n<!-- end:variants -->\noutro\n'
    with pytest.raises(ValueError, match='no <!-- generated:other -->'):
        update_generated(text, 'other', 'x')


def test_committed_docs_are_what_the_committed_benchmark_gives():
    import make_docs
    assert make_docs.main(['--check']) == 0


def test_committed_benchmark_covers_every_model_and_the_peers():
    rows = from_csv(open(os.path.join(DOCS, 'benchmark-cpu.csv')).read())
    measured = {(r.model, r.form) for r in rows}
    for name in zoo.list_models():
        assert (name, 'train') in measured and (name, 'deploy') in measured, name
    from zoo.measure import PEERS
    assert {(p, 'timm') for p in PEERS} <= measured
    assert all(r.device == 'cpu' and r.latency_ms > 0 and r.params > 0 for r in rows)


def test_plot_draws_in1k_models_per_family_and_the_peers(tmp_path):
    reported = load_reported(REPORTED)
    rows = _rows(zoo.list_models(), peers=['repvit_m1_0', 'mobilenetv3_large_100'])
    out = tmp_path / 'plot.png'
    drawn = speed_accuracy_plot(rows, reported, str(out))
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and out.stat().st_size > 20_000
    assert set(drawn['families']) == {f.display for f in zoo.families()}
    # 22k-pre-trained checkpoints are not put on the ImageNet-1k axis
    assert 'convnext_xlarge' not in drawn['families']['ConvNeXt']
    assert sorted(drawn['families']['UniRepLKNet']) == ['unireplknet_a', 'unireplknet_f', 'unireplknet_n',
                                                         'unireplknet_p', 'unireplknet_s', 'unireplknet_t']
    assert drawn['peers'] == ['repvit_m1_0', 'mobilenetv3_large_100']
    assert all(zoo.family_of(n).name == 'lsnet' for n in drawn['families']['LSNet'])
