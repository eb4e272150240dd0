# SHViT-S4 RetinaNet 1x (reported box AP 38.8).
# A transposed conv adds stride 8 below the three SHViT maps (16-64), a stride-2 conv on the last adds 128.
# Backbone BatchNorms in eval mode; no drop path; AdamW 1e-4, wd 0.05, fp32.
# Source: ysj9909/SHViT downstream/configs/retinanet_shvit_s4_fpn_1x_coco.py.
_base_ = ['./_base_/retinanet_fpn_1x.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='shvit_s4', out_indices=(0, 1, 2), norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/shvit_s4.pth')),
    neck=dict(_delete_=True, type='zoo.TransConvFPN', in_channels=[224, 336, 448], out_channels=256, start_level=0,
              add_extra_convs='on_input', num_outs=5, num_extra_trans_convs=1))
optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=0.05))
