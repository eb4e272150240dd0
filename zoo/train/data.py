"""Datasets and loaders for classification training, and a small real dataset for tests and demos.

Datasets come from timm's ``create_dataset`` (image folders, and timm's readers for other formats); the
transforms are timm's ``create_transform``; batches are sharded across processes by
``torch.utils.data.DistributedSampler`` (training) or a plain stride (evaluation, no padding, so every image
is counted once).
"""
import os
from pathlib import Path
from typing import Dict, Iterator, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

__all__ = ['make_digits_imagefolder', 'ShardSampler', 'build_loader']


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
