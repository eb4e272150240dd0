# InceptionNeXt-T Mask R-CNN 3x, multi-scale + crop: ConvNeXt-T's detection recipe unchanged (InceptionNeXt
# follows ConvNeXt and shares its stage layout); no output norms (none published). Not reported by the authors.
# Source: ConvNeXt-T's recipe (the InceptionNeXt authors release no detection code or result).
_base_ = ['./_base_/mask-rcnn_fpn_ms-crop_3x.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='inceptionnext_tiny', drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/inceptionnext_tiny.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = dict(type='AmpOptimWrapper', constructor='zoo.LayerDecayOptimizerConstructor',
                     optimizer=dict(lr=1e-4, weight_decay=0.05),
                     paramwise_cfg=dict(decay_rate=0.95, decay_type='layer_wise', num_layers=6))
