# LSNet-B Mask R-CNN 1x (reported box / mask AP 40.8 / 37.8).
# LSNet gives strides 8-64: a transposed conv of the stride-8 lateral adds the stride-4 level (zoo.TransConvFPN).
# Every BatchNorm of the backbone stays in eval mode (norm_eval); no drop path; AdamW 1e-4, wd 0.05, fp32.
# Source: jameslahm/lsnet detection/configs/mask_rcnn_lsnet_*_fpn_1x_coco.py.
_base_ = ['./mask-rcnn_lsnet_t_fpn_1x_coco.py']
model = dict(
    backbone=dict(arch='lsnet_b', init_cfg=dict(checkpoint='checkpoints/lsnet_b.pth')),
    neck=dict(in_channels=[128, 256, 384, 512]))
