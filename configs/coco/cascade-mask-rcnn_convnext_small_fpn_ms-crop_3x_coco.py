# ConvNeXt-S Cascade Mask R-CNN 3x, multi-scale + crop (reported box / mask AP 51.9 / 45.0).
# ImageNet-1k weights; drop path 0.6; AdamW 2e-4, layer-wise lr decay 0.7 over 12 layers; the rest as ConvNeXt-T's.
# Source: facebookresearch/ConvNeXt
# object_detection/configs/convnext/cascade_mask_rcnn_convnext_small_patch4_window7_mstrain_480-800_giou_4conv1f_adamw_3x_coco_in1k.py.
_base_ = ['./cascade-mask-rcnn_convnext_tiny_fpn_ms-crop_3x_coco.py']
model = dict(
    backbone=dict(arch='convnext_small', drop_path_rate=0.6,
                  init_cfg=dict(checkpoint='checkpoints/convnext_small_1k_224_ema.pth')))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
