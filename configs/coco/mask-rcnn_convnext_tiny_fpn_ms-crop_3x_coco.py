# ConvNeXt-T Mask R-CNN 3x, multi-scale + crop (reported box / mask AP 46.2 / 41.7).
# A LayerNorm on every output, drop path 0.4; AdamW 1e-4, wd 0.05 (none on 1-D parameters and biases),
# layer-wise lr decay 0.95 over 6 layers, mixed precision.
# Source: facebookresearch/ConvNeXt
# object_detection/configs/convnext/mask_rcnn_convnext_tiny_patch4_window7_mstrain_480-800_adamw_3x_coco_in1k.py.
_base_ = ['./_base_/mask-rcnn_fpn_ms-crop_3x.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='convnext_tiny', drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/convnext_tiny_1k_224_ema.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = dict(type='AmpOptimWrapper', constructor='zoo.LayerDecayOptimizerConstructor',
                     optimizer=dict(lr=1e-4, weight_decay=0.05),
                     paramwise_cfg=dict(decay_rate=0.95, decay_type='layer_wise', num_layers=6))
