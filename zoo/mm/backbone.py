"""``zoo.Backbone``: any zoo model as an mmdet / mmseg backbone.

One class for every family: it builds the registered zoo model without its classifier, keeps the stages up
to the last requested output, and returns ``forward_intermediates`` maps (NCHW, one per ``out_indices``
entry), each through the per-output norm the family's dense-prediction code adds. In a config::

    custom_imports = dict(imports=['zoo.mm'], allow_failed_imports=False)
    model = dict(backbone=dict(type='zoo.Backbone', arch='lsnet_t', out_indices=(0, 1, 2, 3),
                               init_cfg=dict(type='Pretrained', checkpoint='lsnet_t.pth')))

``init_cfg`` takes the authors' ImageNet files and zoo files (mapped by the family's checkpoint filter, the
classifier and the pruned final norm dropped), and checkpoints of detectors / segmentors built on this
class (their ``backbone.`` entries). Every key is checked before anything is copied.

The authors' own detection / segmentation checkpoints load too, for the families whose record names their
per-output norms (``dense_norm_keys``: ConvNeXt's, UniRepLKNet's and LITv2's ``norm0..3``, FasterNet's
``norm0/2/4/6``, BiFormer's ``extra_norms.i``, none for LSNet and SHViT; LSNet's detectors also need
``model_kwargs=dict(attn_resolution=14, attn_bias_resize='matrix')``, the family's ``dense_model_kwargs``):
through ``init_cfg``, and
as part of a whole detector or segmentor (``load_from``, ``tools/mm_test.py``), where the backbone maps its own
entries before they are copied and refuses a file that does not fit, naming the keys.
"""
from typing import List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from ..layers.norm import LayerNorm2d
from ..models import create_model, family_of, zoo_entrypoint
from ..patches.mmengine_checkpoint import mmengine_safe_globals
from ..weights import CheckpointMismatchError, check_state_dict, read_checkpoint
from .registry import MODELS

__all__ = ['ZooBackbone', 'out_channels']

_NORMS = {'ln': lambda c, eps: LayerNorm2d(c, eps=eps), 'bn': lambda c, eps: nn.BatchNorm2d(c)}


def _check_arch(arch: str) -> None:
    if not isinstance(arch, str):
        raise TypeError(f'arch must be a zoo model name (str), got {type(arch).__name__}')
    zoo_entrypoint(arch)  # an unknown name raises UnknownModelError naming the close matches


def out_channels(arch: str, out_indices: Sequence[int] = (0, 1, 2, 3)) -> List[int]:
    """Channels of the maps ``zoo.Backbone(arch, out_indices)`` returns (for the neck's ``in_channels``)."""
    _check_arch(arch)
    with torch.device('meta'):
        info = create_model(arch, num_classes=0).feature_info
    return [info[i]['num_chs'] for i in _normalized_indices(arch, out_indices, len(info))]


def _normalized_indices(arch: str, out_indices: Sequence[int], num_stages: int) -> List[int]:
    if isinstance(out_indices, int):
        out_indices = [out_indices]
    out = []
    for i in out_indices:
        if not isinstance(i, int) or not -num_stages <= i < num_stages:
            raise ValueError(f'out_indices {tuple(out_indices)} out of range for {arch}: it has {num_stages} '
                             f'stages (indices 0..{num_stages - 1})')
        out.append(i % num_stages)
    if len(set(out)) != len(out) or out != sorted(out):
        raise ValueError(f'out_indices {tuple(out_indices)} for {arch} must be increasing stage indices')
    return out


@MODELS.register_module('Backbone')
class ZooBackbone(BaseModule):
    """A zoo model as a multi-scale backbone.

    Args:
        arch: a zoo model name (``zoo.list_models()``).
        out_indices: stages whose outputs are returned (negative counts from the end).
        frozen_stages: stem and stages ``0 .. frozen_stages - 1`` are frozen (weights fixed, norms in eval);
            ``0`` freezes the stem only, ``-1`` nothing (mmdet's ResNet convention).
        norm_eval: keep every BatchNorm in eval mode while training (frozen running statistics).
        out_norm: ``'auto'`` (the family record's ``dense_out_norm``: the norm the authors' detection and
            segmentation code puts on each output), ``'ln'`` (a LayerNorm with the family's ``dense_ln_eps``),
            ``'bn'``, ``None``, or one of these per output (LITv2's detectors: ``(None, 'ln', 'ln', 'ln')``).
        drop_path_rate: stochastic depth of the backbone (the model's default when None).
        with_cp: gradient checkpointing through the model's ``set_grad_checkpointing``.
        model_kwargs: more keyword arguments of the model (e.g. BiFormer's ``n_win``).
        init_cfg: ``dict(type='Pretrained', checkpoint=path)`` loads a checkpoint in :meth:`init_weights`.
    """

    def __init__(self, arch: str, out_indices: Sequence[int] = (0, 1, 2, 3), frozen_stages: int = -1,
                 norm_eval: bool = False, out_norm: Union[None, str, Sequence[Optional[str]]] = 'auto', drop_path_rate: Optional[float] = None,
                 with_cp: bool = False, model_kwargs: Optional[dict] = None, init_cfg: Optional[dict] = None):
        super().__init__(init_cfg=init_cfg)
        _check_arch(arch)
        self.arch = arch
        self.model_kwargs = dict(model_kwargs or {})
        if drop_path_rate is not None:
            self.model_kwargs['drop_path_rate'] = drop_path_rate
        model = create_model(arch, num_classes=0, **self.model_kwargs)
        num_stages = len(model.stages)
        self.out_indices = _normalized_indices(arch, out_indices, num_stages)
        if not -1 <= frozen_stages <= num_stages:
            raise ValueError(f'frozen_stages={frozen_stages} out of range for {arch} (-1 .. {num_stages})')
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        # the final norm and the classifier go; stages after the last output go too (no unused parameters
        # under DistributedDataParallel)
        model.prune_intermediate_layers(self.out_indices, prune_norm=True, prune_head=True)
        self.model = model
        if with_cp:
            model.set_grad_checkpointing(True)
        family = family_of(model)
        if out_norm == 'auto':
            out_norm = family.dense_out_norm
        self.out_channels = [model.feature_info[i]['num_chs'] for i in self.out_indices]
        kinds = list(out_norm) if isinstance(out_norm, (list, tuple)) else [out_norm] * len(self.out_indices)
        if len(kinds) != len(self.out_indices) or any(k not in (None, *_NORMS) for k in kinds):
            raise ValueError(f"out_norm must be 'auto', 'ln', 'bn', None or one of these per output "
                             f"({len(self.out_indices)} outputs), got {out_norm!r}")
        # nn.Identity keeps the index of each output's norm in its name (norms.i)
        self.norms = None if not any(kinds) else nn.ModuleList(
            nn.Identity() if k is None else _NORMS[k](c, family.dense_ln_eps) for k, c in zip(kinds, self.out_channels))
        self._freeze_stages()
        # a whole detector's / segmentor's state dict in the authors' layout: mapped before it is copied
        self._register_load_state_dict_pre_hook(self._map_authors_dense_entries)

    # ------------------------------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor):
        maps = self.model.forward_intermediates(x, indices=self.out_indices, intermediates_only=True,
                                                stop_early=True)
        if self.norms is not None:
            maps = [norm(m) for norm, m in zip(self.norms, maps)]
        return tuple(maps)

    # ---------------------------------------------------------------------------------------- training
    def _frozen_modules(self) -> List[nn.Module]:
        if self.frozen_stages < 0:
            return []
        return [self.model.stem, *self.model.stages[:self.frozen_stages]]

    def _freeze_stages(self) -> None:
        for m in self._frozen_modules():
            m.eval()
            for p in m.parameters():
                p.requires_grad = False

    def train(self, mode: bool = True):
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for m in self.modules():
                if isinstance(m, nn.modules.batchnorm._BatchNorm):
                    m.eval()
        return self

    # ----------------------------------------------------------------------------------------- weights
    def init_weights(self):
        cfg = self.init_cfg or {}
        if cfg.get('type') != 'Pretrained':
            # the zoo model initialised itself when built; mmengine's other initialisers still apply
            if cfg:
                super().init_weights()
            return
        path = cfg.get('checkpoint')
        if not path:
            raise ValueError(f"init_cfg {cfg} names no checkpoint (dict(type='Pretrained', checkpoint=path))")
        self.load_checkpoint(path)
        self._is_init = True

    def load_checkpoint(self, path: str) -> None:
        """Load an ImageNet checkpoint (official or zoo) or a detector / segmentor checkpoint of this class;
        nothing is copied unless every key fits."""
        with mmengine_safe_globals():
            state_dict = read_checkpoint(path)
        if any(k.startswith('backbone.') for k in state_dict):
            # a detector / segmentor: built on zoo.Backbone (its backbone entries are this module's state), or the
            # authors' own
            state_dict = {k[len('backbone.'):]: v for k, v in state_dict.items() if k.startswith('backbone.')}
            if not _is_zoo_layout(state_dict):
                state_dict = self._from_authors_dense(state_dict, path)
            check_state_dict(state_dict, self, source=path)
            self.load_state_dict(state_dict)
            return
        # an image classifier's file
        state_dict = self._trunk_entries(state_dict, final_norm=True)
        check_state_dict(state_dict, self.model, source=path)
        self.model.load_state_dict(state_dict)

    def _trunk_entries(self, state_dict, final_norm: bool, context: str = ''):
        """``state_dict`` (a classifier's file, or the trunk of the authors' detector, which has no final norm)
        mapped by the family's checkpoint filter against the unpruned headless model (built on the meta device,
        no memory), then what this backbone's pruned model keeps of it."""
        with torch.device('meta'):
            full = create_model(self.arch, num_classes=0, **self.model_kwargs)
            if not final_norm:
                full.prune_intermediate_layers(len(full.stages), prune_norm=True, prune_head=True)
        try:
            state_dict = family_of(full).checkpoint_filter(state_dict, full)
        except CheckpointMismatchError as e:
            raise CheckpointMismatchError(f'{e}\n({context}zoo.Backbone arch={self.arch!r})') from None
        own = self.model.state_dict()
        return {k: v for k, v in state_dict.items() if k in own}

    def _from_authors_dense(self, state_dict, source: str):
        """The backbone entries (``backbone.`` removed) of the authors' detector or segmentor, in this module's
        names: their output norms (the family's ``dense_norm_keys``) become ``norms.i``, the rest goes through
        the family's checkpoint filter, as the classifier's file would. The caller checks the result against
        this module before anything is copied."""
        family = family_of(self.model)
        if family.dense_norm_keys is None:
            raise CheckpointMismatchError(
                f"{source}: backbone entries in neither the zoo's layout (backbone.model.*) nor a known layout of "
                f"the {family.display} authors' detection / segmentation code (e.g. "
                f"{', '.join(sorted(state_dict)[:3])}); give a classification file or a checkpoint of a model "
                "built on zoo.Backbone")
        wrong = {k: v for k, v in family.dense_model_kwargs.items() if self.model_kwargs.get(k) != v}
        if wrong:
            raise CheckpointMismatchError(
                f"{source}: the {family.display} authors' detection / segmentation backbone is built with "
                f"{_kwargs_text(family.dense_model_kwargs)}, this zoo.Backbone(arch={self.arch!r}) with "
                f"model_kwargs={_kwargs_text(self.model_kwargs)}; nothing was loaded. Build it with "
                f"model_kwargs={_kwargs_text(family.dense_model_kwargs)} (the zoo's configs of their settings do)")
        names = {family.dense_norm_keys[i] + '.': f'norms.{j}.' for j, i in enumerate(self.out_indices)
                 if i < len(family.dense_norm_keys)}
        others = tuple(k + '.' for k in family.dense_norm_keys)  # norms of outputs this backbone does not return
        mapped, trunk = {}, {}
        for k, v in state_dict.items():
            prefix = next((p for p in names if k.startswith(p)), None)
            if prefix is not None:
                mapped[names[prefix] + k[len(prefix):]] = v
            elif not k.startswith(others):
                trunk[k] = v
        trunk = self._trunk_entries(trunk, final_norm=False, context=f'the backbone entries of {source}, ')
        mapped.update({'model.' + k: v for k, v in trunk.items()})
        return mapped

    def _map_authors_dense_entries(self, state_dict, prefix, *args) -> None:
        entries = [k[len(prefix):] for k in state_dict if k.startswith(prefix)]
        if not entries or _is_zoo_layout(entries):
            return
        mapped = self._from_authors_dense({k: state_dict.pop(prefix + k) for k in entries}, 'the checkpoint')
        check_state_dict(mapped, self, source='the checkpoint')
        state_dict.update({prefix + k: v for k, v in mapped.items()})


def _kwargs_text(kwargs) -> str:
    return 'dict(' + ', '.join(f'{k}={v!r}' for k, v in kwargs.items()) + ')'


def _is_zoo_layout(keys) -> bool:
    """Backbone entries (keys) of a model built on zoo.Backbone (``model.*``, ``norms.*``)."""
    return any(k.startswith('model.') for k in keys)
