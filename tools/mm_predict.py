#!/usr/bin/env python
"""Draw a zoo detector's or segmentor's predictions on images into PNG files (mmdet's / mmseg's inferencers).

    python tools/mm_predict.py configs/shapes/mask-rcnn_lsnet_t_fpn_shapes.py \
        work_dirs/mask-rcnn_lsnet_t_fpn_shapes/iter_800.pth data/coco_shapes/val2017 --out-dir pictures/det
    python tools/mm_predict.py configs/shapes/upernet_lsnet_t_shapes.py \
        work_dirs/upernet_lsnet_t_shapes/iter_600.pth data/ade_shapes/images/validation --out-dir pictures/seg
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('config', help='a detection or segmentation config (configs/coco, configs/ade20k, configs/shapes)')
    p.add_argument('checkpoint', help='an mmengine checkpoint of that config (tools/mm_train.py)')
    p.add_argument('inputs', nargs='+', help='image files, folders (searched recursively) or glob patterns')
    p.add_argument('--out-dir', default='pictures', help='the drawn images go to <out-dir>/vis/')
    p.add_argument('--score-thr', type=float, default=0.3, help='detections below this score are not drawn')
    p.add_argument('--device', default='cpu')
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    from zoo.mm.predict import predict
    for path in predict(a.config, a.checkpoint, a.inputs, a.out_dir, a.score_thr, a.device):
        print(path)


if __name__ == '__main__':
    main()
