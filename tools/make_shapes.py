"""Write the generated shapes datasets in the COCO and ADE20K layouts (see zoo/mm/shapes.py).

    python tools/make_shapes.py                       # data/coco_shapes and data/ade_shapes
    python tools/make_shapes.py --num-train 400 --num-val 100 --size 128
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zoo.mm.shapes import make_ade_shapes, make_coco_shapes  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--coco-root', default='data/coco_shapes')
    p.add_argument('--ade-root', default='data/ade_shapes')
    p.add_argument('--num-train', type=int, default=400)
    p.add_argument('--num-val', type=int, default=100)
    p.add_argument('--size', type=int, default=128)
    p.add_argument('--seed', type=int, default=0)
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    kw = dict(num_train=a.num_train, num_val=a.num_val, size=a.size, seed=a.seed)
    print(json.dumps({'coco': {a.coco_root: make_coco_shapes(a.coco_root, **kw)},
                      'ade20k': {a.ade_root: make_ade_shapes(a.ade_root, **kw)}}))


if __name__ == '__main__':
    main()
