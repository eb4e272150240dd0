"""Loading a checkpoint into a model that exists: the family's key mapping, then the whole state dict
checked against the model before anything is copied."""
import contextlib
import os
import warnings
from typing import Optional

import torch.nn as nn

from ..weights import check_state_dict, partial_loading, read_checkpoint, unwrap_state_dict, verify_checksum
from .registry import family_of

__all__ = ['load_checkpoint']


def load_checkpoint(model: nn.Module, path_or_state_dict, strict: bool = True,
                    source: Optional[str] = None, checksum: Optional[str] = None,
                    trust_pickle: bool = False) -> nn.Module:
    """Load an official or zoo checkpoint (file path or state dict) into a zoo model.

    The family's checkpoint filter maps official key names; with ``strict`` the whole state dict is
    checked before any tensor is copied, so a checkpoint that does not fit raises and leaves the model as
    it was. ``checksum`` (a file's sha256, or its first 8+ hex digits) is verified before the file is read.
    A file holding both ``model`` and ``model_ema`` loads ``model``, as ``timm.create_model(pretrained=True)``
    does (:func:`zoo.weights.unwrap_state_dict`).

    ``strict=False`` loads the keys that fit: the model's keys missing from the checkpoint keep their values
    and the checkpoint's keys the model lacks are dropped, both listed in a warning; a mis-shaped key, or a
    checkpoint of which no key fits, still raises before anything is copied."""
    if not isinstance(strict, bool):
        raise TypeError(f'strict={strict!r} is not allowed; strict must be True or False')
    checkpoint_filter = family_of(model).checkpoint_filter
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        source = source or os.fspath(path_or_state_dict)
        if checksum is not None:
            verify_checksum(path_or_state_dict, checksum)
        state_dict = read_checkpoint(path_or_state_dict, trust_pickle=trust_pickle)
    else:
        if checksum is not None:
            raise ValueError('checksum verifies a file; a state dict was given')
        state_dict = unwrap_state_dict(path_or_state_dict, source=source or 'state dict')
    with partial_loading() if not strict else contextlib.nullcontext():
        state_dict = checkpoint_filter(state_dict, model)
    check_state_dict(state_dict, model, source=source or 'state dict', partial=not strict)
    if not strict:
        expected = model.state_dict()
        unexpected = [k for k in state_dict if k not in expected]
        state_dict = {k: v for k, v in state_dict.items() if k in expected}
        missing = [k for k in expected if k not in state_dict]
        if missing or unexpected:
            warnings.warn(f'partial load of {source or "state dict"}: {len(state_dict)} of {len(expected)} keys '
                          f'loaded; missing (kept as they were): {missing or "none"}; unexpected (dropped): '
                          f'{unexpected or "none"}', stacklevel=2)
    model.load_state_dict(state_dict, strict=strict)
    return model
