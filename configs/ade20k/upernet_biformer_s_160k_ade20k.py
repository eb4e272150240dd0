# BiFormer-S UperNet 160k, 512x512 (reported single-scale mIoU 49.8).
# 8x8 routing regions (n_win=8), a LayerNorm on every output, drop path 0.3; AdamW 6e-5, wd 0.01 (none on
# norms), warmup 1500, linear decay, mixed precision with loss scale 512.
# Source: rayleizhu/BiFormer semantic_segmentation/configs/ade20k/upernet.biformer_*.py.
_base_ = ['./_base_/upernet_160k.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='biformer_s', drop_path_rate=0.3,
        model_kwargs=dict(n_win=8),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/biformer_small_in1k.pth')),
    decode_head=dict(in_channels=[64, 128, 256, 512], in_index=[0, 1, 2, 3]),
    auxiliary_head=dict(in_channels=256, in_index=2))
optim_wrapper = dict(type='AmpOptimWrapper', loss_scale=512.,
                     paramwise_cfg=dict(custom_keys={'norm': dict(decay_mult=0.)}))
