# BiFormer-B Semantic FPN 80k, 512x512 (reported mIoU 49.9).
# n_win=8, a LayerNorm on every output, drop path 0.3; AdamW 2e-4, wd 1e-4, warmup 1000 from 0.1x, cosine
# decay, batch 32, mixed precision with loss scale 512.
# Source: rayleizhu/BiFormer semantic_segmentation/configs/ade20k/sfpn.biformer_*.py.
_base_ = ['./_base_/fpn_80k.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='biformer_b', drop_path_rate=0.3,
        model_kwargs=dict(n_win=8),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/biformer_base_in1k.pth')),
    neck=dict(in_channels=[96, 192, 384, 768], num_outs=4),
    decode_head=dict(in_channels=[256] * 4, in_index=[0, 1, 2, 3]))
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale=512.)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=1000),
    dict(type='CosineAnnealingLR', T_max=79000, eta_min_ratio=1e-8, by_epoch=False, begin=1000, end=80000),
]
