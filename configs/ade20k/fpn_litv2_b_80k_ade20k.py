# LITv2-B Semantic FPN 80k, 512x512 (reported mIoU 47.2).
# A LayerNorm on every output, drop path 0.3; AdamW 1e-4, wd 1e-4, poly 0.9 to 1e-6, batch 16, fp32.
# Source: ziplab/LITv2 segmentation/configs/litv2/litv2_*_fpn_r50_512x512_80k_ade20k.py.
_base_ = ['./fpn_litv2_s_80k_ade20k.py']
model = dict(
    backbone=dict(arch='litv2_b', drop_path_rate=0.3, init_cfg=dict(checkpoint='checkpoints/litv2_b.pth')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
