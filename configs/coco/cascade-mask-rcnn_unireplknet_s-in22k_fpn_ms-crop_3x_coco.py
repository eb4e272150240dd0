# UniRepLKNet-S Cascade Mask R-CNN 3x, multi-scale + crop, from ImageNet-22k weights
# (reported box / mask AP 54.3 / 47.1). The authors' config leaves the weights file open; this takes their
# 22k -> 1k file (unireplknet_s_in22k_to_in1k_384_acc86.44.pth), as their segmentation configs do.
# Drop path 0.5, layer-wise lr decay 0.8 over 12 layers; the rest as UniRepLKNet-T's.
# Source: AILab-CVC/UniRepLKNet detection/configs/coco/casc_mask_rcnn_unireplknet_s_in22k_fpn_3x_coco.py.
_base_ = ['./cascade-mask-rcnn_unireplknet_t_fpn_ms-crop_3x_coco.py']
model = dict(
    backbone=dict(arch='unireplknet_s', drop_path_rate=0.5,
                  init_cfg=dict(checkpoint='checkpoints/unireplknet_s_in22k_to_in1k_384_acc86.44.pth')),
    neck=dict(in_channels=[96, 192, 384, 768]))
optim_wrapper = dict(paramwise_cfg=dict(decay_rate=0.8))
