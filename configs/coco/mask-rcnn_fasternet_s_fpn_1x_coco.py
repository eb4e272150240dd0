# FasterNet-S Mask R-CNN 1x (reported box / mask AP 39.9 / 36.9).
# A BatchNorm on every output, nothing frozen, BatchNorms train (the authors' norm_eval / frozen_stages were
# swallowed by their backbone); drop path 0.15; AdamW 2e-4, wd 1e-4, fp32.
# Source: JierunChen/FasterNet detection/configs/fasternet/mask_rcnn_fasternet_*_fpn_1x_coco.py.
_base_ = ['./_base_/mask-rcnn_fpn_1x.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='fasternet_s', drop_path_rate=0.15,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/fasternet_s-epoch.299-val_acc1.81.2840.pth')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
optim_wrapper = dict(optimizer=dict(lr=2e-4, weight_decay=1e-4))
