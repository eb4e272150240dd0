# LITv2-M Mask R-CNN 1x, HiLo window 2 (reported box / mask AP 46.8 / 42.3).
# A LayerNorm on outputs 1-3 (none on output 0), drop path 0.2; AdamW 2e-4, wd 1e-4 (none on norms), mixed precision.
# Source: ziplab/LITv2@f320e43 detection/configs/litv2/mask_rcnn_litv2_*_fpn_1x_coco.py.
_base_ = ['./_base_/mask-rcnn_fpn_1x.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='litv2_m', drop_path_rate=0.2, out_norm=(None, 'ln', 'ln', 'ln'),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/litv2_m.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = dict(type='AmpOptimWrapper', optimizer=dict(lr=2e-4, weight_decay=1e-4),
                     paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
