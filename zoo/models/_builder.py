"""The one way a zoo family builds a variant: timm's ``build_model_with_cfg`` with the zoo's namespace,
the family's checkpoint filter, the feature getter for ``features_only``, and checkpoint files read
with errors that name them."""
import sys
from typing import Optional

from timm.models import build_model_with_cfg, resolve_pretrained_cfg

from ..checkpoint import read_checkpoint, unwrap_state_dict
from ..registry import timm_name

__all__ = ['build_zoo_model']


def build_zoo_model(model_cls, variant: str, pretrained: bool = False, num_stages: int = 4,
                    pretrained_cfg: Optional[object] = None, pretrained_cfg_overlay: Optional[dict] = None,
                    **kwargs):
    name = timm_name(variant)
    if pretrained:
        cfg = resolve_pretrained_cfg(name, pretrained_cfg=pretrained_cfg,
                                     pretrained_cfg_overlay=pretrained_cfg_overlay)
        if cfg.file and not cfg.state_dict:
            # timm reads the file itself, with torch's bare errors; read the header first (memory-mapped,
            # so nearly free) to turn a missing, truncated or foreign file into an error naming it.
            read_checkpoint(cfg.file, mmap=not cfg.file.endswith('.safetensors'))
    out_indices = kwargs.pop('out_indices', tuple(range(num_stages)))
    family = sys.modules[model_cls.__module__]

    def filter_fn(state_dict, model):
        # timm hands over URL and Hub files as stored: unwrap {'model': ...} / {'state_dict': ...} first
        return family.checkpoint_filter_fn(unwrap_state_dict(state_dict), model)

    return build_model_with_cfg(
        model_cls, name, pretrained,
        pretrained_cfg=pretrained_cfg,
        pretrained_cfg_overlay=pretrained_cfg_overlay,
        pretrained_filter_fn=filter_fn,
        feature_cfg=dict(feature_cls='getter', out_indices=out_indices),
        **kwargs,
    )
