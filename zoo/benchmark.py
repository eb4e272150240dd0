"""Measuring models: parameters, FLOPs, latency and throughput, train form against deploy form and against
timm peers, in one run so that ratios are fair.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, matrix products and
scaled-dot-product attention, 1 multiply-add = 2 FLOPs) plus the ``flops(inputs, output)`` of modules that
compute a product outside those ops (LSNet's small-kernel aggregation). Element-wise ops, norms and
activations are not counted, as in fvcore and the papers' tables.
"""
import csv
import io
import statistics
import time
from dataclasses import asdict, dataclass, fields
from typing import Iterable, List, Optional, Sequence

import timm
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from .registry import is_zoo_model, timm_name
from .reparam import reparameterize

__all__ = ['BenchmarkRow', 'count_params', 'count_flops', 'measure_latency', 'benchmark', 'to_markdown', 'to_csv']


@dataclass
class BenchmarkRow:
    model: str
    form: str  # 'train' (eval mode, unfused), 'deploy' (zoo.reparameterize), 'timm'
    params: int
    gflops: float
    img_size: int
    latency_ms: float  # batch 1, median
    throughput: float  # images/s at batch_size, median
    batch_size: int
    latency_ratio: Optional[float] = None  # reference latency / this latency (> 1: faster than reference)
    throughput_ratio: Optional[float] = None  # this throughput / reference throughput
    reference: str = ''


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs (2 per multiply-add) of one forward pass on ``x``."""
    extra = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: extra.append(mod.flops(inp, out)))
             for m in model.modules() if callable(getattr(m, 'flops', None))]
    try:
        with FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        for h in hooks:
            h.remove()
    return int(counter.get_total_flops() + sum(extra))


@torch.no_grad()
def measure_latency(model: nn.Module, x: torch.Tensor, warmup: int = 3, repeats: int = 10) -> float:
    """Median wall time of one forward pass in seconds."""
    for _ in range(warmup):
        model(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _build(name: str) -> nn.Module:
    return timm.create_model(timm_name(name) if is_zoo_model(name) else name).eval()


def benchmark(
        models: Sequence[str],
        compare: Sequence[str] = (),
        forms: Sequence[str] = ('train', 'deploy'),
        img_size: int = 224,
        batch_size: int = 16,
        threads: int = 2,
        warmup: int = 3,
        repeats: int = 10,
        progress=None,
) -> List[BenchmarkRow]:
    """Measure every zoo model in each form and every ``compare`` model (timm names) as is.

    Ratios are against the first row of the same model (its train form); ``compare`` rows are against the
    first zoo model's deploy form when it was measured, so a ratio > 1 means the zoo model is faster."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x1 = torch.randn(1, 3, img_size, img_size)
    xb = torch.randn(batch_size, 3, img_size, img_size)
    rows: List[BenchmarkRow] = []
    jobs = [(name, form) for name in models for form in forms] + [(name, 'timm') for name in compare]
    for name, form in jobs:
        if progress:
            progress(f'{name} [{form}]')
        model = _build(name)
        if form == 'deploy':
            model = reparameterize(model)
        row = BenchmarkRow(
            model=name, form=form, params=count_params(model), gflops=count_flops(model, x1) / 1e9,
            img_size=img_size, latency_ms=1e3 * measure_latency(model, x1, warmup, repeats),
            throughput=batch_size / measure_latency(model, xb, max(1, warmup // 2), max(3, repeats // 2)),
            batch_size=batch_size)
        rows.append(row)
        del model
    _add_ratios(rows)
    return rows


def _add_ratios(rows: List[BenchmarkRow]) -> None:
    first = {}
    for row in rows:
        if row.form == 'timm':
            continue
        first.setdefault(row.model, row)
    zoo_deploy = next((r for r in rows if r.form == 'deploy'), None)
    for row in rows:
        ref = zoo_deploy if row.form == 'timm' else first[row.model]
        if ref is None or ref is row:
            continue
        if row.form == 'timm':
            # for a peer the ratio reads "zoo deploy vs this peer"
            row.latency_ratio = row.latency_ms / ref.latency_ms
            row.throughput_ratio = ref.throughput / row.throughput
            row.reference = f'{ref.model} [{ref.form}] vs this'
        else:
            row.latency_ratio = ref.latency_ms / row.latency_ms
            row.throughput_ratio = row.throughput / ref.throughput
            row.reference = f'this vs {ref.model} [{ref.form}]'


_HEADERS = ('model', 'form', 'params (M)', 'GFLOPs', 'latency b1 (ms)', 'throughput (img/s)', 'speed-up b1',
            'speed-up bN', 'ratio')


def _cells(row: BenchmarkRow) -> Iterable[str]:
    ratio = lambda v: '' if v is None else f'{v:.2f}x'
    return (row.model, row.form, f'{row.params / 1e6:.2f}', f'{row.gflops:.3f}', f'{row.latency_ms:.1f}',
            f'{row.throughput:.1f} (b{row.batch_size})', ratio(row.latency_ratio), ratio(row.throughput_ratio),
            row.reference)


def to_markdown(rows: Sequence[BenchmarkRow]) -> str:
    lines = ['| ' + ' | '.join(_HEADERS) + ' |', '|' + '---|' * len(_HEADERS)]
    lines += ['| ' + ' | '.join(_cells(r)) + ' |' for r in rows]
    return '\n'.join(lines)


def to_csv(rows: Sequence[BenchmarkRow]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[f.name for f in fields(BenchmarkRow)])
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    return buf.getvalue()
