# BiFormer-B RetinaNet 1x (reported box AP 47.1).
# n_win=16, LayerNorm on every output, BatchNorms in eval mode, drop path 0.3; AdamW 1e-4, wd 1e-4,
# mixed precision with loss scale 512.
# Source: rayleizhu/BiFormer object_detection/configs/coco/retinanet.1x.biformer_*.py.
_base_ = ['./_base_/retinanet_fpn_1x.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='biformer_b', drop_path_rate=0.3, norm_eval=True,
        model_kwargs=dict(n_win=16),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/biformer_base_in1k.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale=512., optimizer=dict(lr=1e-4, weight_decay=1e-4))
