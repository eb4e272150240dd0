"""Documentation generated from measurements: the models table, each family's variants table and the
speed-accuracy plot, from a benchmark CSV (``tools/benchmark.py --csv``) and the authors' reported figures
(``docs/reported.toml``)."""
import re
import tomllib
from typing import Dict, List, Optional, Sequence

from ..models import families, family_of, list_models
from .benchmark import BenchmarkRow, markdown_table

__all__ = ['load_reported', 'models_table', 'variants_table', 'update_generated', 'DEPLOY_FIELDS',
           'load_deploy_rows', 'deploy_table', 'best_int8', 'speed_accuracy_plot']

def load_reported(path: str) -> Dict[str, dict]:
    """``{'models': {...}, 'peers': {...}}`` from a reported-figures TOML; every zoo model must have a top-1."""
    with open(path, 'rb') as f:
        data = tomllib.load(f)
    models = data.get('models', {})
    unknown = sorted(set(models) - set(list_models()))
    missing = sorted(set(list_models()) - set(models))
    if unknown or missing:
        raise ValueError(f'{path}: unknown models {unknown}, models without reported figures {missing}')
    for name, fig in models.items():
        if fig.get('top1_data') not in ('in1k', 'in22k-ft-in1k') or not isinstance(fig.get('top1'), (int, float)):
            raise ValueError(f'{path}: [models.{name}] needs top1 and top1_data "in1k" or "in22k-ft-in1k"')
    return dict(models=models, peers=data.get('peers', {}))


def _index(rows: Sequence[BenchmarkRow]) -> Dict[tuple, BenchmarkRow]:
    """(model, form) -> the eager row (a row not measured has no figures to show)."""
    return {(r.model, r.form): r for r in rows if r.runtime == 'eager' and not r.error}


def _fmt(value, spec: str = '.1f') -> str:
    return '' if value is None else format(value, spec)


def _top1(fig: dict) -> str:
    text = f'{fig["top1"]:.1f}'
    if fig['top1_res'] != 224:
        text += f' @{fig["top1_res"]}'
    if fig['top1_data'] != 'in1k':
        text += ' (22k)'
    return text


_COLUMNS = ('model', 'params (M)', 'GFLOPs', 'top-1', 'COCO Mask R-CNN box / mask', 'COCO RetinaNet',
            'ADE20K UperNet', 'ADE20K Sem. FPN', 'CPU b1 (ms)', 'CPU b16 (img/s)')


def _row_cells(name: str, rows: Dict[tuple, BenchmarkRow], fig: dict) -> List[str]:
    train, deploy = rows.get((name, 'train')), rows.get((name, 'deploy'))
    if train is None or deploy is None:
        raise ValueError(f'the benchmark CSV has no eager train and deploy rows for {name}')
    mask_rcnn = fig.get('coco_mask_rcnn')
    params = f'{train.params / 1e6:.2f}'
    if deploy.params != train.params:
        params += f' / {deploy.params / 1e6:.2f}'
    return [f'`{name}`', params, f'{deploy.gflops:.2f}', _top1(fig),
            '' if not mask_rcnn else f'{mask_rcnn[0]:.1f} / {mask_rcnn[1]:.1f}', _fmt(fig.get('coco_retinanet')),
            _fmt(fig.get('ade_upernet')), _fmt(fig.get('ade_fpn')), f'{deploy.latency_ms:.1f}',
            f'{deploy.throughput:.1f}']


def _family_models(family: str, rows: Dict[tuple, BenchmarkRow]) -> List[str]:
    """A family's registered models from the smallest to the largest (deploy-form GFLOPs)."""
    names = family_of(family).models()
    return sorted(names, key=lambda n: (rows[n, 'deploy'].gflops, n) if (n, 'deploy') in rows else (0, n))


_NOTES = ('Params: train form / deploy form where folding changes the count. GFLOPs: deploy form at the '
          'benchmark size, 2 per multiply-add, counted. Top-1: ImageNet-1k as reported for the released checkpoint '
          '(at 224 px unless marked; 22k: pre-trained on ImageNet-22k). COCO / ADE20K: as the authors report, with '
          'the zoo config in `configs/coco` / `configs/ade20k`. CPU: deploy form, eager, from the benchmark CSV.')


def models_table(rows: Sequence[BenchmarkRow], reported: dict) -> str:
    """Every registered model, grouped by family, with a link to the family page."""
    index = _index(rows)
    parts = []
    for family in families():
        body = [_row_cells(n, index, reported['models'][n]) for n in _family_models(family.name, index)]
        parts.append(f'### [{family.display}]({family.docs_page})\n\n' + markdown_table(_COLUMNS, body))
    return '\n\n'.join(parts)


def variants_table(family: str, rows: Sequence[BenchmarkRow], reported: dict) -> str:
    index = _index(rows)
    names = _family_models(family, index)
    return markdown_table(_COLUMNS, [_row_cells(n, index, reported['models'][n]) for n in names]) + '\n\n' + _NOTES


def update_generated(text: str, key: str, content: str) -> str:
    """``text`` with the block between ``<!-- generated:key -->`` and ``<!-- end:key -->`` replaced."""
    pattern = re.compile(rf'(<!-- generated:{re.escape(key)} -->\n)(?:.*?\n)?(<!-- end:{re.escape(key)} -->)', re.S)
    if not pattern.search(text):
        raise ValueError(f'no <!-- generated:{key} --> ... <!-- end:{key} --> block to fill')
    return pattern.sub(lambda m: m.group(1) + content + '\n' + m.group(2), text)


# ------------------------------------------------------------------------- deploy runtimes (tools/quantize.py)

DEPLOY_FIELDS = ('model', 'runtime', 'precision', 'top1', 'max_abs_err', 'size_mb', 'latency_ms', 'throughput',
                 'speedup_b1', 'speedup_b16', 'error')
_DEPLOY_NUMBERS = DEPLOY_FIELDS[3:10]


def load_deploy_rows(path: str) -> List[dict]:
    """The rows of a ``tools/quantize.py --csv`` file, numbers as floats (None where blank); where a model and
    runtime appear more than once, the last row (the latest run) is kept, in the order of first appearance."""
    import csv
    with open(path, newline='') as f:
        rows = list(csv.DictReader(f))
    latest = {}
    for r in rows:
        missing = [k for k in DEPLOY_FIELDS if k not in r]
        if missing:
            raise ValueError(f'{path}: not a deploy CSV (no column {missing[0]!r}; it needs {", ".join(DEPLOY_FIELDS)})')
        row = {k: r[k] or None for k in DEPLOY_FIELDS}
        for k in _DEPLOY_NUMBERS:
            row[k] = None if row[k] is None else float(row[k])
        latest[row['model'], row['runtime']] = row
    order = list(dict.fromkeys((r['model'], r['runtime']) for r in rows))
    return [latest[k] for k in order]


def deploy_table(rows: Sequence[dict], top1_label: str = 'top-1', speed_size: Optional[int] = None) -> str:
    """One line per model and runtime: top-1, largest logit difference from fp32 eager, file size and, with
    ``speed_size``, latency, throughput and their ratios to fp32 eager; a runtime that failed says why."""
    header = ['model', 'runtime', 'precision', top1_label, 'max abs err vs fp32 eager', 'file (MB)']
    if speed_size:
        header += [f'latency b1 ({speed_size}px, ms)', 'throughput b16 (img/s)', 'vs eager b1', 'vs eager b16']
    ratio = lambda v: '' if v is None else f'{v:.2f}x'
    body = []
    for r in rows:
        cells = [r['model'], r['runtime'], r['precision']]
        if r.get('top1') is None:
            body.append(cells + ['fails: ' + (r.get('error') or '').replace('|', '/')] + [''] * (len(header) - 4))
            continue
        cells += [f'{r["top1"]:.2f}', f'{r["max_abs_err"]:.1e}', _fmt(r.get('size_mb'))]
        if speed_size:
            if r.get('error'):  # accurate, but could not be timed: the reason in the timing columns
                cells += ['fails: ' + r['error'].replace('|', '/'), '', '', '']
            else:
                cells += [_fmt(r.get('latency_ms')), _fmt(r.get('throughput')), ratio(r.get('speedup_b1')),
                          ratio(r.get('speedup_b16'))]
        body.append(cells)
    return markdown_table(header, body)


def best_int8(rows: Sequence[dict], max_drop: float = 1.0) -> Dict[str, dict]:
    """{model: its int8 row with the best batch-1 ratio to fp32 eager}, among the int8 rows whose top-1 is
    within ``max_drop`` points of fp32 eager's in the same file."""
    eager = {r['model']: r['top1'] for r in rows if r['runtime'] == 'eager' and r.get('top1') is not None}
    out = {}
    for r in rows:
        if (r['precision'] != 'int8' or r.get('speedup_b1') is None or r.get('top1') is None
                or r['model'] not in eager or eager[r['model']] - r['top1'] > max_drop):
            continue
        if r['model'] not in out or r['speedup_b1'] > out[r['model']]['speedup_b1']:
            out[r['model']] = r
    return out


def speed_accuracy_plot(rows: Sequence[BenchmarkRow], reported: dict, path: str, title: Optional[str] = None,
                        deploy_rows: Sequence[dict] = ()) -> dict:
    """Top-1 against batch-1 CPU latency (deploy form, eager; log scale), one line per family through its
    variants, the timm peers in the CSV as grey points; ImageNet-1k-only models. With ``deploy_rows``
    (``tools/quantize.py``'s), each measured model's best int8 runtime as a hollow point: its latency is the
    model's eager latency here divided by the int8 runtime's batch-1 ratio to fp32 eager in its own run; its
    top-1 is the fp32 figure (int8 is not evaluated on ImageNet: its drop on the digits set is within a point,
    :func:`best_int8`). Returns what was drawn."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    index = _index(rows)
    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=120)
    drawn = dict(families={}, peers=[], int8={})
    markers = 'osD^v<>p'
    for i, family in enumerate(families()):
        display = family.display
        names = [n for n in _family_models(family.name, index)
                 if (n, 'deploy') in index and reported['models'][n]['top1_data'] == 'in1k']
        if not names:
            continue
        xs = [index[n, 'deploy'].latency_ms for n in names]
        ys = [reported['models'][n]['top1'] for n in names]
        ax.plot(xs, ys, marker=markers[i % len(markers)], label=display, linewidth=1.5, markersize=6)
        for n, x, y in zip(names, xs, ys):
            ax.annotate(n.split('_', 1)[1], (x, y), textcoords='offset points', xytext=(4, -10), fontsize=7)
        drawn['families'][display] = names
        for n, r in best_int8(deploy_rows).items():
            if n in names:
                x = index[n, 'deploy'].latency_ms / r['speedup_b1']
                y = reported['models'][n]['top1']
                color = ax.get_lines()[-1].get_color()
                ax.plot([index[n, 'deploy'].latency_ms, x], [y, y], linestyle=':', color=color, linewidth=1)
                ax.scatter([x], [y], marker=markers[i % len(markers)], facecolors='none', edgecolors=color, s=45,
                           zorder=3, label='best int8 runtime (digits drop <= 1 point; fp32 top-1)'
                           if not drawn['int8'] else None)
                ax.annotate(r['runtime'], (x, y), textcoords='offset points', xytext=(-6, 5), fontsize=6,
                            color=color, ha='right')
                drawn['int8'][n] = r['runtime']
    peers = [(r, reported['peers'][r.model]) for r in rows
             if r.form == 'timm' and r.runtime == 'eager' and r.model in reported['peers']]
    for i, (r, fig_) in enumerate(peers):
        ax.scatter([r.latency_ms], [fig_['top1']], color='0.45', marker='x', s=30, zorder=3,
                   label='timm peers (timm\'s evaluation)' if i == 0 else None)
        ax.annotate(f'timm {r.model}', (r.latency_ms, fig_['top1']), textcoords='offset points', xytext=(4, 3),
                    fontsize=7, color='0.35')
        drawn['peers'].append(r.model)
    ax.set_xscale('log')
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter
    lo, hi = ax.get_xlim()
    ax.xaxis.set_major_locator(FixedLocator([t for t in (5, 10, 20, 50, 100, 200, 500, 1000, 2000) if lo <= t <= hi]))
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel('batch-1 latency on the CPU (ms, deploy form, log scale)')
    ax.set_ylabel('ImageNet-1k top-1 (%, reported)')
    ax.grid(True, which='both', alpha=0.3)
    ax.legend(loc='lower right')
    first = next(iter(rows), None)
    ax.set_title(title or (f'zoo: speed vs accuracy ({first.device.upper()}, {first.img_size} px, '
                           f'batch 1, {first.dtype})' if first else 'zoo: speed vs accuracy'))
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return drawn

