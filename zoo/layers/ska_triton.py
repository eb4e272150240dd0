"""LSNet's small-kernel aggregation (SKA) as one fused Triton kernel, forward and backward.

``out[b, c, i, j] = sum_t x[b, c, i+u-p, j+v-p] * w[b, c % G, t, i, j]`` (tap ``t = u*k + v``, zero padding
``p = (k-1)//2``). The pure-PyTorch path (:func:`zoo.models.lsnet.ska_reference`) takes it as k*k
shifted multiply-adds, each a pass over memory; the kernels here read ``x`` and ``w`` once per output block
and write once:

- forward: one program per (b, c) and block of pixels, the k*k taps unrolled, accumulated in fp32;
- gradient w.r.t. ``x``: the same gather turned around (each input pixel sums the outputs it fed), so no
  atomics;
- gradient w.r.t. ``w``: one program per (b, g, t) and block of pixels, summing over the C / G channels
  that share the weight channel.

``torch.ops.zoo.ska`` is the custom op (``torch.library``) that ``torch.compile``, ``torch.export`` and
autograd see as one operation; its backward is the op ``zoo::ska_backward``. LSNet takes it on CUDA when
Triton is installed; on the CPU the pure-PyTorch path stays (it is the reference). Triton's interpreter
(``TRITON_INTERPRET=1``, set before this module is imported) runs the same kernels on CPU tensors, which is
how the tests check them.
"""
import functools
import importlib.util
import math
from typing import Tuple

import torch

__all__ = ['triton_available', 'ska_forward', 'ska_backward', 'ska']

_BLOCK = 128


def triton_available() -> bool:
    """Whether Triton is installed (found without importing it: importing it is not free)."""
    return importlib.util.find_spec('triton') is not None


@functools.lru_cache(maxsize=None)
def _kernels():
    """The Triton kernels, defined on first use (``triton.jit`` reads ``TRITON_INTERPRET`` when it runs)."""
    import triton
    import triton.language as tl

    @triton.jit
    def forward(x_ptr, w_ptr, out_ptr, C, G, H, W, K: tl.constexpr, BLOCK: tl.constexpr):
        bc = tl.program_id(0)
        b = bc // C
        c = bc % C
        g = c % G
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        inside = offs < H * W
        i = offs // W
        j = offs % W
        P: tl.constexpr = (K - 1) // 2
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        x_base = x_ptr + bc * H * W
        w_base = w_ptr + (b * G + g) * K * K * H * W
        for t in tl.static_range(K * K):
            ii = i + (t // K - P)
            jj = j + (t % K - P)
            valid = inside & (ii >= 0) & (ii < H) & (jj >= 0) & (jj < W)
            xv = tl.load(x_base + ii * W + jj, mask=valid, other=0.0).to(tl.float32)
            wv = tl.load(w_base + t * H * W + offs, mask=inside, other=0.0).to(tl.float32)
            acc += xv * wv
        tl.store(out_ptr + bc * H * W + offs, acc.to(out_ptr.dtype.element_ty), mask=inside)

    @triton.jit
    def grad_input(go_ptr, w_ptr, gx_ptr, C, G, H, W, K: tl.constexpr, BLOCK: tl.constexpr):
        # x[b, c, i', j'] fed out[b, c, i'-u+p, j'-v+p] through tap (u, v)
        bc = tl.program_id(0)
        b = bc // C
        g = (bc % C) % G
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        inside = offs < H * W
        i = offs // W
        j = offs % W
        P: tl.constexpr = (K - 1) // 2
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        go_base = go_ptr + bc * H * W
        w_base = w_ptr + (b * G + g) * K * K * H * W
        for t in tl.static_range(K * K):
            oi = i - (t // K - P)
            oj = j - (t % K - P)
            valid = inside & (oi >= 0) & (oi < H) & (oj >= 0) & (oj < W)
            gv = tl.load(go_base + oi * W + oj, mask=valid, other=0.0).to(tl.float32)
            wv = tl.load(w_base + t * H * W + oi * W + oj, mask=valid, other=0.0).to(tl.float32)
            acc += gv * wv
        tl.store(gx_ptr + bc * H * W + offs, acc.to(gx_ptr.dtype.element_ty), mask=inside)

    @triton.jit
    def grad_weight(go_ptr, x_ptr, gw_ptr, C, G, H, W, C_PER_G: tl.constexpr, K: tl.constexpr,
                    BLOCK: tl.constexpr):
        bgt = tl.program_id(0)
        t = bgt % (K * K)
        bg = bgt // (K * K)
        b = bg // G
        g = bg % G
        offs = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
        inside = offs < H * W
        i = offs // W
        j = offs % W
        P: tl.constexpr = (K - 1) // 2
        ii = i + (t // K - P)
        jj = j + (t % K - P)
        valid = inside & (ii >= 0) & (ii < H) & (jj >= 0) & (jj < W)
        acc = tl.zeros([BLOCK], dtype=tl.float32)
        for n in range(0, C_PER_G):  # the channels g, g + G, ... that share weight channel g
            base = (b * C + g + n * G) * H * W
            gv = tl.load(go_ptr + base + offs, mask=inside, other=0.0).to(tl.float32)
            xv = tl.load(x_ptr + base + ii * W + jj, mask=valid, other=0.0).to(tl.float32)
            acc += gv * xv
        tl.store(gw_ptr + bgt * H * W + offs, acc.to(gw_ptr.dtype.element_ty), mask=inside)

    return forward, grad_input, grad_weight


def _shape(x: torch.Tensor, weight: torch.Tensor) -> Tuple[int, int, int, int, int, int]:
    if x.dim() != 4 or weight.dim() != 5:
        raise ValueError(f'SKA takes x (B, C, H, W) and weight (B, G, k*k, H, W), got {tuple(x.shape)} and '
                         f'{tuple(weight.shape)}')
    B, C, H, W = x.shape
    G, kk = weight.shape[1], weight.shape[2]
    k = math.isqrt(kk)
    if k * k != kk or k % 2 == 0 or C % G != 0 or weight.shape[0] != B or tuple(weight.shape[3:]) != (H, W):
        raise ValueError(f'SKA needs an odd square kernel, channels divisible by the weight groups and one '
                         f'kernel per pixel, got x {tuple(x.shape)} and weight {tuple(weight.shape)}')
    return B, C, G, H, W, k


def ska_forward(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The forward kernel (no autograd): ``out`` in ``x``'s dtype, accumulated in fp32."""
    B, C, G, H, W, k = _shape(x, weight)
    x, weight = x.contiguous(), weight.to(x.dtype).contiguous()
    out = torch.empty_like(x)
    if out.numel():
        _kernels()[0][(B * C, -(-H * W // _BLOCK))](x, weight, out, C, G, H, W, K=k, BLOCK=_BLOCK)
    return out


def ska_backward(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Both gradients: w.r.t. ``x`` (in ``x``'s dtype) and w.r.t. ``weight`` (in ``weight``'s dtype)."""
    B, C, G, H, W, k = _shape(x, weight)
    grad, x, w = grad.to(x.dtype).contiguous(), x.contiguous(), weight.to(x.dtype).contiguous()
    grad_x = torch.empty_like(x)
    grad_w = torch.empty(weight.shape, dtype=weight.dtype, device=weight.device)
    if x.numel():
        _, grad_input, grad_weight = _kernels()
        blocks = -(-H * W // _BLOCK)
        grad_input[(B * C, blocks)](grad, w, grad_x, C, G, H, W, K=k, BLOCK=_BLOCK)
        grad_weight[(B * G * k * k, blocks)](grad, x, grad_w, C, G, H, W, C_PER_G=C // G, K=k, BLOCK=_BLOCK)
    return grad_x, grad_w


# ------------------------------------------------------------------------------------------ the custom op

@torch.library.custom_op('zoo::ska', mutates_args=())
def ska(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """SKA through the Triton kernels, as one op for autograd, ``torch.compile`` and ``torch.export``."""
    return ska_forward(x, weight)


@ska.register_fake
def _(x, weight):
    _shape(x, weight)
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.custom_op('zoo::ska_backward', mutates_args=())
def _ska_backward_op(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    return ska_backward(grad, x, weight)


@_ska_backward_op.register_fake
def _(grad, x, weight):
    return torch.empty_like(x, memory_format=torch.contiguous_format), torch.empty(weight.shape, dtype=weight.dtype,
                                                                                    device=weight.device)


def _setup_context(ctx, inputs, output):
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad):
    x, weight = ctx.saved_tensors
    grad_x, grad_w = _ska_backward_op(grad, x, weight)
    return (grad_x if ctx.needs_input_grad[0] else None), (grad_w if ctx.needs_input_grad[1] else None)


ska.register_autograd(_backward, setup_context=_setup_context)
