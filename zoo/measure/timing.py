"""Timing: the machine's GEMM peak, and median forward times of models that take turns.

Achieved GFLOP/s (counted FLOPs x batch-N throughput) is put against the machine's measured peak: the best
rate of a large fp32 matrix product (the autocast dtype on a GPU with AMP) in the same process.
"""
import platform
import statistics
import time
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn as nn

from ..patches import onednn

__all__ = ['cpu_name', 'gemm_peak', 'gemm_products', 'measure_latency', 'interleaved_latency', 'interleaved_times',
           'paired_ratio', 'with_autocast', 'TrainingStep']


_GEMM_PEAK: Dict[tuple, float] = {}


@torch.no_grad()
def gemm_peak(device: str = 'cpu', dtype: torch.dtype = torch.float32, threads: Optional[int] = None,
              n: Optional[int] = None, repeats: int = 5) -> float:
    """The best GFLOP/s of an n x n matrix product on ``device`` in ``dtype`` (TF32 off for fp32 on a GPU),
    with ``threads`` CPU threads, by the fastest of the GEMM libraries PyTorch runs (:func:`gemm_products`);
    measured once per process and setting."""
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
            best = min(_timed(product, device) for product in gemm_products(a, b).values()
                       for _ in range(repeats + 2))
        finally:
            torch.backends.cuda.matmul.allow_tf32 = tf32
        _GEMM_PEAK[key] = 2 * n ** 3 / best / 1e9
    return _GEMM_PEAK[key]


def gemm_products(a: torch.Tensor, b: torch.Tensor) -> Dict[str, Callable[[], torch.Tensor]]:
    """``a @ b`` by each GEMM library PyTorch runs on ``a``'s device: ``torch.mm`` (on the CPU MKL's sgemm), and
    on the CPU in fp32 oneDNN's, as the deploy forms' Linears and convs run it (its linear op on a packed
    weight). Which is faster depends on the CPU: on an AMD EPYC with AVX-512 (2 threads, n = 2048) oneDNN's
    reached 421 GFLOP/s and MKL's 191, so a peak taken from MKL alone would let a model outrun the "peak"."""
    products = {'torch.mm': lambda: torch.mm(a, b)}
    if a.is_cpu and a.dtype == torch.float32 and onednn.available():
        packed = onednn.reorder_linear_weight(b.t().contiguous(), a.shape[0])  # the linear op takes a @ W^T
        products['onednn'] = lambda: onednn.linear_pointwise(a, packed, None, 'none')
    return products


def cpu_name() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo, else ``platform.processor()``): tables from two machines can
    differ by 2x in a ratio and in the GEMM peak."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


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
    return interleaved_latency([model], x, warmup, repeats)[0]


@torch.no_grad()
def interleaved_times(models: Sequence[Callable], x: torch.Tensor, warmup: int, repeats: int) -> List[List[float]]:
    """Seconds of each forward of each model (one list per model, one entry per round), the models taking turns
    in an order that rotates every round, so that drifts in machine load and the cache state a predecessor
    leaves fall on all of them alike."""
    device = 'cpu' if x.device.type == 'cpu' else 'cuda'
    for model in models:
        for _ in range(warmup):
            model(x)
    times = [[] for _ in models]
    for r in range(repeats):
        order = [(r + i) % len(models) for i in range(len(models))]
        for i in order:
            times[i].append(_timed(lambda: models[i](x), device))
    return times


def interleaved_latency(models: Sequence[Callable], x: torch.Tensor, warmup: int, repeats: int) -> List[float]:
    """Median seconds per forward of each model, measured by :func:`interleaved_times`."""
    return [statistics.median(t) for t in interleaved_times(models, x, warmup, repeats)]


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """The median over rounds of ``numerator[r] / denominator[r]``: two models' times taken in the same rounds
    of :func:`interleaved_times`. Each round's two calls run back to back, so a machine whose speed drifts
    between rounds (other work on it, clocks) moves both alike; the ratio of the two medians takes each
    median from other rounds and carries the drift in (on this project's shared 2-core machine it swung
    LSNet-T's b1 ratio to the authors' code between 1.12x and 1.25x run to run)."""
    if len(numerator) != len(denominator) or not numerator:
        raise ValueError(f'paired_ratio takes times of the same rounds, got {len(numerator)} and '
                         f'{len(denominator)}')
    return statistics.median(a / b for a, b in zip(numerator, denominator))


def with_autocast(fn: Callable, device: str, dtype: Optional[torch.dtype]) -> Callable:
    if dtype is None:
        return fn

    def run(x):
        with torch.autocast(device, dtype=dtype):
            return fn(x)
    return run


class TrainingStep:
    """One training step of ``model`` per call on a batch ``x``: forward (under autocast to ``amp``), cross-
    entropy against fixed random labels, backward, AdamW step (a gradient scaler for fp16). Called like a
    model, so :func:`interleaved_latency` times it; the loss of the last step is ``.loss``."""

    def __init__(self, model: nn.Module, x: torch.Tensor, amp: Optional[torch.dtype] = None):
        self.model = model.train()
        self.amp = amp
        with torch.no_grad():
            out = self._forward(x)
        self.labels = torch.randint(0, out.shape[-1], (len(x),), device=x.device,
                                    generator=torch.Generator(device=x.device).manual_seed(0))
        self.optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6)
        self.scaler = torch.amp.GradScaler(x.device.type, enabled=amp == torch.float16)
        self.loss = None

    def _forward(self, x):
        with torch.autocast(x.device.type, dtype=self.amp or torch.float32, enabled=self.amp is not None):
            return self.model(x)

    def __call__(self, x):
        with torch.enable_grad():
            self.optimizer.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(self._forward(x).float(), self.labels[:len(x)])
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        self.loss = loss.detach()
        return self.loss
