"""Counting: parameters, FLOPs and peak activation memory of a forward pass.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` (convolutions, matrix products and
scaled-dot-product attention, 1 multiply-add = 2 FLOPs) plus the ``flops(inputs, output)`` of modules that
compute a product outside those ops (LSNet's small-kernel aggregation). Element-wise ops, norms and
activations are not counted, as in fvcore and the papers' tables.
"""
import weakref
from typing import Callable, Dict

import torch
import torch.nn as nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from ..layers import model_products


def _cpu_attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# the CPU's fused attention op, which FlopCounterMode (torch 2.9) does not know and would count as nothing: the
# formula it has for the GPU's (QK^T and AV, 2 FLOPs a multiply-add)
_MORE_FLOPS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _cpu_attention_flops}

__all__ = ['count_params', 'count_flops', 'peak_memory']


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_flops(model: nn.Module, x: torch.Tensor) -> int:
    """FLOPs (2 per multiply-add) of one forward pass on ``x``."""
    extra = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: extra.append(mod.flops(inp, out)))
             for m in model.modules() if callable(getattr(m, 'flops', None))]
    try:
        with model_products(), FlopCounterMode(display=False, custom_mapping=_MORE_FLOPS) as counter:
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
