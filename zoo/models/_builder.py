"""The one way a zoo family builds a variant: timm's ``build_model_with_cfg`` with the family's checkpoint
filter and the feature getter for ``features_only``. Pretrained weights are resolved, checksummed and read
by the zoo (once, with the zoo's rule for what a file holds) and handed to timm's loader as a state dict."""
import contextlib
import numbers
from typing import Callable, Optional

import torch.nn as nn
from timm.models import build_model_with_cfg, resolve_pretrained_cfg

from ..weights import partial_loading, read_checkpoint, resolve_weights_file, unwrap_state_dict

__all__ = ['build_zoo_model']


def build_zoo_model(model_cls, name: str, pretrained: bool, checkpoint_filter: Callable, num_stages: int = 4,
                    pretrained_cfg: Optional[object] = None, pretrained_cfg_overlay: Optional[dict] = None,
                    checksum: Optional[str] = None, **kwargs) -> nn.Module:
    """``name``: the timm registry name (``zoo/lsnet_t``). ``checksum``: the sha256 (or its first 8+ hex digits)
    the pretrained file must have; by default the one the manifest records for it, if any."""
    _check_kwargs(name, num_stages, kwargs)
    second = getattr(model_cls, 'distillation_classifier', None) if kwargs.get('distillation') else None
    if second:  # a model with a distillation head has two classifiers (LSNet's and SHViT's authors' cfgs list both)
        first = resolve_pretrained_cfg(name, pretrained_cfg=pretrained_cfg,
                                       pretrained_cfg_overlay=pretrained_cfg_overlay).classifier
        pretrained_cfg_overlay = dict(pretrained_cfg_overlay or {}, classifier=(first, second))
    path = None
    if pretrained:
        cfg = resolve_pretrained_cfg(name, pretrained_cfg=pretrained_cfg,
                                     pretrained_cfg_overlay=pretrained_cfg_overlay)
        path = resolve_weights_file(cfg, checksum)
        if path is not None:
            # timm loads the state dict the zoo read; a 'hf-hub' / 'local-dir' source would make it fetch again
            pretrained_cfg_overlay = dict(pretrained_cfg_overlay or {}, file=path, source='zoo',
                                          state_dict=read_checkpoint(path))
    elif checksum is not None:
        raise ValueError(f'checksum={checksum!r} is for pretrained weights; pass pretrained=True')
    out_indices = kwargs.pop('out_indices', tuple(range(num_stages)))

    def filter_fn(state_dict, model):
        # a state dict given in the cfg reaches here as given: unwrap {'model': ...} / {'state_dict': ...} first
        return checkpoint_filter(unwrap_state_dict(state_dict), model)

    # timm's pretrained_strict=False: the family's filter accepts missing and unexpected keys, as timm's loader does
    with partial_loading() if kwargs.get('pretrained_strict') is False else contextlib.nullcontext():
        model = build_model_with_cfg(
            model_cls, name, pretrained,
            pretrained_cfg=pretrained_cfg,
            pretrained_cfg_overlay=pretrained_cfg_overlay,
            pretrained_filter_fn=filter_fn,
            feature_cfg=dict(feature_cls='getter', out_indices=out_indices),
            **kwargs,
        )
    if path is not None:
        _forget_state_dict(model)
    return model


def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _check_kwargs(name: str, num_stages: int, kwargs: dict) -> None:
    """A clear error, naming the argument, the value and what is allowed, for a model argument that would
    otherwise fail deep inside a layer (or not at all, building a model that cannot run)."""
    def bad(arg, allowed):
        raise ValueError(f'{name}: {arg}={kwargs[arg]!r} is not allowed; {arg} must be {allowed}')

    if 'in_chans' in kwargs and not (_is_int(kwargs['in_chans']) and kwargs['in_chans'] >= 1):
        bad('in_chans', 'an int >= 1')
    if 'num_classes' in kwargs and not (_is_int(kwargs['num_classes']) and kwargs['num_classes'] >= 0):
        bad('num_classes', 'an int >= 0 (0 for no classifier)')
    for arg in ('drop_rate', 'drop_path_rate', 'proj_drop_rate', 'attn_drop_rate'):
        v = kwargs.get(arg)
        if v is not None and not (isinstance(v, numbers.Real) and not isinstance(v, bool) and 0 <= v < 1):
            bad(arg, 'a probability in [0, 1)')
    if 'out_indices' in kwargs:
        idx = kwargs['out_indices']
        allowed = (f'a non-empty, increasing sequence of distinct stage indices in [-{num_stages}, {num_stages}) '
                   f'({num_stages} stages)')
        if _is_int(idx):  # timm's shorthand: the last n stages
            if not 1 <= idx <= num_stages:
                bad('out_indices', f'{allowed}, or an int n in [1, {num_stages}] for the last n stages')
            return
        if not (isinstance(idx, (tuple, list)) and idx and all(_is_int(i) and -num_stages <= i < num_stages
                                                                for i in idx)):
            bad('out_indices', allowed)
        norm = [i % num_stages for i in idx]
        if any(b <= a for a, b in zip(norm, norm[1:])):
            bad('out_indices', allowed)


def _forget_state_dict(model: nn.Module) -> None:
    """The cfg that carried the weights to timm's loader stays on the model (``pretrained_cfg``, and on a
    ``features_only`` wrapper's copy): drop the tensors there, so that the model does not hold a second copy
    of its weights; ``file`` still names where they came from."""
    for m in model.modules():
        for attr in ('pretrained_cfg', 'default_cfg'):
            cfg = getattr(m, attr, None)
            if isinstance(cfg, dict) and cfg.get('state_dict') is not None:
                cfg['state_dict'] = None
