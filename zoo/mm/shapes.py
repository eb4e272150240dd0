"""Small generated datasets in the real COCO and ADE20K layouts, for trying detection and segmentation
without downloading anything.

Each image is a noisy greyish background with a few non-overlapping filled shapes (red-ish circles, green-ish
squares, blue-ish triangles, hues jittered) of random sizes and orientations. The COCO set has instance boxes, polygon masks and areas in
``annotations/instances_{train,val}2017.json`` next to ``train2017/`` and ``val2017/``; the ADE20K set has
``images/{training,validation}/*.jpg`` and ``annotations/{training,validation}/*.png`` holding ADE20K's own
label ids (the background is 4 floor, the shapes 42 box, 115 tent, 120 ball), read by mmseg's
``ADE20KDataset`` with ``metainfo=dict(classes=ADE_CLASSES)``. Both are drawn from the same seeded generator: the same call writes
the same files.
"""
import json
import math
import os
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image, ImageDraw

__all__ = ['COCO_CLASSES', 'ADE_CLASSES', 'make_coco_shapes', 'make_ade_shapes']

SHAPES = ('circle', 'square', 'triangle')
COCO_CLASSES = SHAPES
# the ADE20K classes background and shapes are labelled as, in ADE20K's class order (the PNGs hold ADE20K's
# 1-based ids; 0, ADE20K's ignored 'other', is not used)
ADE_CLASSES = ('floor', 'box', 'tent', 'ball')
_ADE_IDS = {'background': 4, 'square': 42, 'triangle': 115, 'circle': 120}


_HUES = {'circle': np.array([220, 50, 50]), 'square': np.array([50, 200, 60]), 'triangle': np.array([60, 80, 230])}


def _polygon(kind: str, cx: float, cy: float, r: float, angle: float) -> List[Tuple[float, float]]:
    n = {'circle': 32, 'square': 4, 'triangle': 3}[kind]
    start = angle + (math.pi / 4 if kind == 'square' else 0.)
    return [(cx + r * math.cos(start + 2 * math.pi * i / n), cy + r * math.sin(start + 2 * math.pi * i / n))
            for i in range(n)]


def _scene(rng: np.random.Generator, size: int, max_objects: int):
    """A background image and its shapes: (kind, polygon), none overlapping (bounding circles apart)."""
    base = rng.integers(60, 200) + rng.integers(-15, 16, 3)  # a greyish background
    img = np.clip(base + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
    image = Image.fromarray(img)
    draw = ImageDraw.Draw(image)
    placed, shapes = [], []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        for _try in range(20):
            r = rng.uniform(0.08, 0.22) * size
            cx, cy = rng.uniform(r, size - r, 2)
            if all(math.hypot(cx - x, cy - y) > r + s + 2 for x, y, s in placed):
                break
        else:
            continue
        placed.append((cx, cy, r))
        kind = SHAPES[int(rng.integers(len(SHAPES)))]
        poly = _polygon(kind, cx, cy, r, rng.uniform(0, 2 * math.pi))
        # each kind has its own hue (jittered), so colour and outline both tell the class
        colour = tuple(int(c) for c in np.clip(_HUES[kind] + rng.integers(-50, 51, 3), 0, 255))
        draw.polygon(poly, fill=colour)
        shapes.append((kind, poly))
    return image, shapes


def _split_sizes(num_train: int, num_val: int) -> Dict[str, int]:
    if num_train < 1 or num_val < 1:
        raise ValueError(f'need at least one training and one validation image, got {num_train} and {num_val}')
    return {'train': num_train, 'val': num_val}


def make_coco_shapes(root: str, num_train: int = 200, num_val: int = 50, size: int = 128, max_objects: int = 4,
                     seed: int = 0) -> Dict[str, int]:
    """Write a COCO-format instance dataset under ``root``; returns the number of instances per split."""
    rng = np.random.default_rng(seed)
    counts = {}
    categories = [{'id': i + 1, 'name': n, 'supercategory': 'shape'} for i, n in enumerate(COCO_CLASSES)]
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    ann_id = 1
    for split, n in _split_sizes(num_train, num_val).items():
        folder = f'{split}2017'
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        images, annotations = [], []
        for i in range(n):
            image_id = len(images) + 1
            image, shapes = _scene(rng, size, max_objects)
            name = f'{image_id:06d}.jpg'
            image.save(os.path.join(root, folder, name), quality=95)
            images.append({'id': image_id, 'file_name': name, 'width': size, 'height': size})
            for kind, poly in shapes:
                mask = Image.new('L', (size, size))
                ImageDraw.Draw(mask).polygon(poly, fill=1)
                ys, xs = np.nonzero(np.asarray(mask))
                x0, y0 = float(xs.min()), float(ys.min())
                annotations.append({
                    'id': ann_id, 'image_id': image_id, 'category_id': COCO_CLASSES.index(kind) + 1,
                    'bbox': [x0, y0, float(xs.max()) + 1 - x0, float(ys.max()) + 1 - y0],
                    'area': float(len(xs)), 'iscrowd': 0,
                    'segmentation': [[round(c, 2) for p in poly for c in p]]})
                ann_id += 1
        with open(os.path.join(root, 'annotations', f'instances_{folder}.json'), 'w') as f:
            json.dump({'images': images, 'annotations': annotations, 'categories': categories}, f)
        counts[split] = len(annotations)
    return counts


def make_ade_shapes(root: str, num_train: int = 200, num_val: int = 50, size: int = 128, max_objects: int = 4,
                    seed: int = 0) -> Dict[str, int]:
    """Write an ADE20K-format semantic segmentation dataset under ``root``; returns images per split."""
    rng = np.random.default_rng(seed)
    counts = {}
    for split, n in _split_sizes(num_train, num_val).items():
        folder = {'train': 'training', 'val': 'validation'}[split]
        for sub in ('images', 'annotations'):
            os.makedirs(os.path.join(root, sub, folder), exist_ok=True)
        for i in range(n):
            image, shapes = _scene(rng, size, max_objects)
            label = Image.new('L', (size, size), _ADE_IDS['background'])
            draw = ImageDraw.Draw(label)
            for kind, poly in shapes:
                draw.polygon(poly, fill=_ADE_IDS[kind])
            name = f'ADE_{split}_{i + 1:08d}'
            image.save(os.path.join(root, 'images', folder, name + '.jpg'), quality=95)
            label.save(os.path.join(root, 'annotations', folder, name + '.png'))
        counts[split] = n
    return counts
