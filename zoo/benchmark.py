"""Measuring models: parameters, FLOPs, latency, throughput, achieved GFLOP/s and peak memory, train form
against deploy form, eager against ``torch.compile`` and ONNX Runtime, and against timm peers, in one run so
that ratios are fair.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, matrix products and
scaled-dot-product attention, 1 multiply-add = 2 FLOPs) plus the ``flops(inputs, output)`` of modules that
compute a product outside those ops (LSNet's small-kernel aggregation). Element-wise ops, norms and
activations are not counted, as in fvcore and the papers' tables.

Achieved GFLOP/s (counted FLOPs x batch-N throughput) is put against the machine's measured peak: the best
rate of a large fp32 matrix product (the autocast dtype on a GPU with AMP) in the same process.
"""
import csv
import io
import os
import statistics
import sys
import tempfile
import time
import warnings
import weakref
from dataclasses import asdict, dataclass, fields
from typing import Callable, Dict, Iterable, List, Optional, Sequence

import timm
import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from .layers import DEPTHWISE_METHODS, DilatedReparamBlock, depthwise_conv, naive_attention
from .registry import timm_name, zoo_entrypoint
from .reparam import reparameterize

__all__ = ['BenchmarkRow', 'ChannelsLast', 'KernelRow', 'Unfused', 'PEERS', 'FORMS', 'PEER_FORMS', 'RUNTIMES',
           'count_params', 'count_flops', 'peak_memory', 'gemm_peak', 'measure_latency', 'benchmark',
           'timm_equivalent', 'large_kernel_table', 'kernel_table_markdown', 'markdown_table', 'to_markdown',
           'to_csv', 'from_csv']

FORMS = ('train', 'deploy', 'unfused')
# a timm model: in timm's deploy form as built, or with its weights and inputs in channels-last storage
PEER_FORMS = ('timm', 'timm-cl')
RUNTIMES = ('eager', 'compiled', 'onnx')
# timm models a user would pick instead of a zoo model: the zoo's families as timm has them, and efficient peers
PEERS = ('convnext_atto', 'inception_next_atto', 'shvit_s1', 'fasternet_t0', 'repvit_m1_0', 'fastvit_t8',
         'efficientvit_m5', 'efficientvit_b0', 'mobilenetv3_large_100')


@dataclass
class BenchmarkRow:
    model: str
    # 'train' (eval mode, unfolded), 'deploy' (zoo.reparameterize), 'unfused' (the deploy form with every
    # attention computed as the materialized softmax(QK^T)V instead of SDPA), 'timm' (timm's model in timm's
    # deploy form, timm.utils.reparameterize_model, where it has one), 'timm-cl' (that, on channels-last weights
    # and inputs)
    form: str
    params: int
    gflops: float  # per image at img_size
    img_size: int
    latency_ms: float  # batch 1, median
    throughput: float  # images/s at batch_size, median
    batch_size: int
    runtime: str = 'eager'  # 'eager', 'compiled' (torch.compile, inductor) or 'onnx' (ONNX Runtime)
    device: str = 'cpu'
    dtype: str = 'fp32'  # 'fp16' / 'bf16': autocast (AMP) on a GPU
    gflops_per_s: float = 0.  # achieved at batch_size: gflops x throughput
    peak_fraction: float = 0.  # gflops_per_s / the measured GEMM peak
    peak_mem_mb: Optional[float] = None  # activations at batch_size (eager on CPU; any PyTorch runtime on GPU)
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


class _LiveTensors(TorchDispatchMode):
    """Bytes held by the tensors that ops return while the mode is on, and their peak: every new storage is
    counted when an op returns it and released when it is freed."""

    def __init__(self):
        super().__init__()
        self.live: Dict[int, int] = {}
        self.current = self.peak = 0

    def _release(self, key: int) -> None:
        self.current -= self.live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key = storage.data_ptr()
                if key and key not in self.live:
                    self.live[key] = storage.nbytes()
                    self.current += storage.nbytes()
                    self.peak = max(self.peak, self.current)
                    weakref.finalize(storage, self._release, key)
        return out


@torch.no_grad()
def peak_memory(fn: Callable, x: torch.Tensor) -> int:
    """Peak bytes of the tensors ``fn(x)`` creates (the activations; parameters and ``x`` are held before):
    counted per op on a CPU, the allocator's peak on a GPU."""
    if x.is_cuda:
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn(x)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    with _LiveTensors() as live:
        fn(x)
    return live.peak


_GEMM_PEAK: Dict[tuple, float] = {}


@torch.no_grad()
def gemm_peak(device: str = 'cpu', dtype: torch.dtype = torch.float32, threads: Optional[int] = None,
              n: Optional[int] = None, repeats: int = 5) -> float:
    """The best GFLOP/s of an n x n matrix product on ``device`` in ``dtype`` (TF32 off for fp32 on a GPU),
    with ``threads`` CPU threads; measured once per process and setting."""
    if threads:
        torch.set_num_threads(threads)
    n = n or (2048 if device == 'cpu' else 8192)
    key = (device, dtype, torch.get_num_threads(), n)
    if key not in _GEMM_PEAK:
        g = torch.Generator(device=device).manual_seed(0)
        a = torch.randn(n, n, device=device, dtype=dtype, generator=g)
        b = torch.randn(n, n, device=device, dtype=dtype, generator=g)
        tf32 = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = False
        try:
            best = min(_timed(lambda: torch.mm(a, b), device) for _ in range(repeats + 2))
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32
        _GEMM_PEAK[key] = 2 * n ** 3 / best / 1e9
    return _GEMM_PEAK[key]


def _timed(fn: Callable, device: str) -> float:
    if device != 'cpu':
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if device != 'cpu':
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def measure_latency(model: nn.Module, x: torch.Tensor, warmup: int = 3, repeats: int = 10) -> float:
    """Median wall time of one forward pass in seconds."""
    return _interleaved_latency([model], x, warmup, repeats)[0]


def _build(name: str, form: str) -> nn.Module:
    """A zoo model (any form but 'timm') or timm's own model of that name ('timm': the bare name is timm's,
    even where the zoo has a model of the same name, as ``shvit_s1`` or ``convnext_tiny``)."""
    return timm.create_model(name if form in PEER_FORMS else timm_name(name)).eval()


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


class ChannelsLast(nn.Module):
    """``model`` with its weights, and each input, in channels-last storage."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)

    def forward(self, x):
        return self.model(x.contiguous(memory_format=torch.channels_last))


def _in_form(model: nn.Module, form: str) -> nn.Module:
    if form in PEER_FORMS:
        from timm.utils import reparameterize_model
        model = reparameterize_model(model)
        return ChannelsLast(model) if form == 'timm-cl' else model
    if form == 'deploy':
        return reparameterize(model)
    return Unfused(reparameterize(model)) if form == 'unfused' else model


class _OnnxRuntime:
    """A model exported to ONNX (dynamic batch) and run by an onnxruntime CPU session with ``threads`` threads,
    called like the model."""

    def __init__(self, model: nn.Module, img_size: int, threads: int, workdir: str):
        import onnxruntime as ort

        from .export import export_onnx
        path = os.path.join(workdir, f'{id(model)}.onnx')
        with warnings.catch_warnings():  # the tracer's notes on Python values it freezes (sizes, here fixed)
            warnings.simplefilter('ignore')
            export_onnx(model, path, (3, img_size, img_size), dynamic_hw=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        # onnxruntime's threads spin for a while after each run by default: taking turns with PyTorch models
        # on the same cores, the spinning would be charged to whichever model runs next
        options.add_session_config_entry('session.intra_op.allow_spinning', '0')
        self.session = ort.InferenceSession(path, options, providers=['CPUExecutionProvider'])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, x: torch.Tensor):
        return self.session.run(None, {self.input: x.numpy()})[0]


def _in_runtime(model: nn.Module, runtime: str, img_size: int, threads: int, workdir: str) -> Callable:
    if runtime == 'compiled':
        return torch.compile(model, dynamic=False)
    if runtime == 'onnx':
        return _OnnxRuntime(model, img_size, threads, workdir)
    return model


def timm_equivalent(name: str) -> Optional[str]:
    """timm's model of the same architecture as zoo model ``name`` (same weights load into both), if any."""
    family = sys.modules[zoo_entrypoint(name).__module__]
    peer = getattr(family, 'TIMM_EQUIVALENTS', {}).get(name, name)
    return peer if timm.is_model(peer) else None


@torch.no_grad()
def _interleaved_latency(models: Sequence[Callable], x: torch.Tensor, warmup: int, repeats: int) -> List[float]:
    """Median seconds per forward of each model, the models taking turns, in an order that rotates every
    repeat, so that drifts in machine load and the cache state a predecessor leaves fall on all of them
    alike."""
    device = 'cpu' if x.device.type == 'cpu' else 'cuda'
    for model in models:
        for _ in range(warmup):
            model(x)
    times = [[] for _ in models]
    for r in range(repeats):
        order = [(r + i) % len(models) for i in range(len(models))]
        for i in order:
            times[i].append(_timed(lambda: models[i](x), device))
    return [statistics.median(t) for t in times]


def _with_autocast(fn: Callable, device: str, dtype: Optional[torch.dtype]) -> Callable:
    if dtype is None:
        return fn

    def run(x):
        with torch.autocast(device, dtype=dtype):
            return fn(x)
    return run


_DTYPE_NAMES = {None: 'fp32', torch.float16: 'fp16', torch.bfloat16: 'bf16'}


def benchmark(
        models: Sequence[str],
        compare: Sequence[str] = (),
        forms: Sequence[str] = ('train', 'deploy'),
        runtimes: Sequence[str] = ('eager',),
        timm_peers: bool = False,
        peer_forms: Sequence[str] = ('timm',),
        img_size: int = 224,
        batch_size: int = 16,
        threads: int = 2,
        warmup: int = 3,
        repeats: int = 10,
        device: str = 'cpu',
        amp: Optional[torch.dtype] = None,
        memory: bool = True,
        progress: bool = False,
) -> List[BenchmarkRow]:
    """Measure every zoo model in each form and runtime, with ``timm_peers`` also timm's model of the same
    architecture, and every ``compare`` model (timm names) as is, each in every one of ``peer_forms``.

    Each zoo model and its peer are measured together, taking turns. Ratios of a zoo row are against the
    model's first row (its first form in its first runtime); a peer's ratio is "zoo deploy form vs this peer"
    in the same runtime (the model it was paired with, or for ``compare`` the first zoo model), so a ratio > 1
    means the zoo model is faster. ``amp`` (a GPU's autocast dtype) runs every model under autocast; ONNX
    Runtime runs on the CPU only. ``memory`` adds each PyTorch row's peak activation memory at ``batch_size``
    (one more batch forward; eager only on a CPU)."""
    unknown = sorted(set(forms) - set(FORMS)) + sorted(set(runtimes) - set(RUNTIMES)) \
        + sorted(set(peer_forms) - set(PEER_FORMS))
    if unknown:
        raise ValueError(f'unknown forms / runtimes {unknown}: forms are {FORMS}, runtimes {RUNTIMES}, '
                         f'peer forms {PEER_FORMS}')
    if device != 'cpu' and 'onnx' in runtimes:
        raise ValueError("runtime 'onnx' is measured on the CPU only (onnxruntime's CPU provider)")
    if amp is not None and device == 'cpu':
        raise ValueError('amp is for a GPU; on the CPU the tool measures fp32')
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x1 = torch.randn(1, 3, img_size, img_size, device=device)
    xb = torch.randn(batch_size, 3, img_size, img_size, device=device)
    peak = gemm_peak(device, amp or torch.float32, threads)
    groups = []
    for name in models:
        jobs = [(name, form, runtime, name) for form in forms for runtime in runtimes]
        peer = timm_equivalent(name) if timm_peers else None
        if peer:
            jobs += [(peer, form, runtime, name) for form in peer_forms for runtime in runtimes]
        groups.append(jobs)
    first = models[0] if models else None
    groups += [[(name, form, runtime, first) for form in peer_forms for runtime in runtimes] for name in compare]
    rows: List[BenchmarkRow] = []
    bar = tqdm(groups, desc='benchmark', unit='model', file=sys.stderr, disable=not progress, dynamic_ncols=True)
    with tempfile.TemporaryDirectory() as workdir:
        for jobs in bar:
            bar.set_postfix_str(', '.join(f'{name} [{form}, {runtime}]' for name, form, runtime, _ in jobs))
            modules, counted = {}, {}
            for name, form, _, _ in jobs:
                if (name, form) not in modules:
                    module = _in_form(_build(name, form), form).to(device)
                    modules[name, form] = module
                    counted[name, form] = (count_params(module), count_flops(module, x1) / 1e9)
            built = [_with_autocast(_in_runtime(modules[name, form], runtime, img_size, threads, workdir),
                                    device, amp) for name, form, runtime, _ in jobs]
            latency = _interleaved_latency(built, x1, warmup, repeats)
            batch_time = _interleaved_latency(built, xb, max(1, warmup // 2), max(3, repeats // 2))
            for (name, form, runtime, paired), fn, lat, bt in zip(jobs, built, latency, batch_time):
                params, gflops = counted[name, form]
                mem = None
                if memory and runtime != 'onnx' and (device != 'cpu' or runtime == 'eager'):
                    mem = peak_memory(fn, xb) / 2 ** 20
                rows.append(BenchmarkRow(
                    model=name, form=form, params=params, gflops=gflops, img_size=img_size, latency_ms=1e3 * lat,
                    throughput=batch_size / bt, batch_size=batch_size, runtime=runtime, device=device,
                    dtype=_DTYPE_NAMES[amp], gflops_per_s=gflops * batch_size / bt,
                    peak_fraction=gflops * batch_size / bt / peak, peak_mem_mb=mem, paired_with=paired))
            del built, modules
            if runtimes != ('eager',):
                torch._dynamo.reset()
    _add_ratios(rows)
    return rows


def _add_ratios(rows: List[BenchmarkRow]) -> None:
    first, deploy = {}, {}
    for row in rows:
        if row.form not in PEER_FORMS:
            first.setdefault(row.model, row)
            if row.form == 'deploy':
                deploy.setdefault((row.model, row.runtime), row)
    for row in rows:
        if row.form in PEER_FORMS:
            ref = deploy.get((row.paired_with, row.runtime))
            if ref is None:
                continue
            row.latency_ratio = row.latency_ms / ref.latency_ms
            row.throughput_ratio = ref.throughput / row.throughput
            row.reference = f'{ref.model} [{ref.form}, {ref.runtime}] vs this'
        else:
            ref = first[row.model]
            if ref is row:
                continue
            row.latency_ratio = ref.latency_ms / row.latency_ms
            row.throughput_ratio = row.throughput / ref.throughput
            row.reference = f'this vs {ref.model} [{ref.form}, {ref.runtime}]'


_HEADERS = ('model', 'form', 'runtime', 'params (M)', 'GFLOPs', 'latency b1 (ms)', 'throughput (img/s)',
            'GFLOP/s (% of peak)', 'peak act. mem (MB)', 'speed-up b1', 'speed-up bN', 'ratio')


def _cells(row: BenchmarkRow) -> Iterable[str]:
    ratio = lambda v: '' if v is None else f'{v:.2f}x'
    return (row.model, row.form, row.runtime, f'{row.params / 1e6:.2f}', f'{row.gflops:.3f}',
            f'{row.latency_ms:.1f}', f'{row.throughput:.1f} (b{row.batch_size})',
            f'{row.gflops_per_s:.1f} ({100 * row.peak_fraction:.0f}%)',
            '' if row.peak_mem_mb is None else f'{row.peak_mem_mb:.0f}',
            ratio(row.latency_ratio), ratio(row.throughput_ratio), row.reference)


def markdown_table(header: Sequence[str], body: Iterable[Iterable[str]]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    return '\n'.join(lines + ['| ' + ' | '.join(cells) + ' |' for cells in body])


def to_markdown(rows: Sequence[BenchmarkRow]) -> str:
    return markdown_table(_HEADERS, (_cells(r) for r in rows))


def to_csv(rows: Sequence[BenchmarkRow]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[f.name for f in fields(BenchmarkRow)])
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    return buf.getvalue()


def from_csv(text: str) -> List[BenchmarkRow]:
    """Rows written by :func:`to_csv`, typed again."""
    def parse(kind, value: str):
        if kind is str:
            return value
        if value == '':
            return None
        return int(value) if kind is int else float(value)
    kinds = {f.name: f.type for f in fields(BenchmarkRow)}
    return [BenchmarkRow(**{k: parse(kinds[k], v) for k, v in raw.items()}) for raw in csv.DictReader(io.StringIO(text))]


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
