from typing import List, Sequence

import torch

from ._fx import register_notrace_function

__all__ = ['check_input', 'conv_output_size']


def conv_output_size(size: Sequence[int], kernel_size: Sequence[int], stride: Sequence[int], padding: Sequence[int],
                     dilation: Sequence[int]) -> List[int]:
    """The spatial size of a zero-padded convolution's output, per dimension (PyTorch's formula)."""
    return [(n + 2 * p - d * (k - 1) - 1) // s + 1
            for n, k, s, p, d in zip(size, kernel_size, stride, padding, dilation)]


@register_notrace_function  # a traced graph checks the input it runs on
def check_input(x: torch.Tensor, in_chans: int, arch: str) -> torch.Tensor:
    """A clear error for an input a model cannot take, before any conv reports it in its own words.
    Returns ``x``, so that a traced graph keeps the check (an unused call would be pruned)."""
    if torch.jit.is_scripting():  # the same checks; TorchScript formats the shape as a list
        if x.dim() != 4:
            raise ValueError(f'{arch} expects a 4-D (B, C, H, W) input, got shape {x.shape}')
        if x.shape[1] != in_chans:
            raise ValueError(f'{arch} was built for {in_chans} input channels, got {x.shape[1]} '
                             f'(input shape {x.shape}); create it with in_chans={x.shape[1]}')
        return x
    if x.ndim != 4:
        raise ValueError(f'{arch} expects a 4-D (B, C, H, W) input, got shape {tuple(x.shape)}')
    if x.shape[1] != in_chans:
        raise ValueError(f'{arch} was built for {in_chans} input channels, got {x.shape[1]} '
                         f'(input shape {tuple(x.shape)}); create it with in_chans={x.shape[1]}')
    return x
