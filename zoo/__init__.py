"""zoo: efficient vision backbones for timm, mmdet and mmseg.

``import zoo`` registers every zoo model in timm's registry as ``zoo/<name>``::

    import timm, zoo
    model = timm.create_model('zoo/lsnet_t')
    deploy = zoo.reparameterize(model)
"""
from .registry import NAMESPACE, UnknownModelError, create_model, list_models, timm_name
from . import models  # noqa: F401  (registers the families)
from .checkpoint import CheckpointError, CheckpointMismatchError, load_checkpoint, read_checkpoint
from .hub import ChecksumMismatchError
from .reparam import reparameterize

__version__ = '0.1.0'

__all__ = [
    'NAMESPACE', 'CheckpointError', 'CheckpointMismatchError', 'ChecksumMismatchError', 'UnknownModelError', 'create_model',
    'list_models', 'load_checkpoint', 'read_checkpoint', 'reparameterize', 'timm_name',
]
