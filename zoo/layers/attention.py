"""Helpers shared by the attention families: padding a feature map to a window grid, running an NCHW module
(a conv, a pool) on (B, H, W, C) tokens and a Linear on the channels of an NCHW map, and the straightforward
``softmax(q k^T * scale) v`` that their fused ``scaled_dot_product_attention`` calls are tested against."""
import contextlib
import contextvars
from typing import Iterator, Optional, Tuple

import torch
import torch.nn.functional as F

from ._fx import register_notrace_function

__all__ = ['counting_model_products', 'model_products', 'naive_attention', 'on_channels', 'on_tokens',
           'pad_to_multiple']

_MODEL_PRODUCTS = contextvars.ContextVar('zoo_model_products', default=False)


@contextlib.contextmanager
def model_products() -> Iterator[None]:
    """Inside, a layer that can compute its function with more products than the model defines (BiFormer's
    masked routed attention) takes a form with only the model's own: what ``zoo.measure.count_flops`` counts."""
    token = _MODEL_PRODUCTS.set(True)
    try:
        yield
    finally:
        _MODEL_PRODUCTS.reset(token)


def counting_model_products() -> bool:
    return _MODEL_PRODUCTS.get()


@register_notrace_function  # whether to pad depends on the size: a traced graph calls it as one function
def pad_to_multiple(x: torch.Tensor, multiple_h: int, multiple_w: Optional[int] = None,
                    channels_last: bool = True) -> Tuple[torch.Tensor, int, int]:
    """Zero-pad the bottom and right of a (B, H, W, C) map (``channels_last``) or a (B, C, H, W) map so that
    H and W are multiples; returns the padded map and the original (H, W) for cropping back."""
    mult_w = multiple_h if multiple_w is None or multiple_w == 0 else multiple_w
    H, W = (x.shape[1], x.shape[2]) if channels_last else (x.shape[-2], x.shape[-1])
    pad_b, pad_r = -H % multiple_h, -W % mult_w
    if pad_b != 0 or pad_r != 0:  # not `> 0`: a dynamic-size torch.compile graph then skipped the padding
        x = F.pad(x, [0, 0, 0, pad_r, 0, pad_b] if channels_last else [0, pad_r, 0, pad_b])
    return x, H, W


def on_tokens(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``module`` (working on NCHW maps) applied to (B, H, W, C) tokens through their channels-last NCHW view;
    no copy either way."""
    return module(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


def on_channels(module: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The reverse: ``module`` (working on the last axis, a Linear or an MLP) applied to the channels of a
    (B, C, H, W) map through its (B, H, W, C) view; no copy either way when the map is channels-last."""
    return module(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, attn_mask: Optional[torch.Tensor] = None,
                    scale: Optional[float] = None, **unused) -> torch.Tensor:
    """``softmax(q @ k^T * scale + attn_mask) @ v`` with the attention matrix materialized: the form
    ``scaled_dot_product_attention`` replaces, with its arguments (scale defaults to ``q.shape[-1] ** -0.5``;
    a float mask is added, a boolean mask keeps the scores where it is True; dropout and causal masks are not
    used by the zoo and refused)."""
    if unused.get('dropout_p') or unused.get('is_causal'):
        raise ValueError('naive_attention has no dropout or causal mask')
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    attn = (q @ k.transpose(-2, -1)) * scale
    if attn_mask is not None and attn_mask.dtype == torch.bool:
        attn = attn.masked_fill(~attn_mask, float('-inf'))
    elif attn_mask is not None:
        attn = attn + attn_mask
    return attn.softmax(dim=-1) @ v
