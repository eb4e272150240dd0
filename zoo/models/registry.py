"""The zoo's families and models, mirrored into timm's registry under the ``zoo/`` namespace.

Each family file states its facts once, in one :class:`Family` record, and registers it with
:func:`register_family`; its variant functions are decorated with ``FAMILY.register``. Every consumer (the
builder, checkpoint loading, the benchmark, export, the mm backbone, the docs tables, the tests) reads the
record through :func:`family_of` or :func:`families`.

A variant is kept in the zoo's own table (``zoo.create_model('lsnet_t')``) and registered in timm as
``zoo/lsnet_t`` with the family's pretrained cfgs, listed under the family's name
(``timm.list_models(module='lsnet')``). A zoo name never replaces a timm name: timm's ``convnext_tiny`` stays
timm's, the zoo's is ``zoo/convnext_tiny``.
"""
import dataclasses
import difflib
import fnmatch
import sys
import types
from typing import Callable, Dict, List, Mapping, Optional, Tuple, Union

import timm
import torch.nn as nn
from timm.models import register_model

from ..patches.timm_names import NAMESPACE, PREFIX, install
from ._builder import build_zoo_model

__all__ = ['Family', 'register_family', 'families', 'family_of', 'timm_name', 'create_model', 'list_models',
           'is_zoo_model', 'zoo_entrypoint', 'UnknownModelError', 'NAMESPACE']

install()

_families: Dict[str, 'Family'] = {}
_entrypoints: Dict[str, Callable] = {}
_model_family: Dict[str, 'Family'] = {}


class UnknownModelError(RuntimeError):
    """Raised for a name that is not a zoo model."""


@dataclasses.dataclass
class Family:
    """Everything the zoo knows about one family, stated once in the family's file.

    name: the family's module name ('lsnet'); timm lists its models under it.
    display: the name in docs and tables ('LSNet').
    model_cls: the model class every variant builds.
    default_cfgs: the pretrained cfgs (``timm.models.generate_default_cfgs``), keyed by variant and tag.
    checkpoint_filter: ``(state_dict, model) -> state_dict``: maps the authors' and timm's key names to the
        zoo's and checks the result against the model (``zoo.weights.check_pretrained``).
    docs_page: the family's page under docs/.
    num_stages: feature stages (``out_indices`` default).
    timm_equivalents: zoo variant -> timm's model of the same architecture, where timm has one.
    dense_out_norm: the norm the authors' detection / segmentation backbone puts on each output ('ln', 'bn'
        or None).
    dense_ln_eps: the epsilon of that norm where it is a LayerNorm (timm's and ConvNeXt's 1e-6; LITv2's
        ``nn.LayerNorm``, 1e-5).
    dense_norm_keys: the names of the stages' output norms in the authors' detection / segmentation checkpoints
        (ConvNeXt's ``('norm0', 'norm1', 'norm2', 'norm3')``), where their backbone is the classifier's key layout
        plus these norms (``()`` where it adds none; a norm absent from a file, as LITv2's detectors lack
        ``norm0``, is simply not looked for); zoo.Backbone then loads those checkpoints (None: not mapped).
    dense_model_kwargs: model arguments the authors' detection / segmentation backbone was built with where they
        differ from the classifier's (LSNet's 14 x 14 attention-bias tables); zoo.Backbone loads the authors'
        dense checkpoints only when built with them.
    static_hw: why an exported graph is fixed to one input size (None: height and width stay dynamic).
    """
    name: str
    display: str
    model_cls: type
    default_cfgs: Mapping[str, object]
    checkpoint_filter: Callable
    docs_page: str
    num_stages: int = 4
    timm_equivalents: Mapping[str, str] = dataclasses.field(default_factory=dict)
    dense_out_norm: Optional[str] = None
    dense_ln_eps: float = 1e-6
    dense_norm_keys: Optional[Tuple[str, ...]] = None
    dense_model_kwargs: Mapping[str, object] = dataclasses.field(default_factory=dict)
    static_hw: Optional[str] = None
    variants: Dict[str, Callable] = dataclasses.field(default_factory=dict, init=False, repr=False)

    def __post_init__(self):
        if self.dense_out_norm not in (None, 'ln', 'bn'):
            raise ValueError(f"{self.name}: dense_out_norm must be 'ln', 'bn' or None, got {self.dense_out_norm!r}")

    def register(self, fn: Callable) -> Callable:
        """Decorator for a variant function ``name(pretrained=False, **kwargs)``: registers it in the zoo and in
        timm (as ``zoo/<name>``, listed under the family's module name)."""
        name = fn.__name__
        if name in _entrypoints:
            raise RuntimeError(f'zoo model {name!r} is registered twice ({fn.__module__} and '
                               f'{_entrypoints[name].__module__})')
        _register_in_timm(self, name, fn)
        _entrypoints[name] = self.variants[name] = fn
        _model_family[name] = self
        return fn

    def build(self, variant: str, pretrained: bool = False, **kwargs) -> nn.Module:
        """Build ``variant`` of this family through timm's builder (pretrained weights checked and read by the
        zoo, ``features_only`` through the feature getter)."""
        return build_zoo_model(self.model_cls, timm_name(variant), pretrained, self.checkpoint_filter,
                               num_stages=self.num_stages, **kwargs)

    def models(self) -> List[str]:
        """The family's variants, in the order registered (the smallest first)."""
        return list(self.variants)

    @property
    def smallest(self) -> str:
        return next(iter(self.variants))


def register_family(family: Family) -> Family:
    if family.name in _families:
        raise RuntimeError(f'zoo family {family.name!r} is registered twice')
    if any(f.model_cls is family.model_cls for f in _families.values()):
        raise RuntimeError(f'{family.model_cls.__name__} already belongs to another zoo family')
    _families[family.name] = family
    return family


def _timm_module(family: Family) -> types.ModuleType:
    """The module timm files the family's entry points under: timm lists a model under the last component of
    its entry point's ``__module__`` and reads the pretrained cfgs from that module's ``default_cfgs`` by the
    registered name, so each family gets one named after it, holding its cfgs under the ``zoo/`` names."""
    module_name = f'{__name__}.timm.{family.name}'
    module = sys.modules.get(module_name)
    if module is None:
        module = types.ModuleType(module_name, f'timm registry entries of the zoo family {family.display}')
        module.default_cfgs, module.__all__ = {}, []
        sys.modules[module_name] = module
    return module


def _register_in_timm(family: Family, name: str, fn: Callable) -> None:
    module = _timm_module(family)
    if name in family.default_cfgs:
        cfgs = family.default_cfgs[name]
        for tag, cfg in cfgs.cfgs.items():
            # timm completes an org-only hub id ('timm/') with the registry name, which would give
            # 'timm/zoo/<name>.<tag>'; the file sits under the plain name
            if cfg.hf_hub_id and cfg.hf_hub_id.endswith('/'):
                cfg.hf_hub_id = f'{cfg.hf_hub_id}{name}.{tag}' if tag else f'{cfg.hf_hub_id}{name}'
        module.default_cfgs[timm_name(name)] = cfgs

    def entrypoint(pretrained=False, **kwargs):
        return fn(pretrained=pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = timm_name(name)
    entrypoint.__module__ = module.__name__
    entrypoint.__doc__ = fn.__doc__
    entrypoint.__wrapped__ = fn
    register_model(entrypoint)


def families() -> List[Family]:
    """Every registered family, in registration order."""
    return list(_families.values())


def family_of(what: Union[str, nn.Module, type]) -> Family:
    """The family of a zoo model name (``'lsnet_t'``, ``'zoo/lsnet_t.in1k'``), a family name (``'lsnet'``), a
    zoo model, or a zoo model class. A model wrapped by ``features_only`` is looked up by what it wraps."""
    if isinstance(what, str):
        if what in _families:
            return _families[what]
        return _model_family[_arch(zoo_entrypoint(what).__name__)]
    cls = what if isinstance(what, type) else type(what)
    for family in _families.values():
        if issubclass(cls, family.model_cls):
            return family
    if isinstance(what, nn.Module):
        inner = [m for m in what.modules() if m is not what and isinstance(m, tuple(f.model_cls for f in _families.values()))]
        if inner:
            return family_of(inner[0])
    raise TypeError(f'{cls.__name__} is not a zoo model (families: {", ".join(_families)})')


def timm_name(name: str) -> str:
    """The name a zoo model has in timm's registry (``lsnet_t`` -> ``zoo/lsnet_t``)."""
    return name if name.startswith(PREFIX) else PREFIX + name


def _arch(name: str) -> str:
    name = name[len(PREFIX):] if name.startswith(PREFIX) else name
    return name.split('.', 1)[0]


def is_zoo_model(name: str) -> bool:
    return isinstance(name, str) and _arch(name) in _entrypoints


def zoo_entrypoint(name: str) -> Callable:
    """The variant function registered under ``name`` (namespace and tag allowed)."""
    if not is_zoo_model(name):
        _unknown(name)
    return _entrypoints[_arch(name)]


def _unknown(name) -> None:
    if not isinstance(name, str):
        raise UnknownModelError(f'a zoo model name is a str, got {name!r} ({type(name).__name__}); '
                                f'zoo.list_models() lists them')
    close = difflib.get_close_matches(_arch(name), list(_entrypoints), n=5, cutoff=0.5)
    hint = f' Close matches: {", ".join(close)}.' if close else f' Known models: {", ".join(sorted(_entrypoints))}.'
    raise UnknownModelError(f'Unknown zoo model {name!r}.{hint}')


def list_models(pattern: Optional[str] = None, pretrained: bool = False) -> List[str]:
    """Zoo model names (without the namespace), optionally filtered by an fnmatch pattern."""
    names = sorted(_entrypoints)
    if pattern:
        pattern = pattern[len(PREFIX):] if pattern.startswith(PREFIX) else pattern
        names = [n for n in names if fnmatch.fnmatch(n, pattern)]
    if pretrained:
        names = [n for n in names if timm.models.is_model_pretrained(timm_name(n))]
    return names


def create_model(model_name: str, pretrained: bool = False, **kwargs):
    """Create a zoo model by name (``'lsnet_t'``, ``'zoo/lsnet_t'`` or with a tag ``'lsnet_t.in1k'``)."""
    if not is_zoo_model(model_name):
        _unknown(model_name)
    return timm.create_model(timm_name(model_name), pretrained=pretrained, **kwargs)
