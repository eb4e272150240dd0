"""Top-1 / top-5 of a zoo model on an image folder, in train or deploy form, from a training checkpoint of
``tools/train.py``, a zoo checkpoint or the authors' released file.

A training checkpoint carries its class map (class names in index order): the split is labelled through it, by
name, so a split that lacks some classes keeps every label right (the missing classes are not evaluated), and a
class the model was not trained on is an error. Other files carry no class map: the class folders are taken in
timm's order (sorted), and there may not be more of them than the model has classes."""
import argparse
import dataclasses
import logging
import os
from typing import Any, Dict, List, Optional, Tuple

import torch
from timm.data import resolve_data_config

from ..deploy import reparameterize
from ..models import create_model, load_checkpoint
from ..weights import CheckpointError, read_checkpoint
from .data import (DatasetError, apply_class_map, build_dataset, build_loader, class_names_of, is_image_folder,
                   split_folder)
from .engine import amp_dtype_for, eval_transform, evaluate, load_training_checkpoint, setup_distributed

_logger = logging.getLogger('zoo.train')

__all__ = ['WeightsSource', 'add_weights_arguments', 'build_evaluated_model', 'read_training_checkpoint', 'resolve_weights', 'validate']


def read_training_checkpoint(path: str) -> Optional[Dict[str, Any]]:
    """The contents of ``path`` if it is a checkpoint written by ``tools/train.py``, else None (a plain
    state dict, or a file that only loads with pickles allowed, as some official releases)."""
    try:
        return load_training_checkpoint(path, option='--checkpoint')
    except Exception:
        return None


def add_weights_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of the model, its weights and its input that :func:`resolve_weights` and
    :func:`build_evaluated_model` take (``tools/validate.py``, ``tools/predict.py``)."""
    parser.add_argument('--model', default=None, help="zoo model name (default: the training checkpoint's)")
    parser.add_argument('--checkpoint', default='', help='training checkpoint of tools/train.py, zoo or official '
                                                         'file (none: random init)')
    parser.add_argument('--use-ema', action='store_true', help="the training checkpoint's EMA weights")
    parser.add_argument('--num-classes', type=int, default=None)
    parser.add_argument('--img-size', type=int, default=None)
    parser.add_argument('--crop-pct', type=float, default=None)
    parser.add_argument('--trust-pickle', action='store_true', help='allow pickled objects in a checkpoint you trust')


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
                    trust_pickle: bool = False) -> WeightsSource:
    """Read ``checkpoint`` (``--checkpoint``): a training checkpoint brings its model name and class count, each
    overridden by the arguments given (a model name that differs is an error); other files need ``model_name``."""
    state = read_training_checkpoint(checkpoint) if checkpoint else None
    weights = None
    if checkpoint and state is None:  # a zoo or official file, or a training checkpoint that cannot be read
        try:
            weights = read_checkpoint(checkpoint, trust_pickle=trust_pickle)
        except (FileNotFoundError, CheckpointError) as e:
            raise type(e)(f'--checkpoint {checkpoint}: {e}') from e
    if state is not None:
        if model_name and model_name != state['arch']:
            raise ValueError(f'{checkpoint} was trained as {state["arch"]}, not {model_name}')
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


def validate(data_dir: str, model_name: Optional[str] = None, checkpoint: str = '', split: str = 'val',
             deploy: bool = False, use_ema: bool = False, num_classes: Optional[int] = None,
             img_size: Optional[int] = None, crop_pct: Optional[float] = None, batch_size: int = 64,
             workers: int = 2, amp: bool = False, channels_last: bool = False, device: str = '',
             dataset: str = '', trust_pickle: bool = False) -> Dict[str, Any]:
    """Evaluate and return ``{'model', 'form', 'top1', 'top5', 'loss', 'images', ...}``.

    A training checkpoint brings its model name, class count and data config (image size, crop, mean/std),
    each overridden by the arguments given; other files are loaded through the family's checkpoint filter
    (official key layouts map onto the zoo's)."""
    if is_image_folder(dataset, data_dir):
        split_folder(data_dir, split, '--split')  # before any work
    device_, world_size, rank, _ = setup_distributed(device)
    source = resolve_weights(model_name, checkpoint, num_classes, trust_pickle)
    # the split, labelled through the training checkpoint's class map
    ds = build_dataset(dataset, data_dir, split, '--split', is_training=False)
    if source.class_names is not None:
        apply_class_map(ds, source.class_names, '--split', source=f'--checkpoint {checkpoint}', split=split,
                        warn=rank == 0)
    else:
        found = class_names_of(ds)
        if found is not None and len(found) > source.num_classes:
            raise DatasetError(f'--split {split}: {len(found)} class folders, more than the {source.num_classes} '
                               'classes of the model; evaluate on the classes it was trained on')
    model, data_config = build_evaluated_model(source, use_ema, img_size, crop_pct)
    model_name = source.model_name
    form = 'deploy' if deploy else 'train'
    model = reparameterize(model) if deploy else model
    model.to(device_)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    ds.transform = eval_transform(data_config)
    loader = build_loader(ds, batch_size, False, world_size, rank, workers)
    amp_dtype = amp_dtype_for(device_) if amp else None
    metrics = evaluate(model, loader, device_, amp_dtype, channels_last, world_size)
    return dict(model=model_name, form=form, checkpoint=source.checkpoint,
                weights='ema' if use_ema else 'model', **metrics,
                input_size=list(data_config['input_size']), crop_pct=data_config['crop_pct'])
