# ConvNeXt-B UperNet 160k, 640x640, from ImageNet-22k weights (reported single-scale mIoU 52.6).
# The 22k pre-trained file (convnext_base_22k_224.pth); a LayerNorm on every output, drop path 0.4; AdamW 1e-4,
# wd 0.05, stage-wise lr decay 0.9 with num_layers 12, mixed precision; tested with 640x640 sliding windows at
# stride 426.
# Source: facebookresearch/ConvNeXt semantic_segmentation/configs/convnext/upernet_convnext_base_640_160k_ade20k_ss.py.
_base_ = ['./_base_/upernet_160k_640.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='convnext_base', drop_path_rate=0.4,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/convnext_base_22k_224.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 1024], in_index=[0, 1, 2, 3]),
    auxiliary_head=dict(in_channels=512, in_index=2),
    test_cfg=dict(mode='slide', crop_size=(640, 640), stride=(426, 426)))
optim_wrapper = dict(type='AmpOptimWrapper', constructor='zoo.LayerDecayOptimizerConstructor',
                     optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
                     paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise', num_layers=12))
