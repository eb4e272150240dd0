# ConvNeXt-B Cascade Mask R-CNN 3x, multi-scale + crop, from ImageNet-22k weights
# (reported box / mask AP 54.0 / 46.9).
# The 22k pre-trained file (convnext_base_22k_224.pth); drop path 0.6; AdamW 1e-4, layer-wise lr decay 0.8 over
# 12 layers; the rest as ConvNeXt-T's.
# Source: facebookresearch/ConvNeXt
# object_detection/configs/convnext/cascade_mask_rcnn_convnext_base_patch4_window7_mstrain_480-800_giou_4conv1f_adamw_3x_coco_in22k.py.
_base_ = ['./cascade-mask-rcnn_convnext_tiny_fpn_ms-crop_3x_coco.py']
model = dict(
    backbone=dict(arch='convnext_base', drop_path_rate=0.6,
                  init_cfg=dict(checkpoint='checkpoints/convnext_base_22k_224.pth')),
    neck=dict(in_channels=[128, 256, 512, 1024]))
optim_wrapper = dict(optimizer=dict(lr=1e-4), paramwise_cfg=dict(decay_rate=0.8, num_layers=12))
