# InceptionNeXt-B UperNet 160k, 512x512 (reported multi-scale mIoU 50.6).
# ConvNeXt's UperNet optimizer (the paper follows it; no code is released), drop path 0.4 (the paper's);
# no output norms.
# Source: the InceptionNeXt paper (no segmentation code released): ConvNeXt's UperNet recipe.
_base_ = ['./upernet_inceptionnext_tiny_160k_ade20k.py']
model = dict(
    backbone=dict(arch='inceptionnext_base', drop_path_rate=0.4,
        init_cfg=dict(checkpoint='checkpoints/inceptionnext_base.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
