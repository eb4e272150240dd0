# BiFormer-S Mask R-CNN 1x (reported box / mask AP 47.8 / 43.2).
# 16x16 routing regions (n_win=16, maps zero-padded to a multiple), a LayerNorm on every output, BatchNorms in
# eval mode, drop path 0.2; AdamW 1e-4, wd 0.05 (none on norms), mixed precision with loss scale 512.
# Source: rayleizhu/BiFormer object_detection/configs/coco/maskrcnn.1x.biformer_*.py.
_base_ = ['./_base_/mask-rcnn_fpn_1x.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='biformer_s', drop_path_rate=0.2, norm_eval=True,
        model_kwargs=dict(n_win=16),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/biformer_small_in1k.pth')),
    neck=dict(in_channels=[64, 128, 256, 512]))
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale=512., optimizer=dict(lr=1e-4, weight_decay=0.05),
                     paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
