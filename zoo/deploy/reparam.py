"""Deploy form: one walker over the fusion protocol.

A module that can fold itself defines ``fuse()`` and returns the module that replaces it (a Conv–BN
becomes a biased conv, a RepVGG block one kernel). A block whose deploy form is the same class with
folded parameters returns that copy with ``fused = True``; fusing it again returns it unchanged. The walker
knows no family. ``timm.utils.reparameterize_model``
walks the same protocol, so it gives the same deploy modules and outputs; only the layout differs, as it does
not move a channels-last model's weights (or a ``deploy_channels_last`` model) to channels-last storage,
nor give a ``deploy_fused_convs`` model's plain convolutions oneDNN's packed kernels (``FusedConv2d``, with
the ReLU or GELU that follows each in an ``nn.Sequential``).
"""
import collections
import copy

import torch
import torch.nn as nn

from ..layers import FusedConv2d

__all__ = ['reparameterize', 'foldable_modules']


def _fuse_children(module: nn.Module) -> None:
    for name, child in module.named_children():
        if _can_fuse(child):
            child = child.fuse()
            setattr(module, name, child)
        _fuse_children(child)


def _can_fuse(module: nn.Module) -> bool:
    return hasattr(module, 'fuse') and not getattr(module, 'fused', False)


def _plain_conv(module: nn.Module) -> bool:
    # a hooked conv stays as it is: its hooks would not move to the new layer
    return (type(module) is nn.Conv2d and module.padding_mode == 'zeros' and not isinstance(module.padding, str)
            and not (module._forward_hooks or module._forward_pre_hooks))


def _fused_act(module: nn.Module):
    """The FusedConv2d activation that computes ``module`` (an activation layer), or None (also for a layer
    with hooks, which would no longer run)."""
    if module._forward_hooks or module._forward_pre_hooks:
        return None
    if type(module) is nn.ReLU:
        return 'relu'
    if type(module) is nn.GELU and module.approximate == 'none':
        return 'gelu'
    return None


def _pack_convs(module: nn.Module, uses=None) -> None:
    """Every plain zero-padded ``nn.Conv2d`` under ``module`` becomes a :class:`FusedConv2d` holding its
    tensors: the same function, with oneDNN's packed kernel in CPU inference. In an ``nn.Sequential`` that runs
    its children in order (not a subclass with a forward of its own), a ReLU or GELU right after the conv runs
    in the conv's layer and an ``nn.Identity`` takes its place: one pass over the conv's output fewer. A conv
    or activation held twice in the model keeps its activation apart; a conv with hooks stays a plain conv and an
    activation with hooks stays in place."""
    if uses is None:
        uses = collections.Counter(id(m) for _, m in module.named_modules(remove_duplicate=False))
    children = list(module._modules.items())
    in_order = isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward
    for i, (name, child) in enumerate(children):
        if _plain_conv(child):
            after = children[i + 1][1] if in_order and i + 1 < len(children) else None
            act = _fused_act(after) if after is not None else None
            if act is not None and (uses[id(child)] > 1 or uses[id(after)] > 1):
                act = None
            setattr(module, name, FusedConv2d.from_conv(child, act=act or 'none'))
            if act is not None:
                setattr(module, children[i + 1][0], nn.Identity())
        elif child is not None:
            _pack_convs(child, uses)


def reparameterize(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Return the deploy form of ``model`` (a copy unless ``inplace``), in eval mode: every Conv–BN and
    BN–Linear folded, every multi-branch block merged. Outputs match the eval-mode train form."""
    if not inplace:
        model = copy.deepcopy(model)
    if hasattr(model, 'fuse'):
        raise TypeError('reparameterize walks a model; call .fuse() on a single unit')
    _fuse_children(model)
    # the backbone may sit inside a wrapper (timm's features_only getter, a detector)
    channels_last = False
    for m in list(model.modules()):
        if getattr(m, 'deploy_fused_convs', False):
            _pack_convs(m)
        if getattr(m, 'deploy_channels_last', False):
            m.channels_last = True  # the deploy form runs channels-last
        channels_last = channels_last or getattr(m, 'channels_last', False)
    if channels_last:
        # folds build new convs in the default layout; a channels-last model would re-layout their weights
        # on every call
        model.to(memory_format=torch.channels_last)
    return model.eval()


def foldable_modules(model: nn.Module):
    """Names of the modules that still hold a fold (empty for a deploy-form model)."""
    return [name for name, m in model.named_modules() if _can_fuse(m)]
