# BiFormer-B UperNet 160k, 512x512 (reported single-scale mIoU 51.0).
# 8x8 routing regions (n_win=8), a LayerNorm on every output, drop path 0.4; AdamW 6e-5, wd 0.01 (none on
# norms), warmup 1500, linear decay, mixed precision with loss scale 512.
# Source: rayleizhu/BiFormer semantic_segmentation/configs/ade20k/upernet.biformer_*.py.
_base_ = ['./upernet_biformer_s_160k_ade20k.py']
model = dict(
    backbone=dict(arch='biformer_b', drop_path_rate=0.4,
        init_cfg=dict(checkpoint='checkpoints/biformer_base_in1k.pth')),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
