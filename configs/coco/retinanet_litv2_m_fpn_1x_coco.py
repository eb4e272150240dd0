# LITv2-M RetinaNet 1x, HiLo window 2 (reported box AP 46.0).
# A LayerNorm on outputs 1-3, drop path 0.2; AdamW 1e-4, wd 1e-4 on every parameter (the authors' norm
# exemption is not under custom_keys, so it never applied), mixed precision.
# Source: ziplab/LITv2@f320e43 detection/configs/litv2/retinanet_litv2_*_fpn_1x_coco.py.
_base_ = ['./retinanet_litv2_s_fpn_1x_coco.py']
model = dict(backbone=dict(arch='litv2_m', init_cfg=dict(checkpoint='checkpoints/litv2_m.pth')))
