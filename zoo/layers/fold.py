"""Exact folds of an affine map into the linear layer next to it.

A norm in eval mode is ``x_hat * scale + shift`` per channel, where ``x_hat`` is the input itself for a
BatchNorm (running statistics are constants) and the standardized input for a LayerNorm (its statistics
depend on the input, so only the affine part folds). A per-channel affine before a Linear, or before a Conv2d
without padding, moves into that layer's weight and bias; a per-channel scale after a layer moves into its
output rows. Padding would break the second fold: padded zeros would not be shifted.
"""
import copy
from typing import Optional, Tuple

import torch
import torch.nn as nn
from torch.nn.utils import skip_init

__all__ = ['FoldedCopy', 'fold_bn', 'norm_affine', 'fold_affine_into_next', 'fold_scale_into_prev', 'fold_bn_into_prev']


def fold_bn(bn: nn.modules.batchnorm._BatchNorm) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return (scale, shift) such that ``bn(x) == x * scale + shift`` in eval mode."""
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    return scale, bn.bias - bn.running_mean * scale


def norm_affine(norm: nn.Module) -> Tuple[torch.Tensor, torch.Tensor, Optional[nn.Module]]:
    """Split an eval-mode norm into (scale, shift, rest): ``norm(x) == rest(x) * scale + shift``.

    ``rest`` is None for a BatchNorm (nothing is left) and the same LayerNorm or GroupNorm without affine
    parameters for a LayerNorm or GroupNorm (the standardization stays)."""
    if isinstance(norm, nn.modules.batchnorm._BatchNorm):
        return (*fold_bn(norm), None)
    if isinstance(norm, nn.LayerNorm):
        if len(norm.normalized_shape) != 1:
            raise ValueError(f'only a LayerNorm over one (channel) axis folds, got {norm.normalized_shape}')
        n = norm.normalized_shape[0]
        rest = type(norm)(n, eps=norm.eps, elementwise_affine=False)
        if not norm.elementwise_affine:
            return torch.ones(n), torch.zeros(n), rest
        shift = norm.bias if norm.bias is not None else torch.zeros_like(norm.weight)
        return norm.weight, shift, rest
    if isinstance(norm, nn.GroupNorm):
        rest = nn.GroupNorm(norm.num_groups, norm.num_channels, eps=norm.eps, affine=False)
        if not norm.affine:
            return torch.ones(norm.num_channels), torch.zeros(norm.num_channels), rest
        return norm.weight, norm.bias, rest
    raise TypeError(f'no affine fold for {type(norm).__name__}')


@torch.no_grad()
def fold_affine_into_next(layer: nn.Module, scale: torch.Tensor, shift: torch.Tensor) -> nn.Module:
    """A copy of ``layer`` (Linear, or Conv2d without padding) that computes ``layer(x * scale + shift)``
    for a per-input-channel ``scale`` and ``shift``."""
    if isinstance(layer, nn.Conv2d):
        if any(p != 0 for p in layer.padding) or layer.padding_mode != 'zeros' or layer.groups != 1:
            raise ValueError('an affine map folds only into a dense Conv2d without padding')
        view = (1, -1, 1, 1)
        bias_from_shift = (layer.weight * shift.view(view)).sum((1, 2, 3))
    elif isinstance(layer, nn.Linear):
        view = (1, -1)
        bias_from_shift = layer.weight @ shift
    else:
        raise TypeError(f'no affine fold into {type(layer).__name__}')
    fused = _with_bias(layer)
    fused.weight.copy_(layer.weight * scale.view(view))
    fused.bias.copy_(bias_from_shift + (layer.bias if layer.bias is not None else 0.0))
    return fused


@torch.no_grad()
def fold_scale_into_prev(layer: nn.Module, scale: torch.Tensor) -> nn.Module:
    """A copy of ``layer`` (Linear or Conv2d) whose output is multiplied per channel by ``scale``."""
    fused = _with_bias(layer)
    view = (-1,) + (1,) * (layer.weight.ndim - 1)
    fused.weight.copy_(layer.weight * scale.view(view))
    fused.bias.copy_((layer.bias if layer.bias is not None else 0.0) * scale)
    return fused


@torch.no_grad()
def fold_bn_into_prev(layer: nn.Module, bn: nn.modules.batchnorm._BatchNorm) -> nn.Module:
    """A copy of ``layer`` (Linear or Conv2d, biased or not) that computes ``bn(layer(x))`` in eval mode."""
    scale, shift = fold_bn(bn)
    fused = fold_scale_into_prev(layer, scale)
    fused.bias.add_(shift)
    return fused


def _with_bias(layer: nn.Module) -> nn.Module:
    """An empty layer of ``layer``'s kind and shape with a bias (its caller fills every value: no init)."""
    kw = dict(device=layer.weight.device, dtype=layer.weight.dtype)
    if isinstance(layer, nn.Linear):
        return skip_init(nn.Linear, layer.in_features, layer.out_features, bias=True, **kw)
    return skip_init(nn.Conv2d, layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                     layer.padding, layer.dilation, layer.groups, bias=True, padding_mode=layer.padding_mode, **kw)


class FoldedCopy:
    """Mixin for a block whose deploy form is the same block with folded parameters.

    ``fuse()`` returns a folded copy marked ``fused = True`` (the walkers skip it, and fusing it again
    returns it unchanged); the train form is left as it was. The block implements ``_fold()``, which folds
    the copy in place."""
    # a TorchScript constant: scripting compiles only the branch of the form the block is in
    __constants__ = ['fused']
    fused = False

    @torch.no_grad()
    def fuse(self):
        if self.fused:
            return self
        block = copy.deepcopy(self)
        block._fold()
        block.fused = True
        return block.eval()
