"""Helpers shared by the attention families: padding a feature map to a window grid, and the straightforward
``softmax(q k^T * scale) v`` that their fused ``scaled_dot_product_attention`` calls are tested against."""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F

__all__ = ['naive_attention', 'pad_to_multiple']


def pad_to_multiple(x: torch.Tensor, multiple_h: int, multiple_w: Optional[int] = None,
                    channels_last: bool = True) -> Tuple[torch.Tensor, int, int]:
    """Zero-pad the bottom and right of a (B, H, W, C) map (``channels_last``) or a (B, C, H, W) map so that
    H and W are multiples; returns the padded map and the original (H, W) for cropping back."""
    multiple_w = multiple_w or multiple_h
    H, W = (x.shape[1], x.shape[2]) if channels_last else (x.shape[-2], x.shape[-1])
    pad_b, pad_r = -H % multiple_h, -W % multiple_w
    if pad_b or pad_r:
        x = F.pad(x, (0, 0, 0, pad_r, 0, pad_b) if channels_last else (0, pad_r, 0, pad_b))
    return x, H, W


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: Optional[float] = None) -> torch.Tensor:
    """``softmax(q @ k^T * scale) @ v`` with the attention matrix materialized (scale defaults to
    ``q.shape[-1] ** -0.5``, as ``scaled_dot_product_attention``)."""
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    return ((q @ k.transpose(-2, -1)) * scale).softmax(dim=-1) @ v
