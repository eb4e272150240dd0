#!/usr/bin/env python
"""The top-k classes a zoo model sees in each image of a file, a folder or a glob pattern.

    python tools/predict.py photos/ --model lsnet_t --checkpoint lsnet_t.pth    # official or zoo file
    python tools/predict.py data/digits/val --checkpoint output/train/lsnet_t/model_best.pth --topk 1 --json out.json
    python tools/predict.py "data/digits/val/*/*.png" --checkpoint output/train/lsnet_t/model_best.pth \
        --deploy --runtime onnx
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zoo.deploy.runtimes import FLOAT_RUNTIMES  # noqa: E402
from zoo.train.predict import predict  # noqa: E402
from zoo.train.validate import add_weights_arguments  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('inputs', nargs='+', help='image files, folders (searched recursively) or glob patterns')
    add_weights_arguments(p)
    p.add_argument('--topk', type=int, default=5)
    p.add_argument('--deploy', action='store_true', help='the deploy form (zoo.reparameterize)')
    p.add_argument('--runtime', default='eager', choices=FLOAT_RUNTIMES)
    p.add_argument('--batch-size', '-b', type=int, default=16)
    p.add_argument('--json', default='', help='write the predictions to this file as JSON (- for standard output)')
    p.add_argument('--no-progress', action='store_true', help='no progress bar')
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    results = predict(a.inputs, a.model, a.checkpoint, a.topk, a.deploy, a.runtime, a.batch_size, a.use_ema,
                      a.num_classes, a.img_size, a.crop_pct, a.trust_pickle, progress=not a.no_progress)
    if a.json == '-':
        print(json.dumps(results, indent=2))
        return
    if a.json:
        with open(a.json, 'w') as f:
            json.dump(results, f, indent=2)
    width = max(len(r['image']) for r in results)
    for r in results:
        for rank, top in enumerate(r['top'], 1):
            image = r['image'] if rank == 1 else ''
            print(f'{image:<{width}}  {rank}  {top["prob"]:7.2%}  {top["label"]}')


if __name__ == '__main__':
    main()
