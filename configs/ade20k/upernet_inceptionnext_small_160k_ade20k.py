# InceptionNeXt-S UperNet 160k, 512x512 (reported multi-scale mIoU 50.0).
# ConvNeXt's UperNet optimizer (the paper follows it; no code is released), drop path 0.3 (the paper's);
# no output norms.
# Source: the InceptionNeXt paper (no segmentation code released): ConvNeXt's UperNet recipe.
_base_ = ['./upernet_inceptionnext_tiny_160k_ade20k.py']
model = dict(
    backbone=dict(arch='inceptionnext_small', drop_path_rate=0.3,
        init_cfg=dict(checkpoint='checkpoints/inceptionnext_small.pth')))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
