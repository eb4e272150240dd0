"""OpenMMLab integration: ``zoo.Backbone`` for mmdet and mmseg, layer-wise lr decay, and mmengine
checkpoint loading under torch >= 2.6. Needs the ``mm`` extra; configs import it through
``custom_imports = dict(imports=['zoo.mm'], allow_failed_imports=False)``."""
from ..patches.mmengine_checkpoint import mmengine_safe_globals, patch_mmengine_local_loader
from .registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS
from .backbone import ZooBackbone, out_channels
from .neck import TransConvFPN
from .optim import LayerDecayOptimizerConstructor, layer_id

patch_mmengine_local_loader()

__all__ = ['MODELS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'ZooBackbone', 'out_channels',
           'LayerDecayOptimizerConstructor', 'layer_id', 'TransConvFPN', 'mmengine_safe_globals', 'patch_mmengine_local_loader']
