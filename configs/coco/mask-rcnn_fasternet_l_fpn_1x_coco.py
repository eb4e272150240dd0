# FasterNet-L Mask R-CNN 1x (reported box / mask AP 44.0 / 39.9).
# A BatchNorm on every output, nothing frozen, BatchNorms train (the authors' norm_eval / frozen_stages were
# swallowed by their backbone); drop path 0.3; AdamW 1e-4, wd 1e-4, fp32.
# Source: JierunChen/FasterNet detection/configs/fasternet/mask_rcnn_fasternet_*_fpn_1x_coco.py.
_base_ = ['./mask-rcnn_fasternet_s_fpn_1x_coco.py']
model = dict(
    backbone=dict(arch='fasternet_l', drop_path_rate=0.3,
        init_cfg=dict(checkpoint='checkpoints/fasternet_l-epoch.299-val_acc1.83.5060.pth')),
    neck=dict(in_channels=[192, 384, 768, 1536]))
optim_wrapper = dict(optimizer=dict(lr=0.0001))
