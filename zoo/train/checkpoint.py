"""Checkpoints of ``tools/train.py`` (written atomically, read back with ``weights_only=True``), and the weights a
command names: a training checkpoint, a zoo or official file, or none, resolved to the model they are for
(:func:`resolve_weights`) and loaded into it (:func:`build_evaluated_model`). ``tools/validate.py``,
``tools/predict.py`` and a distillation teacher load weights this one way."""
import contextlib
import dataclasses
import os
import pickle
import uuid
import zipfile
from typing import Any, Dict, List, Optional, Tuple

import torch
from timm.data import resolve_data_config

from ..models import create_model, load_checkpoint
from ..weights import CheckpointError, read_checkpoint

__all__ = ['WeightsSource', 'build_evaluated_model', 'load_training_checkpoint', 'read_training_checkpoint',
           'resolve_weights', 'save_training_checkpoint']


def save_training_checkpoint(path: str, state: Dict[str, Any]) -> None:
    """Write atomically: into a temporary file of this call's own (``<path>.<pid>.<random>.tmp``), synced, then
    renamed over ``path``. A run killed or failing while saving (a full disk) keeps its previous checkpoint, and
    two writers never rename each other's file."""
    tmp = f'{path}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp'
    try:
        with open(tmp, 'xb') as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        if isinstance(e, OSError):
            raise OSError(e.errno, f'could not write the checkpoint {path} ({e.strerror or e}); the previous '
                                   f'{os.path.basename(path)}, if any, is left as it was') from e
        raise


def load_training_checkpoint(path: str, option: str = '--resume') -> Dict[str, Any]:
    """A checkpoint written by :func:`train` (read with ``weights_only=True``: it holds only tensors and
    plain Python values). Errors name ``option``, the argument that gave ``path``."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f'{option} {path}: checkpoint not found')
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError, OSError) as e:
        reason = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
        raise CheckpointError(f'{option} {path}: the file cannot be read as a checkpoint, it is truncated or '
                              f'corrupt ({reason}); give an intact one (e.g. model_best.pth)') from e
    if not isinstance(state, dict):
        raise ValueError(f'{option} {path} holds a {type(state).__name__}, not a training checkpoint of '
                         'tools/train.py')
    missing = [k for k in ('arch', 'state_dict', 'optimizer', 'epoch', 'num_updates') if k not in state]
    if missing:
        raise ValueError(f'{option} {path} is not a training checkpoint of tools/train.py (no '
                         f'{", ".join(missing)}); to start from its weights use --initial-checkpoint')
    return state


def read_training_checkpoint(path: str) -> Optional[Dict[str, Any]]:
    """The contents of ``path`` if it is a checkpoint written by ``tools/train.py``, else None (a plain
    state dict, or a file that only loads with pickles allowed, as some official releases)."""
    try:
        return load_training_checkpoint(path)
    except Exception:
        return None


@dataclasses.dataclass
class WeightsSource:
    """What a checkpoint argument resolves to: the model it is for, its class count, and its weights (a training
    checkpoint's ``state``, or the ``weights`` of a zoo or official file, or neither: random init)."""
    model_name: str
    num_classes: int
    checkpoint: str = ''
    state: Optional[Dict[str, Any]] = None
    weights: Optional[Dict[str, Any]] = None

    @property
    def class_names(self) -> Optional[List[str]]:
        """The training checkpoint's class map (class names in index order), if it has one."""
        return self.state.get('class_names') if self.state is not None else None

    @property
    def data_config(self) -> Dict[str, Any]:
        return dict(self.state.get('data_config') or {}) if self.state is not None else {}


def resolve_weights(model_name: Optional[str], checkpoint: str = '', num_classes: Optional[int] = None,
                    trust_pickle: bool = False, option: str = '--checkpoint') -> WeightsSource:
    """Read ``checkpoint`` (given as ``option``): a training checkpoint brings its model name and class count, each
    overridden by the arguments given (a model name that differs is an error); other files need ``model_name``."""
    state = read_training_checkpoint(checkpoint) if checkpoint else None
    weights = None
    if checkpoint and state is None:  # a zoo or official file, or a training checkpoint that cannot be read
        try:
            weights = read_checkpoint(checkpoint, trust_pickle=trust_pickle)
        except (FileNotFoundError, CheckpointError) as e:
            raise type(e)(f'{option} {checkpoint}: {e}') from e
    if state is not None:
        if model_name and model_name != state['arch']:
            raise ValueError(f'{option} {checkpoint} was trained as {state["arch"]}, not {model_name}')
        model_name = state['arch']
        num_classes = num_classes or state['num_classes']
    if not model_name:
        raise ValueError('name the model (--model), or pass a training checkpoint of tools/train.py')
    return WeightsSource(model_name, num_classes or 1000, os.fspath(checkpoint) if checkpoint else '', state, weights)


def build_evaluated_model(source: WeightsSource, use_ema: bool = False, img_size: Optional[int] = None,
                          crop_pct: Optional[float] = None) -> Tuple[torch.nn.Module, Dict[str, Any]]:
    """The model of ``source`` with its weights loaded (the EMA weights with ``use_ema``), in eval mode, and its
    resolved data config: the training checkpoint's, else the model's pretrained cfg, with the size and crop
    given."""
    model = create_model(source.model_name, num_classes=source.num_classes)
    checkpoint = source.checkpoint
    if source.state is not None:
        key = 'state_dict_ema' if use_ema else 'state_dict'
        if key not in source.state:
            raise ValueError(f'{checkpoint} holds no EMA weights')
        load_checkpoint(model, source.state[key], source=f'{checkpoint}[{key}]')
    elif checkpoint:
        if use_ema:
            raise ValueError('--use-ema needs a training checkpoint of tools/train.py')
        load_checkpoint(model, source.weights, source=checkpoint)
    overrides = {k: v for k, v in source.data_config.items() if v is not None}
    if img_size:
        overrides['input_size'] = (3, img_size, img_size)
    if crop_pct:
        overrides['crop_pct'] = crop_pct
    return model.eval(), resolve_data_config(overrides, model=model)
