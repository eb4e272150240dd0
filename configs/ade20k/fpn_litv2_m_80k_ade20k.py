# LITv2-M Semantic FPN 80k, 512x512 (reported mIoU 45.7).
# A LayerNorm on every output, drop path 0.2; AdamW 1e-4, wd 1e-4, poly 0.9 to 1e-6, batch 16, fp32.
# Source: ziplab/LITv2 segmentation/configs/litv2/litv2_*_fpn_r50_512x512_80k_ade20k.py.
_base_ = ['./_base_/fpn_80k.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='litv2_m', drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/litv2_m.pth')),
    neck=dict(in_channels=[96, 192, 384, 768], num_outs=4),
    decode_head=dict(in_channels=[256] * 4, in_index=[0, 1, 2, 3]))
optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=1e-4))
train_dataloader = dict(batch_size=2)
