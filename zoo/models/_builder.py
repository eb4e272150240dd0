"""The one way a zoo family builds a variant: timm's ``build_model_with_cfg`` with the family's checkpoint
filter and the feature getter for ``features_only``. Pretrained weights are resolved, checksummed and read
by the zoo (once, with the zoo's rule for what a file holds) and handed to timm's loader as a state dict."""
from typing import Callable, Optional

import torch.nn as nn
from timm.models import build_model_with_cfg, resolve_pretrained_cfg

from ..weights import read_checkpoint, resolve_weights_file, unwrap_state_dict

__all__ = ['build_zoo_model']


def build_zoo_model(model_cls, name: str, pretrained: bool, checkpoint_filter: Callable, num_stages: int = 4,
                    pretrained_cfg: Optional[object] = None, pretrained_cfg_overlay: Optional[dict] = None,
                    checksum: Optional[str] = None, **kwargs) -> nn.Module:
    """``name``: the timm registry name (``zoo/lsnet_t``). ``checksum``: the sha256 (or its first 8+ hex digits)
    the pretrained file must have; by default the one the manifest records for it, if any."""
    path = None
    if pretrained:
        cfg = resolve_pretrained_cfg(name, pretrained_cfg=pretrained_cfg,
                                     pretrained_cfg_overlay=pretrained_cfg_overlay)
        path = resolve_weights_file(cfg, checksum)
        if path is not None:
            # timm loads the state dict the zoo read; a 'hf-hub' / 'local-dir' source would make it fetch again
            pretrained_cfg_overlay = dict(pretrained_cfg_overlay or {}, file=path, source='zoo',
                                          state_dict=read_checkpoint(path))
    elif checksum:
        raise ValueError('checksum is for pretrained weights; pass pretrained=True')
    out_indices = kwargs.pop('out_indices', tuple(range(num_stages)))

    def filter_fn(state_dict, model):
        # a state dict given in the cfg reaches here as given: unwrap {'model': ...} / {'state_dict': ...} first
        return checkpoint_filter(unwrap_state_dict(state_dict), model)

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


def _forget_state_dict(model: nn.Module) -> None:
    """The cfg that carried the weights to timm's loader stays on the model (``pretrained_cfg``, and on a
    ``features_only`` wrapper's copy): drop the tensors there, so that the model does not hold a second copy
    of its weights; ``file`` still names where they came from."""
    for m in model.modules():
        for attr in ('pretrained_cfg', 'default_cfg'):
            cfg = getattr(m, attr, None)
            if isinstance(cfg, dict) and cfg.get('state_dict') is not None:
                cfg['state_dict'] = None
