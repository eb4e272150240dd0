"""Train a detector (mmdet) or segmentor (mmseg) from a zoo config; see docs/downstream.md.

    python tools/mm_train.py configs/coco/mask-rcnn_lsnet_t_fpn_1x_coco.py
    torchrun --nproc-per-node 2 tools/mm_train.py CONFIG --launcher pytorch
    python tools/mm_train.py CONFIG --resume            # the work dir's latest checkpoint
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zoo.mm.runner import train  # noqa: E402

if __name__ == '__main__':
    train()
