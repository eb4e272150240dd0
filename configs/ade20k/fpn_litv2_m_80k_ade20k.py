# LITv2-M Semantic FPN 80k, 512x512 (reported mIoU 45.7).
# A LayerNorm on every output, drop path 0.2; AdamW 1e-4, wd 1e-4, poly 0.9 to 1e-6, batch 16, fp32.
# Source: ziplab/LITv2 segmentation/configs/litv2/litv2_*_fpn_r50_512x512_80k_ade20k.py.
_base_ = ['./fpn_litv2_s_80k_ade20k.py']
model = dict(backbone=dict(arch='litv2_m', init_cfg=dict(checkpoint='checkpoints/litv2_m.pth')))
