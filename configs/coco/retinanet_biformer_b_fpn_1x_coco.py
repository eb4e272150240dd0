# BiFormer-B RetinaNet 1x (reported box AP 47.1).
# n_win=16, LayerNorm on every output, BatchNorms in eval mode, drop path 0.3; AdamW 1e-4, wd 1e-4,
# mixed precision with loss scale 512.
# Source: rayleizhu/BiFormer object_detection/configs/coco/retinanet.1x.biformer_*.py.
_base_ = ['./retinanet_biformer_s_fpn_1x_coco.py']
model = dict(
    backbone=dict(arch='biformer_b', drop_path_rate=0.3,
        init_cfg=dict(checkpoint='checkpoints/biformer_base_in1k.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
