# UniRepLKNet-S Cascade Mask R-CNN 3x, multi-scale + crop (reported box / mask AP 53.0 / 45.9).
# ImageNet-1k weights; drop path 0.5; the rest as UniRepLKNet-T's.
# Source: AILab-CVC/UniRepLKNet detection/configs/coco/casc_mask_rcnn_unireplknet_s_in1k_fpn_3x_coco.py.
_base_ = ['./cascade-mask-rcnn_unireplknet_t_fpn_ms-crop_3x_coco.py']
model = dict(
    backbone=dict(arch='unireplknet_s', drop_path_rate=0.5,
                  init_cfg=dict(checkpoint='checkpoints/unireplknet_s_in1k_224_acc83.91.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
