# BiFormer-B Semantic FPN 80k, 512x512 (reported mIoU 49.9).
# n_win=8, a LayerNorm on every output, drop path 0.3; AdamW 2e-4, wd 1e-4, warmup 1000 from 0.1x, cosine
# decay, batch 32, mixed precision with loss scale 512.
# Source: rayleizhu/BiFormer semantic_segmentation/configs/ade20k/sfpn.biformer_*.py.
_base_ = ['./fpn_biformer_s_80k_ade20k.py']
model = dict(
    backbone=dict(arch='biformer_b', drop_path_rate=0.3,
        init_cfg=dict(checkpoint='checkpoints/biformer_base_in1k.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
