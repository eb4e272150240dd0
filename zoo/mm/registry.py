"""The ``zoo`` scope of OpenMMLab's registries.

Each registry is a child of mmengine's root registry, so mmdet's and mmseg's builders find
``type='zoo.Backbone'``, ``constructor='zoo.LayerDecayOptimizerConstructor'`` and
``type='zoo.CPUDistributedDataParallel'`` from their own scopes."""
from mmengine.registry import MODEL_WRAPPERS as MMENGINE_MODEL_WRAPPERS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS as MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS
from mmengine.registry import Registry

__all__ = ['MODELS', 'MODEL_WRAPPERS', 'OPTIM_WRAPPER_CONSTRUCTORS']

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='zoo', locations=['zoo.mm'])
OPTIM_WRAPPER_CONSTRUCTORS = Registry('optimizer wrapper constructor', parent=MMENGINE_OPTIM_WRAPPER_CONSTRUCTORS,
                                      scope='zoo', locations=['zoo.mm'])
MODEL_WRAPPERS = Registry('model_wrapper', parent=MMENGINE_MODEL_WRAPPERS, scope='zoo', locations=['zoo.mm'])
