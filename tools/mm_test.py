"""Evaluate a detector (COCO bbox / segm mAP) or segmentor (mIoU) trained from a zoo config.

    python tools/mm_test.py CONFIG work_dirs/<config>/iter_2000.pth
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zoo.mm.runner import test  # noqa: E402

if __name__ == '__main__':
    test()
