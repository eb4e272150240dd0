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
import sys
import time
from dataclasses import asdict, dataclass, fields
from typing import Iterable, List, Optional, Sequence

import timm
import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from .layers import DEPTHWISE_METHODS, DilatedReparamBlock, depthwise_conv, naive_attention
from .registry import timm_name, zoo_entrypoint
from .reparam import reparameterize

__all__ = ['BenchmarkRow', 'KernelRow', 'Unfused', 'count_params', 'count_flops', 'measure_latency', 'benchmark',
           'timm_equivalent', 'large_kernel_table', 'kernel_table_markdown', 'to_markdown', 'to_csv']


@dataclass
class BenchmarkRow:
    model: str
    # 'train' (eval mode, unfolded), 'deploy' (zoo.reparameterize), 'unfused' (the deploy form with every
    # attention computed as the materialized softmax(QK^T)V instead of SDPA), 'timm' (timm's model in timm's
    # deploy form, timm.utils.reparameterize_model, where it has one)
    form: str
    params: int
    gflops: float
    img_size: int
    latency_ms: float  # batch 1, median
    throughput: float  # images/s at batch_size, median
    batch_size: int
    latency_ratio: Optional[float] = None  # reference latency / this latency (> 1: faster than reference)
    throughput_ratio: Optional[float] = None  # this throughput / reference throughput
    reference: str = ''
    paired_with: str = ''  # for a timm row: the zoo model it is compared with


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


def measure_latency(model: nn.Module, x: torch.Tensor, warmup: int = 3, repeats: int = 10) -> float:
    """Median wall time of one forward pass in seconds."""
    return _interleaved_latency([model], x, warmup, repeats)[0]


def _build(name: str, form: str) -> nn.Module:
    """A zoo model (any form but 'timm') or timm's own model of that name ('timm': the bare name is timm's,
    even where the zoo has a model of the same name, as ``shvit_s1`` or ``convnext_tiny``)."""
    return timm.create_model(name if form == 'timm' else timm_name(name)).eval()


class Unfused(nn.Module):
    """Runs ``model`` with ``scaled_dot_product_attention`` replaced by :func:`naive_attention` (the attention
    matrix built in full), to measure what the fused kernels bring."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        fused = nn.functional.scaled_dot_product_attention
        nn.functional.scaled_dot_product_attention = naive_attention
        try:
            return self.model(x)
        finally:
            nn.functional.scaled_dot_product_attention = fused


def _in_form(model: nn.Module, form: str) -> nn.Module:
    if form == 'timm':
        from timm.utils import reparameterize_model
        return reparameterize_model(model)
    if form == 'deploy':
        return reparameterize(model)
    return Unfused(reparameterize(model)) if form == 'unfused' else model


def timm_equivalent(name: str) -> Optional[str]:
    """timm's model of the same architecture as zoo model ``name`` (same weights load into both), if any."""
    family = sys.modules[zoo_entrypoint(name).__module__]
    peer = getattr(family, 'TIMM_EQUIVALENTS', {}).get(name, name)
    return peer if timm.is_model(peer) else None


@torch.no_grad()
def _interleaved_latency(models: Sequence[nn.Module], x: torch.Tensor, warmup: int, repeats: int) -> List[float]:
    """Median seconds per forward of each model, the models taking turns, in an order that rotates every
    repeat, so that drifts in machine load and the cache state a predecessor leaves fall on all of them
    alike."""
    for model in models:
        for _ in range(warmup):
            model(x)
    times = [[] for _ in models]
    for r in range(repeats):
        order = [(r + i) % len(models) for i in range(len(models))]
        for i in order:
            t0 = time.perf_counter()
            models[i](x)
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def benchmark(
        models: Sequence[str],
        compare: Sequence[str] = (),
        forms: Sequence[str] = ('train', 'deploy'),
        timm_peers: bool = False,
        img_size: int = 224,
        batch_size: int = 16,
        threads: int = 2,
        warmup: int = 3,
        repeats: int = 10,
        progress=None,
) -> List[BenchmarkRow]:
    """Measure every zoo model in each form, with ``timm_peers`` also timm's model of the same architecture,
    and every ``compare`` model (timm names) as is.

    Each zoo model and its peer are measured together, taking turns. Ratios of a zoo row are against the
    model's first row (its train form); a peer's ratio is "zoo deploy form vs this peer" (the model it was
    paired with, or for ``compare`` the first zoo model), so a ratio > 1 means the zoo model is faster."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x1 = torch.randn(1, 3, img_size, img_size)
    xb = torch.randn(batch_size, 3, img_size, img_size)
    groups = []
    for name in models:
        jobs = [(name, form, name) for form in forms]
        peer = timm_equivalent(name) if timm_peers else None
        if peer:
            jobs.append((peer, 'timm', name))
        groups.append(jobs)
    first = models[0] if models else None
    groups += [[(name, 'timm', first)] for name in compare]
    rows: List[BenchmarkRow] = []
    for jobs in groups:
        if progress:
            progress(', '.join(f'{name} [{form}]' for name, form, _ in jobs))
        built = [_in_form(_build(name, form), form) for name, form, _ in jobs]
        latency = _interleaved_latency(built, x1, warmup, repeats)
        batch_time = _interleaved_latency(built, xb, max(1, warmup // 2), max(3, repeats // 2))
        for (name, form, paired), model, lat, bt in zip(jobs, built, latency, batch_time):
            rows.append(BenchmarkRow(
                model=name, form=form, params=count_params(model), gflops=count_flops(model, x1) / 1e9,
                img_size=img_size, latency_ms=1e3 * lat, throughput=batch_size / bt, batch_size=batch_size,
                paired_with=paired))
        del built
    _add_ratios(rows)
    return rows


def _add_ratios(rows: List[BenchmarkRow]) -> None:
    first, deploy = {}, {}
    for row in rows:
        if row.form != 'timm':
            first.setdefault(row.model, row)
        if row.form == 'deploy':
            deploy.setdefault(row.model, row)
    for row in rows:
        if row.form == 'timm':
            ref = deploy.get(row.paired_with)
            if ref is None:
                continue
            row.latency_ratio = row.latency_ms / ref.latency_ms
            row.throughput_ratio = ref.throughput / row.throughput
            row.reference = f'{ref.model} [{ref.form}] vs this'
        else:
            ref = first[row.model]
            if ref is row:
                continue
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


@dataclass
class KernelRow:
    shape: tuple  # input (B, C, H, W)
    kernel_size: int
    method: str  # a DEPTHWISE_METHODS name, or 'dilated branches' (the train form, unmerged)
    ms: float  # median
    speedup: float  # 'direct' time / this time
    max_abs_err: float  # against a float64 direct convolution
    chosen: bool = False  # fastest method within the tolerance for this shape


# UniRepLKNet-T's 13x13 stages at 224 px (batch 1 and 16), and stage 2 at 512 and 1024 px (dense prediction)
LARGE_KERNEL_SHAPES = ((1, 160, 28, 28), (1, 320, 14, 14), (1, 640, 7, 7), (16, 160, 28, 28), (16, 320, 14, 14),
                       (16, 640, 7, 7), (1, 160, 64, 64), (1, 160, 128, 128))


def large_kernel_table(shapes: Sequence[Sequence[int]] = LARGE_KERNEL_SHAPES, kernel_size: int = 13,
                       methods: Sequence[str] = tuple(DEPTHWISE_METHODS), branches: bool = True,
                       threads: int = 2, warmup: int = 3, repeats: int = 10, tolerance: float = 1e-4,
                       progress=None) -> List[KernelRow]:
    """Time every way of computing a ``kernel_size`` depthwise convolution on each input shape, in turns,
    and check each against a float64 reference. With ``branches`` the Dilated Reparam Block's train form
    (the large kernel plus its dilated branches, each with BN) is timed too, against its merged kernel."""
    torch.set_num_threads(threads)
    gen = torch.Generator().manual_seed(0)
    rows: List[KernelRow] = []
    for shape in shapes:
        shape = tuple(shape)
        if progress:
            progress(f'{shape} k={kernel_size}')
        channels = shape[1]
        block = DilatedReparamBlock(channels, kernel_size).eval()
        with torch.no_grad():
            for bn in block.modules():
                if isinstance(bn, nn.BatchNorm2d):
                    bn.running_mean.normal_(0, 0.1, generator=gen)
                    bn.running_var.uniform_(0.5, 2.0, generator=gen)
            for conv in block.modules():
                if isinstance(conv, nn.Conv2d):
                    conv.weight.normal_(0, 1.0 / kernel_size, generator=gen)
            merged = block.fuse()
        weight, bias = merged.weight.detach(), merged.bias.detach()
        x = torch.randn(shape, generator=gen)
        with torch.no_grad():
            reference = depthwise_conv(x.double(), weight.double(), bias.double())
        # each method gets its input in its own layout (converting it would be timed too)
        x_cl = x.contiguous(memory_format=torch.channels_last)
        runs = [(m, (lambda t, m=m: depthwise_conv(x_cl if m == 'channels_last' else t, weight, bias, m)))
                for m in methods]
        if branches:
            runs.append(('dilated branches', block))
        times = _interleaved_latency([fn for _, fn in runs], x, warmup, repeats)
        base = dict(zip([m for m, _ in runs], times)).get('direct', times[0])
        shape_rows = []
        for (method, fn), t in zip(runs, times):
            with torch.no_grad():
                err = (fn(x).double() - reference).abs().max().item()
            shape_rows.append(KernelRow(shape, kernel_size, method, 1e3 * t, base / t, err))
        exact = [r for r in shape_rows if r.max_abs_err <= tolerance]
        if exact:
            min(exact, key=lambda r: r.ms).chosen = True
        rows += shape_rows
    return rows


def kernel_table_markdown(rows: Sequence[KernelRow]) -> str:
    lines = ['| input (B, C, H, W) | K | method | time (ms) | speed-up vs direct | max abs err | fastest exact |',
             '|---|---|---|---|---|---|---|']
    lines += [f'| {r.shape} | {r.kernel_size} | {r.method} | {r.ms:.3f} | {r.speedup:.2f}x | {r.max_abs_err:.1e} | '
              f'{"yes" if r.chosen else ""} |' for r in rows]
    return '\n'.join(lines)
