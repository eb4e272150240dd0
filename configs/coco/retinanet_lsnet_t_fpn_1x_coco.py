# LSNet-T RetinaNet 1x (reported box AP 34.2).
# All four LSNet maps (strides 8-64) plus a stride-2 conv on the last give the anchor strides 8-128.
# Backbone BatchNorms in eval mode; no drop path; AdamW 1e-4, wd 0.05, fp32.
# The authors' dense backbone: 14x14 attention-bias tables (the ImageNet 4x4 ones resized on loading), the
# bias matrix resized to each grid (zoo.Backbone loads their released checkpoints only so built).
# Source: jameslahm/lsnet detection/configs/retinanet_lsnet_*_fpn_1x_coco.py.
_base_ = ['./_base_/retinanet_fpn_1x.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='lsnet_t', norm_eval=True,
        model_kwargs=dict(attn_resolution=14, attn_bias_resize='matrix'),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/lsnet_t.pth')),
    neck=dict(_delete_=True, type='zoo.TransConvFPN', in_channels=[64, 128, 256, 384], out_channels=256, start_level=0,
              add_extra_convs='on_input', num_outs=5))
optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=0.05),
                     paramwise_cfg=dict(custom_keys={'attention_biases': dict(decay_mult=0.)}))
