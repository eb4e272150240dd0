# InceptionNeXt-T UperNet 160k, 512x512 (reported multi-scale mIoU 47.9).
# ConvNeXt's UperNet optimizer (the paper follows it; no code is released), drop path 0.2 (the paper's);
# no output norms.
# Source: the InceptionNeXt paper (no segmentation code released): ConvNeXt's UperNet recipe.
_base_ = ['./_base_/upernet_160k.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='inceptionnext_tiny', drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/inceptionnext_tiny.pth')),
    decode_head=dict(in_channels=[96, 192, 384, 768], in_index=[0, 1, 2, 3]),
    auxiliary_head=dict(in_channels=384, in_index=2))
optim_wrapper = dict(type='AmpOptimWrapper', constructor='zoo.LayerDecayOptimizerConstructor',
                     optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
                     paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise', num_layers=6))
