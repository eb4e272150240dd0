#!/usr/bin/env python
"""Write scikit-learn's handwritten digits (shipped inside the package, nothing downloaded) as an
ImageNet-layout folder, for training demos and tests:

    python tools/make_digits.py data/digits --size 32
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zoo.train import make_digits_imagefolder  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('root', nargs='?', default='data/digits')
    p.add_argument('--size', type=int, default=32, help='image side in pixels (the digits are 8x8)')
    p.add_argument('--val-fraction', type=float, default=0.25)
    p.add_argument('--seed', type=int, default=0)
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    counts = make_digits_imagefolder(a.root, a.size, a.val_fraction, a.seed)
    print(f'{a.root}: {counts["train"]} train / {counts["val"]} val images, 10 classes, {a.size}x{a.size}')


if __name__ == '__main__':
    main()
