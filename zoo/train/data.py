"""Datasets and loaders for classification training, and a small real dataset for tests and demos.

Datasets come from timm (its image dataset and folder reader, and its readers for other formats through
``create_dataset``); the transforms are timm's ``create_transform``; batches are sharded across processes by
``torch.utils.data.DistributedSampler`` (training) or a plain stride (evaluation, no padding, so every image
is counted once).

Image folders (``<data-dir>/<split>/<class>/<image>``) are checked before anything runs: the split folder must
exist, no class folder may be empty, and an evaluation split is labelled through the class map the model was
trained with (class names in index order), by name. Its folders may be a subset of the map (the other classes
are not evaluated, every label stays right); a folder of a class the map does not hold is an error. An image
that cannot be read fails with its path, where timm would log the failure and substitute the next image.
"""
import logging
import os
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence

import numpy as np
import torch
from PIL import Image
from timm.data import ImageDataset, create_dataset
from timm.data.readers.reader_image_folder import ReaderImageFolder
from torch.utils.data import DataLoader, DistributedSampler, Sampler

__all__ = ['make_digits_imagefolder', 'ShardSampler', 'build_loader', 'DatasetError', 'ImageFolderDataset',
           'split_folder', 'is_image_folder', 'build_dataset', 'class_names_of', 'apply_class_map',
           'unreadable_image']

_logger = logging.getLogger('zoo.train')
# the folder names timm's create_dataset also accepts for a split
_SPLIT_SYNONYMS = (('train', 'training'), ('val', 'valid', 'validation', 'eval', 'evaluation'))


class DatasetError(ValueError):
    """A dataset that cannot be used as given: a missing folder, an empty or unknown class folder, an image that
    cannot be read."""


def _listing(names: Sequence[str], most: int = 20) -> str:
    names = list(names)
    return ', '.join(names[:most]) + (f', ... ({len(names) - most} more)' if len(names) > most else '')


def split_folder(data_dir: str, split: str, option: str = '--split') -> str:
    """The folder of ``split`` in the image-folder dataset ``data_dir`` (or one of timm's synonyms for it:
    ``val`` also finds ``validation``, ...). Unlike timm, a missing split folder is an error, not ``data_dir``
    itself: training and evaluation would otherwise read the same images."""
    if not data_dir:
        raise DatasetError('--data-dir is not set: give the dataset root, which holds <split>/<class>/<image>')
    if not os.path.isdir(data_dir):
        raise DatasetError(f'--data-dir {data_dir}: no such folder (expected the dataset root, which holds '
                           f'{split}/<class>/<image>)')
    name = split.split('[')[0]
    candidates = [name] + [s for group in _SPLIT_SYNONYMS if name in group for s in group if s != name]
    for candidate in candidates:
        folder = os.path.join(data_dir, candidate)
        if os.path.isdir(folder):
            return folder
    present = sorted(e.name for e in os.scandir(data_dir) if e.is_dir() and not e.name.startswith('.'))
    raise DatasetError(f'{option} {split}: no folder {os.path.join(data_dir, name)} (--data-dir {data_dir} holds '
                       f'{_listing(present) or "no folders"}); pass the split folder\'s name as {option}')


def unreadable_image(path: str, error: Exception) -> DatasetError:
    """The error for an image file that cannot be decoded, naming it."""
    return DatasetError(f'{path}: cannot be read as an image ({type(error).__name__}: {error}); replace or remove '
                        'the file')


class ImageFolderDataset(ImageDataset):
    """timm's ``ImageDataset`` that fails on an image it cannot read, naming the file. timm logs the failure and
    returns the next image instead, which counts that one twice in an evaluation and hides the damage."""

    def __getitem__(self, index):
        try:
            img, target = self.reader[index][:2]
            img = img.read() if self.load_bytes else Image.open(img)
            if not self.load_bytes and self.input_img_mode:
                img = img.convert(self.input_img_mode)  # decodes the pixels: a truncated file fails here
        except Exception as e:
            raise unreadable_image(self.reader.filename(index, absolute=True), e) from e
        if self.transform is not None:
            img = self.transform(img)
        if target is None:
            target = -1
        elif self.target_transform is not None:
            target = self.target_transform(target)
        return img, target


def is_image_folder(dataset: str, data_dir: str) -> bool:
    """Whether ``dataset`` / ``data_dir`` name the ``<data_dir>/<split>/<class>/<image>`` layout that
    :func:`build_dataset` reads itself (the default ``dataset=''`` and a folder, not an archive file)."""
    return not dataset and not (data_dir and os.path.isfile(data_dir))


def build_dataset(dataset: str, data_dir: str, split: str, option: str = '--split', **kwargs):
    """The dataset of ``split``: an :class:`ImageFolderDataset` of ``<data_dir>/<split>`` (checked by
    :func:`split_folder`; no class folder may be empty) for the default ``dataset=''`` and a ``data_dir``
    folder, else timm's ``create_dataset`` (``kwargs`` go to it)."""
    if not is_image_folder(dataset, data_dir):
        return create_dataset(dataset, root=data_dir, split=split, **kwargs)
    root = split_folder(data_dir, split, option)
    try:
        ds = ImageFolderDataset(root)
    except RuntimeError as e:  # timm's 'Found 0 images in subfolders of ...'
        raise DatasetError(f'{option} {split}: {e}') from e
    empty = _empty_class_folders(ds.reader)
    if empty:
        raise DatasetError(f'{option} {split}: class folder(s) {_listing(empty)} of {root} hold no images: add '
                           'their images or remove the folders')
    return ds


def _empty_class_folders(reader) -> List[str]:
    """The folders directly in the reader's root that hold no image, in the ``<class>/<image>`` layout (where
    every class found is such a folder); none for other layouts."""
    if not isinstance(reader, ReaderImageFolder):
        return []
    folders = [e.name for e in os.scandir(reader.root) if e.is_dir() and not e.name.startswith('.')]
    if not set(reader.class_to_idx) <= set(folders):
        return []
    return sorted(f for f in folders if f not in reader.class_to_idx)


def class_names_of(dataset) -> Optional[List[str]]:
    """The dataset's class names in index order (its reader's ``class_to_idx``), or None if it has none."""
    class_to_idx = getattr(getattr(dataset, 'reader', None), 'class_to_idx', None)
    if not class_to_idx:
        return None
    return [str(name) for name in sorted(class_to_idx, key=class_to_idx.get)]


def apply_class_map(dataset, class_names: Sequence[str], option: str = '--split', source: str = 'the model',
                    split: str = '', warn: bool = True) -> List[str]:
    """Label ``dataset`` (built by :func:`build_dataset`) with ``class_names``, the classes in the model's index
    order, by name: a folder ``c`` gets the index of ``c`` in ``class_names`` whatever other folders there are.
    A class of the data that is not in ``class_names`` is an error; returns the classes of ``class_names``
    that the data lacks, which are not evaluated (a warning names them, with ``warn``)."""
    missing = _relabel(dataset, [str(c) for c in class_names], option, source)
    if missing and warn:
        _logger.warning(f'{option} {split or getattr(dataset.reader, "root", "")} has no images of class(es) '
                        f'{", ".join(missing)}: they are not evaluated (the other classes keep their labels)')
    return missing


def _relabel(dataset, class_names: List[str], option: str, source: str) -> List[str]:
    index = {name: i for i, name in enumerate(class_names)}
    own = class_names_of(dataset)
    if own is None:
        return []
    reader = dataset.reader
    root = getattr(reader, 'root', '')
    unknown = [c for c in own if c not in index]
    if unknown:
        raise DatasetError(f'{option}: {root} holds images of class(es) {_listing(unknown)}, which are not among the '
                           f'{len(class_names)} classes of {source} ({_listing(class_names)}); remove those folders '
                           'or evaluate another model')
    if own == class_names:
        return []
    if not isinstance(reader, ReaderImageFolder):
        raise DatasetError(f'{option}: the classes of {root or "this dataset"} ({_listing(own)}) differ from those '
                           f'of {source} ({_listing(class_names)}), and this reader cannot be relabelled')
    reader.samples = [(path, index[own[target]]) for path, target in reader.samples]
    reader.class_to_idx = {name: index[name] for name in own}
    return [c for c in class_names if c not in reader.class_to_idx]


def make_digits_imagefolder(root: os.PathLike, size: int = 32, val_fraction: float = 0.25,
                            seed: int = 0) -> Dict[str, int]:
    """Write scikit-learn's handwritten digits (1797 8x8 grey images that ship inside the package, 10
    classes) as an ImageNet-layout folder: ``root/{train,val}/<digit>/<index>.png``, upscaled to ``size``
    pixels (bicubic) as RGB. The split is stratified and fixed by ``seed``. Returns the image count per
    split. Writing into a folder that already holds the same split is a no-op."""
    from PIL import Image
    from sklearn.datasets import load_digits

    root = Path(root)
    digits = load_digits()
    images = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    labels = digits.target
    rng = np.random.default_rng(seed)
    split_of = np.empty(len(labels), dtype=object)
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val = int(round(len(idx) * val_fraction))
        split_of[idx[:n_val]] = 'val'
        split_of[idx[n_val:]] = 'train'
    counts = {'train': 0, 'val': 0}
    for i, (img, label, split) in enumerate(zip(images, labels, split_of)):
        path = root / split / str(label) / f'{i:04d}.png'
        counts[split] += 1
        if path.exists():
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(img, mode='L').resize((size, size), Image.BICUBIC).convert('RGB').save(path)
    return counts


class ShardSampler(Sampler):
    """Indices ``rank, rank + world, ...`` in order: each process evaluates its own share, no image twice
    (``DistributedSampler`` pads the last shard with repeats, which would skew accuracy)."""

    def __init__(self, dataset, num_replicas: int = 1, rank: int = 0):
        self.n, self.num_replicas, self.rank = len(dataset), num_replicas, rank

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.rank, self.n, self.num_replicas))

    def __len__(self) -> int:
        return len(range(self.rank, self.n, self.num_replicas))


def build_loader(dataset, batch_size: int, training: bool, world_size: int = 1, rank: int = 0,
                 workers: int = 2, pin_memory: bool = False, seed: int = 0,
                 collate_fn=None, aug_repeats: int = 0) -> DataLoader:
    """A loader over ``dataset`` (transforms already set). Training: shuffled by a ``DistributedSampler``
    seeded with ``seed``, or timm's ``RepeatAugSampler`` with ``aug_repeats`` (call
    ``loader.sampler.set_epoch(epoch)`` every epoch); last partial batch dropped.
    The loader's workers are re-created every epoch and seeded from torch's global generator, so reseeding
    it at the start of an epoch fixes that epoch's augmentations."""
    if training and aug_repeats:
        from timm.data.distributed_sampler import RepeatAugSampler
        sampler: Optional[Sampler] = RepeatAugSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True,
                                                      num_repeats=aug_repeats)
    elif training:
        sampler = DistributedSampler(dataset, num_replicas=world_size, rank=rank, shuffle=True, seed=seed)
    else:
        sampler = ShardSampler(dataset, world_size, rank)
    if training and len(sampler) < batch_size:
        raise ValueError(f'the training split has {len(sampler)} images per process, fewer than one batch of '
                         f'{batch_size}: lower --batch-size')
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      pin_memory=pin_memory, drop_last=training, collate_fn=collate_fn,
                      persistent_workers=False)
