"""A study of the ways to compute a large depthwise convolution (UniRepLKNet's 13x13 kernels): each timed in
turns and checked against a float64 reference (``tools/benchmark.py --large-kernel``)."""
import statistics
from dataclasses import dataclass
from typing import List, Sequence

import torch
import torch.nn as nn

from ..layers import DEPTHWISE_METHODS, DilatedReparamBlock, depthwise_conv
from .timing import interleaved_times, paired_ratio

__all__ = ['KernelRow', 'LARGE_KERNEL_SHAPES', 'large_kernel_table', 'kernel_table_markdown']


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
        times = interleaved_times([fn for _, fn in runs], x, warmup, repeats)
        base = dict(zip([m for m, _ in runs], times)).get('direct', times[0])
        shape_rows = []
        for (method, fn), t in zip(runs, times):
            with torch.no_grad():
                err = (fn(x).double() - reference).abs().max().item()
            shape_rows.append(KernelRow(shape, kernel_size, method, 1e3 * statistics.median(t),
                                        paired_ratio(base, t), err))
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
