# SHViT-S4 Mask R-CNN 1x (reported box / mask AP 39.0 / 35.9).
# SHViT gives three maps at strides 16-64: two transposed convs add the stride-8 and stride-4 levels.
# Backbone BatchNorms in eval mode; no drop path; AdamW 1e-4, wd 0.05, fp32.
# Source: ysj9909/SHViT downstream/configs/mask_rcnn_shvit_s4_fpn_1x_coco.py.
_base_ = ['./_base_/mask-rcnn_fpn_1x.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='shvit_s4', out_indices=(0, 1, 2), norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/shvit_s4.pth')),
    neck=dict(_delete_=True, type='zoo.TransConvFPN', in_channels=[224, 336, 448], out_channels=256, num_outs=5,
              num_extra_trans_convs=2))
optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=0.05))
