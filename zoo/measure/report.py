"""Documentation generated from measurements: the models table, each family's variants table and the
speed-accuracy plot, from a benchmark CSV (``tools/benchmark.py --csv``) and the authors' reported figures
(``docs/reported.toml``)."""
import re
import tomllib
from typing import Dict, List, Optional, Sequence

from ..models import families, family_of, list_models
from .benchmark import BenchmarkRow, markdown_table

__all__ = ['load_reported', 'models_table', 'variants_table', 'update_generated',
           'speed_accuracy_plot']

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
    """(model, form) -> the eager row."""
    return {(r.model, r.form): r for r in rows if r.runtime == 'eager'}


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


def speed_accuracy_plot(rows: Sequence[BenchmarkRow], reported: dict, path: str, title: Optional[str] = None) -> dict:
    """Top-1 against batch-1 CPU latency (deploy form, eager; log scale), one line per family through its
    variants, the timm peers in the CSV as grey points; ImageNet-1k-only models. Returns what was drawn."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    index = _index(rows)
    fig, ax = plt.subplots(figsize=(10, 6.5), dpi=120)
    drawn = dict(families={}, peers=[])
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

