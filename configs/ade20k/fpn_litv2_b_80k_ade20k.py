# LITv2-B Semantic FPN 80k, 512x512 (reported mIoU 47.2).
# A LayerNorm on every output, drop path 0.3; AdamW 1e-4, wd 1e-4, poly 0.9 to 1e-6, batch 16, fp32.
# Source: ziplab/LITv2 segmentation/configs/litv2/litv2_*_fpn_r50_512x512_80k_ade20k.py.
_base_ = ['./_base_/fpn_80k.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='litv2_b', drop_path_rate=0.3,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/litv2_b.pth')),
    neck=dict(in_channels=[128, 256, 512, 1024], num_outs=4),
    decode_head=dict(in_channels=[256] * 4, in_index=[0, 1, 2, 3]))
optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=1e-4))
train_dataloader = dict(batch_size=2)
