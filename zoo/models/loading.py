"""Loading a checkpoint into a model that exists: the family's key mapping, then the whole state dict
checked against the model before anything is copied."""
import os
from typing import Optional

import torch.nn as nn

from ..weights import check_state_dict, read_checkpoint, unwrap_state_dict, verify_checksum
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
    does (:func:`zoo.weights.unwrap_state_dict`)."""
    checkpoint_filter = family_of(model).checkpoint_filter
    if isinstance(path_or_state_dict, (str, os.PathLike)):
        source = source or os.fspath(path_or_state_dict)
        if checksum:
            verify_checksum(path_or_state_dict, checksum)
        state_dict = read_checkpoint(path_or_state_dict, trust_pickle=trust_pickle)
    else:
        if checksum:
            raise ValueError('checksum verifies a file; a state dict was given')
        state_dict = unwrap_state_dict(path_or_state_dict, source=source or 'state dict')
    state_dict = checkpoint_filter(state_dict, model)
    if strict:
        check_state_dict(state_dict, model, source=source or 'state dict')
    model.load_state_dict(state_dict, strict=strict)
    return model
