"""The generated documentation: reported figures agree with the configs, the generated pages are what the
committed benchmark CSV gives, and the plot draws what it should."""
import glob
import os
import re
import sys

import pytest

import zoo
from zoo.measure import BenchmarkRow, from_csv
from zoo.measure.report import (DEPLOY_FIELDS, best_int8, deploy_table, load_deploy_rows, load_reported, models_table,
                                speed_accuracy_plot, update_generated, variants_table)

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
    deploy = [dict(model='lsnet_t', runtime='eager', precision='fp32', top1=95.0, speedup_b1=1.0),
              dict(model='lsnet_t', runtime='int8-ort', precision='int8', top1=94.5, speedup_b1=2.0),
              dict(model='convnext_atto', runtime='eager', precision='fp32', top1=97.0, speedup_b1=1.0),
              dict(model='convnext_atto', runtime='int8-ort', precision='int8', top1=95.0, speedup_b1=3.0)]
    drawn = speed_accuracy_plot(rows, reported, str(out), deploy_rows=deploy)
    assert drawn['int8'] == {'lsnet_t': 'int8-ort'}  # ConvNeXt's int8 lost 2 points: not drawn
    assert out.read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' and out.stat().st_size > 20_000
    assert set(drawn['families']) == {f.display for f in zoo.families()}
    # 22k-pre-trained checkpoints are not put on the ImageNet-1k axis
    assert 'convnext_xlarge' not in drawn['families']['ConvNeXt']
    assert sorted(drawn['families']['UniRepLKNet']) == ['unireplknet_a', 'unireplknet_f', 'unireplknet_n',
                                                         'unireplknet_p', 'unireplknet_s', 'unireplknet_t']
    assert drawn['peers'] == ['repvit_m1_0', 'mobilenetv3_large_100']
    assert all(zoo.family_of(n).name == 'lsnet' for n in drawn['families']['LSNet'])


def _deploy_csv(path, rows):
    import csv
    with open(path, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=DEPLOY_FIELDS)
        w.writeheader()
        w.writerows(rows)


def test_deploy_rows_table_and_best_int8(tmp_path):
    row = lambda rt, prec, top1, b1, **kw: dict(model='fasternet_t0', runtime=rt, precision=prec, top1=top1,
                                                max_abs_err=0.1, speedup_b1=b1, latency_ms=10.0 / b1,
                                                throughput=100.0 * b1, speedup_b16=b1, **kw)
    rows = [row('eager', 'fp32', 99.0, 1.0), row('int8-ort', 'int8', 98.5, 2.0, size_mb=2.5),
            row('openvino-int8', 'int8', 97.5, 3.0),  # faster, but 1.5 points down: not the best
            dict(model='fasternet_t0', runtime='executorch', precision='fp32', error='UnsupportedByRuntime: a | b'),
            row('int8-ort', 'int8', 98.8, 2.5)]  # the same runtime measured again: the later row counts
    path = tmp_path / 'deploy.csv'
    _deploy_csv(path, rows)
    loaded = load_deploy_rows(str(path))
    assert [r['runtime'] for r in loaded] == ['eager', 'int8-ort', 'openvino-int8', 'executorch']
    assert loaded[1]['top1'] == 98.8 and loaded[1]['size_mb'] is None and loaded[3]['top1'] is None
    best = best_int8(loaded)
    assert list(best) == ['fasternet_t0'] and best['fasternet_t0']['runtime'] == 'int8-ort'
    table = deploy_table(loaded, 'digits top-1', 224)
    lines = table.splitlines()
    assert len(lines) == 2 + 4 and 'latency b1 (224px, ms)' in lines[0]
    assert '| fasternet_t0 | int8-ort | int8 | 98.80 | 1.0e-01 |  | 4.0 | 250.0 | 2.50x | 2.50x |' in lines
    # a failure names itself in the row, a '|' in it does not break the table
    assert 'fails: UnsupportedByRuntime: a / b' in lines[-1] and lines[-1].count('|') == lines[0].count('|')
    assert 'latency' not in deploy_table(loaded)
    path.write_text('model,runtime\nx,eager\n')
    with pytest.raises(ValueError, match="not a deploy CSV.*'precision'"):
        load_deploy_rows(str(path))


def test_committed_deploy_table_covers_every_family_and_runtime():
    from zoo.deploy.runtimes import RUNTIMES
    rows = load_deploy_rows(os.path.join(DOCS, 'deploy-cpu.csv'))
    measured = {(r['model'], r['runtime']) for r in rows}
    wanted = {r for r in RUNTIMES if r != 'compiled'}  # fp32 torch.compile: docs/benchmarks.md measures it
    for family in zoo.families():
        smallest = [r['model'] for r in rows if zoo.family_of(r['model']).name == family.name]
        assert smallest, f'no deploy rows for {family.display}'
        assert {(smallest[0], rt) for rt in wanted} <= measured, family.display
    # every cell is measured or says why not
    assert all(r['top1'] is not None or r['error'] for r in rows)
    assert all(r['error'] or r['speedup_b1'] for r in rows)
