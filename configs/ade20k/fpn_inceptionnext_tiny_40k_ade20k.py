# InceptionNeXt-T Semantic FPN 40k, 512x512 (reported mIoU 43.1): PoolFormer's recipe (AdamW 2e-4, wd 1e-4,
# poly 0.9, batch 32), drop path 0.1.
# Source: the InceptionNeXt paper (no segmentation code released): PoolFormer's Semantic FPN recipe.
_base_ = ['./_base_/fpn_40k.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='inceptionnext_tiny', drop_path_rate=0.1,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/inceptionnext_tiny.pth')),
    neck=dict(in_channels=[96, 192, 384, 768], num_outs=4),
    decode_head=dict(in_channels=[256] * 4, in_index=[0, 1, 2, 3]))
