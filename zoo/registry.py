"""The zoo's model registry, mirrored into timm's under the ``zoo/`` namespace.

Family files decorate their variant functions with :func:`register_zoo_model` instead of timm's
``register_model``. The variant is kept in the zoo's own table (``zoo.create_model('lsnet_t')``) and is
registered in timm as ``zoo/lsnet_t``, with the family's pretrained cfgs, so ``timm.create_model`` and
``timm.list_models('zoo/*')`` see it. A zoo name never replaces a timm name: timm's ``convnext_tiny`` stays
timm's, the zoo's is ``zoo/convnext_tiny``.
"""
import difflib
import fnmatch
import sys
from typing import Callable, Dict, List, Optional

import timm
from timm.models import register_model

from ._timm_names import NAMESPACE, PREFIX, install

__all__ = ['register_zoo_model', 'timm_name', 'create_model', 'list_models', 'is_zoo_model', 'UnknownModelError']

install()

# timm's register_model reads `default_cfgs` of the entry point's module; this module is that module for
# every zoo entry point, so timm lists them all under module 'registry'.
default_cfgs: Dict[str, object] = {}

_entrypoints: Dict[str, Callable] = {}


class UnknownModelError(RuntimeError):
    """Raised for a name that is not a zoo model."""


def timm_name(name: str) -> str:
    """The name a zoo model has in timm's registry (``lsnet_t`` -> ``zoo/lsnet_t``)."""
    return name if name.startswith(PREFIX) else PREFIX + name


def register_zoo_model(fn: Callable) -> Callable:
    name = fn.__name__
    if name in _entrypoints:
        raise RuntimeError(f'zoo model {name!r} is registered twice ({fn.__module__} and '
                           f'{_entrypoints[name].__module__})')
    family_cfgs = getattr(sys.modules[fn.__module__], 'default_cfgs', {})
    if name in family_cfgs:
        for tag, cfg in family_cfgs[name].cfgs.items():
            # timm completes an org-only hub id ('timm/') with the registry name, which would give
            # 'timm/zoo/<name>.<tag>'; the file sits under the plain name
            if cfg.hf_hub_id and cfg.hf_hub_id.endswith('/'):
                cfg.hf_hub_id = f'{cfg.hf_hub_id}{name}.{tag}' if tag else f'{cfg.hf_hub_id}{name}'
        default_cfgs[timm_name(name)] = family_cfgs[name]

    def entrypoint(pretrained=False, **kwargs):
        return fn(pretrained=pretrained, **kwargs)

    entrypoint.__name__ = entrypoint.__qualname__ = timm_name(name)
    entrypoint.__module__ = __name__
    entrypoint.__doc__ = fn.__doc__
    entrypoint.__wrapped__ = fn
    register_model(entrypoint)
    __all__.remove(entrypoint.__name__)  # register_model exports it; 'zoo/..' is no Python name
    _entrypoints[name] = fn
    return fn


def is_zoo_model(name: str) -> bool:
    arch = name[len(PREFIX):] if name.startswith(PREFIX) else name
    return arch.split('.', 1)[0] in _entrypoints


def zoo_entrypoint(name: str) -> Callable:
    """The variant function registered under ``name`` (namespace and tag allowed)."""
    if not is_zoo_model(name):
        create_model(name)  # raises UnknownModelError with the close matches
    arch = name[len(PREFIX):] if name.startswith(PREFIX) else name
    return _entrypoints[arch.split('.', 1)[0]]


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
        arch = model_name[len(PREFIX):] if model_name.startswith(PREFIX) else model_name
        close = difflib.get_close_matches(arch.split('.', 1)[0], list(_entrypoints), n=5, cutoff=0.5)
        hint = f' Close matches: {", ".join(close)}.' if close else f' Known models: {", ".join(sorted(_entrypoints))}.'
        raise UnknownModelError(f'Unknown zoo model {model_name!r}.{hint}')
    return timm.create_model(timm_name(model_name), pretrained=pretrained, **kwargs)

