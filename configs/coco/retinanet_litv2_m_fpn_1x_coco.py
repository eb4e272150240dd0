# LITv2-M RetinaNet 1x, HiLo window 2 (reported box AP 46.0).
# A LayerNorm on outputs 1-3, drop path 0.2; AdamW 1e-4, wd 1e-4 on every parameter (the authors' norm
# exemption is not under custom_keys, so it never applied), mixed precision.
# Source: ziplab/LITv2@f320e43 detection/configs/litv2/retinanet_litv2_*_fpn_1x_coco.py.
_base_ = ['./_base_/retinanet_fpn_1x.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='litv2_m', drop_path_rate=0.2, out_norm=(None, 'ln', 'ln', 'ln'),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/litv2_m.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = dict(type='AmpOptimWrapper', optimizer=dict(lr=1e-4, weight_decay=1e-4))
