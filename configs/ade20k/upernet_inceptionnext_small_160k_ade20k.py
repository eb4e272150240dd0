# InceptionNeXt-S UperNet 160k, 512x512 (reported multi-scale mIoU 50.0).
# ConvNeXt's UperNet optimizer (the paper follows it; no code is released), drop path 0.3 (the paper's);
# no output norms.
# Source: the InceptionNeXt paper (no segmentation code released): ConvNeXt's UperNet recipe.
_base_ = ['./_base_/upernet_160k.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='inceptionnext_small', drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/inceptionnext_small.pth')),
    decode_head=dict(in_channels=[96, 192, 384, 768], in_index=[0, 1, 2, 3]),
    auxiliary_head=dict(in_channels=384, in_index=2))
optim_wrapper = dict(type='AmpOptimWrapper', constructor='zoo.LayerDecayOptimizerConstructor',
                     optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
                     paramwise_cfg=dict(decay_rate=0.9, decay_type='stage_wise', num_layers=12))
