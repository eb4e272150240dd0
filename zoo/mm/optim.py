"""Layer-wise learning-rate decay for detectors and segmentors on ``zoo.Backbone``.

The authors of ConvNeXt and UniRepLKNet train their dense-prediction models with mmseg's
``LearningRateDecayOptimizerConstructor``, which finds layers by their official parameter names
(``backbone.downsample_layers.i``, ``backbone.stages.i.j``). This constructor gives the same layer ids from
the zoo's names (``backbone.model.stem``, ``backbone.model.stages.i.downsample``,
``backbone.model.stages.i.blocks.j``), so the papers' ``paramwise_cfg`` carries over unchanged::

    optim_wrapper = dict(constructor='zoo.LayerDecayOptimizerConstructor',
                         paramwise_cfg=dict(decay_rate=0.95, decay_type='layer_wise', num_layers=6))

``layer_wise``: stem 0; stage 0 blocks 1; stage 1 (downsample and blocks) 2; stage 2 downsample 3, its block
``j`` ``3 + j // 3``; the last stage ``num_layers``; everything outside the backbone ``num_layers + 1``.
``stage_wise``: stem and downsamples 0, stage ``i`` blocks ``i + 1``, outside ``num_layers + 1``.
A parameter with id ``l`` gets ``lr * decay_rate ** (num_layers + 1 - l)``; 1-D parameters and biases get
no weight decay, as there.
"""
import re
from typing import List

import torch.nn as nn
from mmengine.dist import get_dist_info
from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor

from .registry import OPTIM_WRAPPER_CONSTRUCTORS

__all__ = ['LayerDecayOptimizerConstructor', 'layer_id']

_STEM = re.compile(r'^backbone\.model\.stem\.')
_DOWNSAMPLE = re.compile(r'^backbone\.model\.stages\.(\d+)\.downsample\.')
_BLOCK = re.compile(r'^backbone\.model\.stages\.(\d+)\.blocks\.(\d+)\.')


def layer_id(name: str, num_layers: int, decay_type: str = 'layer_wise', num_stages: int = 4) -> int:
    """The layer id of parameter ``name`` (a detector's or segmentor's name) for layer-wise lr decay."""
    if decay_type not in ('layer_wise', 'stage_wise'):
        raise ValueError(f"decay_type must be 'layer_wise' or 'stage_wise', got {decay_type!r}")
    last = num_stages - 1
    if _STEM.match(name):
        return 0
    m = _DOWNSAMPLE.match(name)
    if m:
        stage = int(m.group(1))
        if decay_type == 'stage_wise':
            return 0
        return {0: 0, 1: 2, 2: 3}.get(stage, num_layers) if stage < last else num_layers
    m = _BLOCK.match(name)
    if m:
        stage, block = int(m.group(1)), int(m.group(2))
        if decay_type == 'stage_wise':
            return stage + 1
        if stage == last:
            return num_layers
        return {0: 1, 1: 2}.get(stage, 3 + block // 3)
    if name.startswith('backbone.model.'):
        raise ValueError(f'{name}: no layer id for this backbone parameter (stem, stages.i.downsample and '
                         f'stages.i.blocks.j are known)')
    return num_layers + 1


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimizerConstructor(DefaultOptimWrapperConstructor):
    """``paramwise_cfg``: ``decay_rate``, ``num_layers``, ``decay_type`` ('layer_wise' or 'stage_wise')."""

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '', is_dcn_module=None, **kwargs):
        cfg = self.paramwise_cfg
        for key in ('decay_rate', 'num_layers'):
            if key not in cfg:
                raise KeyError(f'{type(self).__name__} needs paramwise_cfg.{key}')
        num_layers, decay_rate = cfg['num_layers'], cfg['decay_rate']
        decay_type = cfg.get('decay_type', 'layer_wise')
        backbone = getattr(module, 'backbone', None)
        stages = getattr(getattr(backbone, 'model', None), 'stages', None)
        if stages is None:
            raise TypeError(f'{type(self).__name__} needs a model whose backbone is zoo.Backbone')
        num_stages = len(stages)
        groups = {}
        for name, param in module.named_parameters():
            if not param.requires_grad:
                continue
            no_decay = param.ndim == 1 or name.endswith('.bias')
            lid = layer_id(name, num_layers, decay_type, num_stages)
            key = f'layer_{lid}_{"no_decay" if no_decay else "decay"}'
            if key not in groups:
                scale = decay_rate ** (num_layers + 1 - lid)
                groups[key] = dict(params=[], param_names=[], lr_scale=scale, lr=scale * self.base_lr,
                                   weight_decay=0. if no_decay else self.base_wd)
            groups[key]['params'].append(param)
            groups[key]['param_names'].append(name)
        if get_dist_info()[0] == 0:
            MMLogger.get_current_instance().info(
                'layer-wise lr decay: ' + ', '.join(f'{k} x{g["lr_scale"]:.4g} ({len(g["params"])})'
                                                    for k, g in sorted(groups.items())))
        params.extend(groups.values())


