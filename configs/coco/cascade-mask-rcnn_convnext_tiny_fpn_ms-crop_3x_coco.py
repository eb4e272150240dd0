# ConvNeXt-T Cascade Mask R-CNN 3x, multi-scale + crop (reported box / mask AP 50.4 / 43.7).
# ImageNet-1k weights; a LayerNorm on every output, drop path 0.4; AdamW 2e-4, wd 0.05 (none on 1-D parameters and
# biases), layer-wise lr decay 0.7 over 6 layers, mixed precision.
# Source: facebookresearch/ConvNeXt
# object_detection/configs/convnext/cascade_mask_rcnn_convnext_tiny_patch4_window7_mstrain_480-800_giou_4conv1f_adamw_3x_coco_in1k.py.
_base_ = ['./_base_/cascade-mask-rcnn_fpn_ms-crop_3x.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='convnext_tiny', drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/convnext_tiny_1k_224_ema.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = dict(type='AmpOptimWrapper', constructor='zoo.LayerDecayOptimizerConstructor',
                     optimizer=dict(lr=2e-4, weight_decay=0.05),
                     paramwise_cfg=dict(decay_rate=0.7, decay_type='layer_wise', num_layers=6))
