import torch

__all__ = ['check_input']


def check_input(x: torch.Tensor, in_chans: int, arch: str) -> None:
    """A clear error for an input a model cannot take, before any conv reports it in its own words."""
    if x.ndim != 4:
        raise ValueError(f'{arch} expects a 4-D (B, C, H, W) input, got shape {tuple(x.shape)}')
    if x.shape[1] != in_chans:
        raise ValueError(f'{arch} was built for {in_chans} input channels, got {x.shape[1]} '
                         f'(input shape {tuple(x.shape)}); create it with in_chans={x.shape[1]}')
