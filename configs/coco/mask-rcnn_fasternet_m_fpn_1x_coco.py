# FasterNet-M Mask R-CNN 1x (reported box / mask AP 43.0 / 39.1).
# A BatchNorm on every output, nothing frozen, BatchNorms train (the authors' norm_eval / frozen_stages were
# swallowed by their backbone); drop path 0.2; AdamW 1e-4, wd 1e-4, fp32.
# Source: JierunChen/FasterNet detection/configs/fasternet/mask_rcnn_fasternet_*_fpn_1x_coco.py.
_base_ = ['./mask-rcnn_fasternet_s_fpn_1x_coco.py']
model = dict(
    backbone=dict(arch='fasternet_m', drop_path_rate=0.2,
        init_cfg=dict(checkpoint='checkpoints/fasternet_m-epoch.291-val_acc1.82.9620.pth')),
    neck=dict(in_channels=[144, 288, 576, 1152]))
optim_wrapper = dict(optimizer=dict(lr=0.0001))
