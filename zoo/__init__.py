"""zoo: efficient vision backbones for timm, mmdet and mmseg.

``import zoo`` registers every zoo model in timm's registry as ``zoo/<name>``::

    import timm, zoo
    model = timm.create_model('zoo/lsnet_t')
    deploy = zoo.reparameterize(model)

The package reads bottom-up (docs/design.md): ``patches`` (third-party patches) -> ``layers`` -> ``weights``
-> ``models`` -> ``deploy`` -> ``measure`` -> the applications ``train`` and ``mm``.
"""
from .weights import CheckpointError, CheckpointMismatchError, ChecksumMismatchError, read_checkpoint
from .models import (NAMESPACE, Family, UnknownModelError, create_model, families, family_of, list_models,
                     load_checkpoint, register_family, timm_name)
from .deploy import quantize, reparameterize

__version__ = '0.1.0'

__all__ = [
    'NAMESPACE', 'CheckpointError', 'CheckpointMismatchError', 'ChecksumMismatchError', 'Family', 'UnknownModelError',
    'create_model', 'families', 'family_of', 'list_models', 'load_checkpoint', 'read_checkpoint', 'register_family',
    'quantize', 'reparameterize', 'timm_name',
]
