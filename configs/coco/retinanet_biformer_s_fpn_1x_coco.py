# BiFormer-S RetinaNet 1x (reported box AP 45.9).
# n_win=16, LayerNorm on every output, BatchNorms in eval mode, drop path 0.2; AdamW 1e-4, wd 1e-4,
# mixed precision with loss scale 512.
# Source: rayleizhu/BiFormer object_detection/configs/coco/retinanet.1x.biformer_*.py.
_base_ = ['./_base_/retinanet_fpn_1x.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='biformer_s', drop_path_rate=0.2, norm_eval=True,
        model_kwargs=dict(n_win=16),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/biformer_small_in1k.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale=512., optimizer=dict(lr=1e-4, weight_decay=1e-4))
