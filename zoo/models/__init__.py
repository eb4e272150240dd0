"""Models: the family registry and one file per family; importing a family file registers its record and
variants. The order here is the order of families in docs and tables."""
from . import convnext, inceptionnext, unireplknet, lsnet, shvit, fasternet, litv2, biformer  # noqa: F401
from .loading import load_checkpoint
from .registry import (NAMESPACE, Family, UnknownModelError, create_model, families, family_of, is_zoo_model,
                       list_models, register_family, timm_name, zoo_entrypoint)

__all__ = ['NAMESPACE', 'Family', 'UnknownModelError', 'create_model', 'families', 'family_of', 'is_zoo_model',
           'list_models', 'load_checkpoint', 'register_family', 'timm_name', 'zoo_entrypoint']
