"""Top-1 / top-5 of a zoo model on an image folder, in train or deploy form, from a training checkpoint of
``tools/train.py``, a zoo checkpoint or the authors' released file.

A training checkpoint carries its class map (class names in index order): the split is labelled through it, by
name, so a split that lacks some classes keeps every label right (the missing classes are not evaluated), and a
class the model was not trained on is an error. Other files carry no class map: the class folders are taken in
timm's order (sorted), and there may not be more of them than the model has classes."""
import argparse
import logging
from typing import Any, Dict, Optional

import torch

from ..deploy import reparameterize
from .checkpoint import build_evaluated_model, resolve_weights
from .data import (DatasetError, apply_class_map, build_dataset, build_loader, class_names_of, is_image_folder,
                   split_folder)
from .engine import amp_dtype_for, eval_transform, evaluate, setup_distributed

_logger = logging.getLogger('zoo.train')

__all__ = ['add_weights_arguments', 'validate']


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
