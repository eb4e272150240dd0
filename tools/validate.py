#!/usr/bin/env python
"""Top-1 / top-5 of a zoo model on an image folder (``<data-dir>/<split>/<class>/*``).

    python tools/validate.py --checkpoint output/train/lsnet_t/model_best.pth --data-dir data/digits
    python tools/validate.py --checkpoint output/train/lsnet_t/model_best.pth --data-dir data/digits --deploy
    python tools/validate.py --model lsnet_t --checkpoint lsnet_t.pth --data-dir /data/imagenet   # official file
"""
import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zoo.train import validate  # noqa: E402
from zoo.train.validate import add_weights_arguments  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--data-dir', required=True)
    p.add_argument('--split', default='val')
    p.add_argument('--dataset', default='', help="timm dataset spec ('' = image folders)")
    add_weights_arguments(p)
    p.add_argument('--deploy', action='store_true', help='evaluate the deploy form (zoo.reparameterize)')
    p.add_argument('--batch-size', '-b', type=int, default=64)
    p.add_argument('--workers', '-j', type=int, default=2)
    p.add_argument('--amp', action='store_true', help='autocast (bfloat16 on CPU, float16 on GPU)')
    p.add_argument('--channels-last', action='store_true')
    p.add_argument('--device', default='')
    p.add_argument('--json', default='', help='also write the result to this file')
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    result = validate(a.data_dir, a.model, a.checkpoint, a.split, a.deploy, a.use_ema, a.num_classes, a.img_size,
                      a.crop_pct, a.batch_size, a.workers, a.amp, a.channels_last, a.device, a.dataset,
                      a.trust_pickle)
    if int(os.environ.get('RANK', 0)) == 0:
        print(f'{result["model"]} [{result["form"]}]: top-1 {result["top1"]:.3f} top-5 {result["top5"]:.3f} '
              f'loss {result["loss"]:.4f} on {result["images"]} images')
        print(json.dumps(result))
        if a.json:
            with open(a.json, 'w') as f:
                json.dump(result, f, indent=2)


if __name__ == '__main__':
    main()
