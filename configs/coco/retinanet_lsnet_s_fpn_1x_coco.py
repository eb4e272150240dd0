# LSNet-S RetinaNet 1x (reported box AP 36.5).
# All four LSNet maps (strides 8-64) plus a stride-2 conv on the last give the anchor strides 8-128.
# Backbone BatchNorms in eval mode; no drop path; AdamW 1e-4, wd 0.05, fp32.
# Source: jameslahm/lsnet detection/configs/retinanet_lsnet_*_fpn_1x_coco.py.
_base_ = ['./retinanet_lsnet_t_fpn_1x_coco.py']
model = dict(
    backbone=dict(arch='lsnet_s', init_cfg=dict(checkpoint='checkpoints/lsnet_s.pth')),
    neck=dict(in_channels=[96, 192, 320, 448]))
