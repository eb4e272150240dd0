"""Reading checkpoint files and checking that a state dict fits a model before anything is copied.

``torch.nn.Module.load_state_dict`` copies every matching tensor before it reports missing or unexpected
keys, so a checkpoint that does not fit would leave the model half loaded. Every zoo load path checks the
whole state dict first (:func:`check_state_dict`) and only then copies.

A partial load (``zoo.load_checkpoint(strict=False)``, timm's ``pretrained_strict=False``) is asked for
with :func:`partial_loading`: keys missing from the checkpoint keep the model's values and keys the model
lacks are dropped, but a key whose shape differs, or a checkpoint of which no key fits, is still refused
before anything is copied.
"""
import contextlib
import contextvars
import os
import pickle
import zipfile
from typing import Dict, Iterable, Mapping, Optional

import torch
import torch.nn as nn

__all__ = ['CheckpointError', 'CheckpointMismatchError', 'read_checkpoint', 'unwrap_state_dict',
           'check_state_dict', 'check_pretrained', 'partial_loading']

_WRAPPER_KEYS = ('state_dict', 'model', 'module')


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be read as a state dict."""


class CheckpointMismatchError(CheckpointError):
    """A state dict whose keys or shapes do not fit the model."""


def unwrap_state_dict(checkpoint: Mapping, source: str = 'checkpoint') -> Dict[str, torch.Tensor]:
    """Take the model weights out of the usual wrappings: ``{'state_dict': ...}`` (mmengine),
    ``{'model': ...}`` (DeiT-style training scripts, the official releases) or a bare state dict.
    A training checkpoint's ``model`` entry wins over ``model_ema``: the released accuracies are those of
    ``model``."""
    if not isinstance(checkpoint, Mapping):
        raise CheckpointError(f'{source} holds a {type(checkpoint).__name__}, not a state dict')
    for key in _WRAPPER_KEYS:
        inner = checkpoint.get(key)
        if isinstance(inner, Mapping):
            checkpoint = inner
            break
    state_dict = {}
    for k, v in checkpoint.items():
        if not isinstance(v, torch.Tensor):
            raise CheckpointError(f'{source}: entry {k!r} is a {type(v).__name__}, not a tensor')
        state_dict[k[len('module.'):] if k.startswith('module.') else k] = v
    return state_dict


def read_checkpoint(path: str, mmap: bool = False, trust_pickle: bool = False) -> Dict[str, torch.Tensor]:
    """Read a ``.safetensors`` or ``.pth`` file into a state dict, with errors that name the file.
    Pickles are read with ``weights_only=True``: no code from the file runs, and a file holding other Python
    objects is refused. ``trust_pickle=True`` (only for files from a source you trust) unpickles anything."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f'checkpoint file not found: {path}')
    try:
        if path.endswith('.safetensors'):
            import safetensors.torch
            checkpoint = safetensors.torch.load_file(path)
        else:
            # mmap needs the zip format: a legacy (pre-1.6) pickle is read whole, as torch.load reads it
            checkpoint = torch.load(path, map_location='cpu', weights_only=not trust_pickle,
                                    mmap=mmap and zipfile.is_zipfile(path))
    except pickle.UnpicklingError as e:
        if 'allowed global' in str(e) or 'Unsupported global' in str(e):
            raise CheckpointError(
                f'checkpoint {path} holds Python objects other than tensors, which are not loaded from '
                f'untrusted files; re-save it as a plain state dict, or pass trust_pickle=True if you trust its '
                f'source ({str(e).splitlines()[0]})') from e
        # torch's text advises weights_only=False, which is wrong advice for a file that is not a checkpoint
        lines = [line.strip() for line in str(e).splitlines() if line.strip()]
        reason = next((b for a, b in zip(lines, lines[1:]) if a.endswith('WeightsUnpickler error:')), lines[0])
        raise CheckpointError(f'checkpoint {path} is corrupt or not a PyTorch checkpoint ({reason})') from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as e:
        raise CheckpointError(f'checkpoint {path} is corrupt or truncated: {e}') from e
    except Exception as e:  # safetensors raises its own SafetensorError
        if type(e).__name__ == 'SafetensorError':
            raise CheckpointError(f'checkpoint {path} is corrupt: {e}') from e
        raise
    return unwrap_state_dict(checkpoint, source=path)


_PARTIAL = contextvars.ContextVar('zoo_partial_loading', default=False)


@contextlib.contextmanager
def partial_loading():
    """Within this block, :func:`check_state_dict` (and so every family's checkpoint filter) accepts missing and
    unexpected keys."""
    token = _PARTIAL.set(True)
    try:
        yield
    finally:
        _PARTIAL.reset(token)


def _listing(keys: Iterable[str], most: int = 12) -> str:
    keys = list(keys)
    shown = ', '.join(keys[:most])
    return shown + (f', ... ({len(keys) - most} more)' if len(keys) > most else '')


def check_state_dict(state_dict: Mapping[str, torch.Tensor], model: nn.Module,
                     ignore: Iterable[str] = (), source: str = 'checkpoint', partial: Optional[bool] = None) -> None:
    """Raise :class:`CheckpointMismatchError` naming every missing, unexpected and mis-shaped key.
    Keys starting with a prefix in ``ignore`` are not checked (a classifier being replaced, a stem being
    adapted to other input channels). ``partial`` (default: inside :func:`partial_loading`): only mis-shaped
    keys, or no fitting key at all, are refused."""
    partial = _PARTIAL.get() if partial is None else partial
    ignore = tuple(ignore)
    expected = model.state_dict()
    wanted = {k: v for k, v in expected.items() if not k.startswith(ignore)} if ignore else expected
    missing = [k for k in wanted if k not in state_dict]
    unexpected = [k for k in state_dict if k not in expected]
    mis_shaped = [f'{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}' for k, v in wanted.items()
                  if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    arch = getattr(model, 'pretrained_cfg', {}).get('architecture') or type(model).__name__
    if partial and not mis_shaped:
        if len(missing) < len(wanted):
            return
        raise CheckpointMismatchError(f'no key of {source} fits {arch} (a partial load still needs one); nothing '
                                      f'was loaded. Its keys ({len(state_dict)}): {_listing(state_dict)}')
    if missing or unexpected or mis_shaped:
        lines = [f'{source} does not fit {arch}; nothing was loaded.']
        if missing:
            lines.append(f'missing keys ({len(missing)}): {_listing(missing)}')
        if unexpected:
            lines.append(f'unexpected keys ({len(unexpected)}): {_listing(unexpected)}')
        if mis_shaped:
            lines.append(f'shape mismatch (checkpoint vs model) ({len(mis_shaped)}): {_listing(mis_shaped)}')
        raise CheckpointMismatchError('\n'.join(lines))


def _names(entry) -> tuple:
    """A pretrained cfg's module name entry (``classifier``, ``first_conv``): one name or several."""
    return ((entry,) if isinstance(entry, str) else tuple(entry)) if entry else ()


def check_pretrained(state_dict: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """The last step of every family's checkpoint filter: check the mapped state dict against the model.

    timm's ``load_pretrained`` then drops the classifier when ``num_classes`` differs from the checkpoint's
    and adapts the first conv to other input channels, so those two are not held to the model's shapes."""
    cfg = getattr(model, 'pretrained_cfg', None) or {}
    ignore = []
    classifier = cfg.get('classifier')
    classifiers = _names(classifier)
    if classifier and getattr(model, 'num_classes', None) != cfg.get('num_classes'):
        ignore += [c + '.' for c in classifiers]
    if classifier and getattr(model, 'num_classes', None) == 0:
        # a headless model (num_classes=0) has no classifier, nor the head parts that only serve it (LSNet's
        # and SHViT's BatchNorm before the Linear): their checkpoint entries are dropped, not refused
        heads = tuple(c.rsplit('.', 1)[0] + '.' for c in classifiers)
        expected = model.state_dict()
        state_dict = {k: v for k, v in state_dict.items() if k in expected or not k.startswith(heads)}
    first_conv = cfg.get('first_conv')
    if first_conv and getattr(model, 'in_chans', 3) != (cfg.get('input_size') or (3,))[0]:
        ignore += [c + '.weight' for c in _names(first_conv)]
    check_state_dict(state_dict, model, ignore=ignore, source=cfg.get('file') or 'checkpoint')
    return state_dict
