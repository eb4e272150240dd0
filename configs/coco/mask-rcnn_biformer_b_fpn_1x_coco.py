# BiFormer-B Mask R-CNN 1x (reported box / mask AP 48.6 / 43.7).
# 16x16 routing regions (n_win=16, maps zero-padded to a multiple), a LayerNorm on every output, BatchNorms in
# eval mode, drop path 0.3; AdamW 1e-4, wd 0.05 (none on norms), mixed precision with loss scale 512.
# Source: rayleizhu/BiFormer object_detection/configs/coco/maskrcnn.1x.biformer_*.py.
_base_ = ['./mask-rcnn_biformer_s_fpn_1x_coco.py']
model = dict(
    backbone=dict(arch='biformer_b', drop_path_rate=0.3,
        init_cfg=dict(checkpoint='checkpoints/biformer_base_in1k.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
