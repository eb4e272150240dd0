#!/usr/bin/env python
"""Train a zoo model for image classification.

    python tools/train.py --config configs/imagenet/lsnet_t.yaml --data-dir /data/imagenet
    torchrun --nproc_per_node 8 tools/train.py --config configs/imagenet/lsnet_t.yaml --data-dir /data/imagenet
    python tools/train.py --config configs/digits/lsnet_t.yaml      # the small real dataset (tools/make_digits.py)

A recipe file sets the defaults; options on the command line override it (``--help`` lists them all).
Resume a killed run with ``--resume <output>/last.pth`` (or ``--resume auto``). An output folder that holds a run
is only written by ``--resume`` or ``--overwrite`` (which deletes that run and starts over); see docs/training.md.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zoo.train import parse_train_args, train  # noqa: E402


def main(argv=None):
    result = train(parse_train_args(argv))
    if int(os.environ.get('RANK', 0)) == 0:
        print(json.dumps({k: result[k] for k in ('output', 'eval', 'best', 'world_size')}))


if __name__ == '__main__':
    main()
