# UniRepLKNet-L Cascade Mask R-CNN 3x, multi-scale + crop, from ImageNet-22k weights
# (reported box / mask AP 55.8 / 48.4). The authors' config leaves the weights file open; this takes their
# 22k -> 1k file (unireplknet_l_in22k_to_in1k_384_acc87.88.pth), as their segmentation configs do.
# Drop path 0.7, layer-wise lr decay 0.7 over 12 layers; the rest as UniRepLKNet-T's.
# Source: AILab-CVC/UniRepLKNet detection/configs/coco/casc_mask_rcnn_unireplknet_l_in22k_fpn_3x_coco.py.
_base_ = ['./cascade-mask-rcnn_unireplknet_t_fpn_ms-crop_3x_coco.py']
model = dict(
    backbone=dict(arch='unireplknet_l', drop_path_rate=0.7,
                  init_cfg=dict(checkpoint='checkpoints/unireplknet_l_in22k_to_in1k_384_acc87.88.pth')),
    neck=dict(in_channels=[192, 384, 768, 1536]))
optim_wrapper = dict(paramwise_cfg=dict(decay_rate=0.7))
