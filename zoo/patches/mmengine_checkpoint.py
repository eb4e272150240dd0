"""mmengine 0.10.7 checkpoints under torch >= 2.6.

torch 2.6 made ``torch.load`` default to ``weights_only=True``; mmengine 0.10.7 calls it without the
argument, and its own checkpoints hold, besides tensors, the message hub's ``HistoryBuffer`` logs and numpy
arrays and scalars (and ``getattr(HistoryBuffer, 'min')``-style references to its statistics methods), so
``Runner.resume`` / ``load_from`` fail on the files the Runner wrote. Rather than unpickling anything
(``weights_only=False``), :func:`patch_mmengine_local_loader` registers a local-file loader that still reads
with ``weights_only=True`` and allows exactly those types. mmengine is imported when the patch is applied,
so this module costs nothing to import without the ``mm`` extra."""
import os
import pickle

import numpy as np
import torch

from . import installed_version, require_version

__all__ = ['SUPPORTED', 'TESTED', 'mmengine_safe_globals', 'load_mmengine_checkpoint', 'patch_mmengine_local_loader']

# the Runner's checkpoint contents and CheckpointLoader.register_scheme as in 0.10.x
SUPPORTED = '>=0.10.4,<0.11'
TESTED = '0.10.7'


def _numpy_globals():
    multiarray = np._core.multiarray if hasattr(np, '_core') else np.core.multiarray
    dtypes = [type(np.dtype(t)) for t in ('float16', 'float32', 'float64', 'int8', 'int16', 'int32', 'int64',
                                           'uint8', 'bool')]
    return [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype, *dtypes]


def _history_buffer_getattr(obj, name: str):
    """``getattr`` as a checkpoint may use it: only to name HistoryBuffer's statistics methods (``min``, ``max``,
    ``mean``, ``current``), which a buffer's pickled state refers to."""
    from mmengine.logging import HistoryBuffer

    if obj is HistoryBuffer and name in ('min', 'max', 'mean', 'current'):
        return getattr(obj, name)
    raise pickle.UnpicklingError(f'refused getattr({obj!r}, {name!r}) in an mmengine checkpoint')


def mmengine_safe_globals():
    """A context in which ``torch.load(weights_only=True)`` accepts mmengine's checkpoint contents: what the
    Runner writes besides tensors and plain Python containers, with the builtin getattr replaced by one that
    reaches nothing but HistoryBuffer's methods."""
    from mmengine.logging import HistoryBuffer

    allowed = [HistoryBuffer, *_numpy_globals(), (_history_buffer_getattr, 'builtins.getattr')]
    return torch.serialization.safe_globals(allowed)


def load_mmengine_checkpoint(filename, map_location=None):
    """mmengine's local-file loader, reading with ``weights_only=True`` and mmengine's own types allowed."""
    filename = os.path.expanduser(filename)
    if not os.path.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    with mmengine_safe_globals():
        return torch.load(filename, map_location=map_location, weights_only=True)


def patch_mmengine_local_loader(mmengine_version: str = None) -> None:
    """Make :func:`load_mmengine_checkpoint` mmengine's loader for local paths (idempotent). Raises
    ``UnsupportedVersionError`` on an mmengine outside :data:`SUPPORTED`."""
    require_version('mmengine', mmengine_version or installed_version('mmengine'), SUPPORTED, TESTED,
                    'zoo.patches.mmengine_checkpoint')
    from mmengine.runner.checkpoint import CheckpointLoader

    CheckpointLoader.register_scheme(prefixes='', loader=load_mmengine_checkpoint, force=True)


