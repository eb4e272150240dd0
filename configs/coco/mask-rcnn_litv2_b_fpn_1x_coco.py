# LITv2-B Mask R-CNN 1x, HiLo window 2 (reported box / mask AP 47.3 / 42.6).
# A LayerNorm on outputs 1-3 (none on output 0), drop path 0.3; AdamW 2e-4, wd 1e-4 (none on norms), mixed precision.
# Source: ziplab/LITv2@f320e43 detection/configs/litv2/mask_rcnn_litv2_*_fpn_1x_coco.py.
_base_ = ['./mask-rcnn_litv2_s_fpn_1x_coco.py']
model = dict(
    backbone=dict(arch='litv2_b', drop_path_rate=0.3, with_cp=True,
        init_cfg=dict(checkpoint='checkpoints/litv2_b.pth')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
