# LSNet-T Mask R-CNN 1x (reported box / mask AP 35.0 / 32.7).
# LSNet gives strides 8-64: a transposed conv of the stride-8 lateral adds the stride-4 level (zoo.TransConvFPN).
# Every BatchNorm of the backbone stays in eval mode (norm_eval); no drop path; AdamW 1e-4, wd 0.05, fp32.
# The authors' dense backbone: 14x14 attention-bias tables (the ImageNet 4x4 ones resized on loading), the
# bias matrix resized to each grid (zoo.Backbone loads their released checkpoints only so built).
# Source: jameslahm/lsnet detection/configs/mask_rcnn_lsnet_*_fpn_1x_coco.py.
_base_ = ['./_base_/mask-rcnn_fpn_1x.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='lsnet_t', norm_eval=True,
        model_kwargs=dict(attn_resolution=14, attn_bias_resize='matrix'),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/lsnet_t.pth')),
    neck=dict(_delete_=True, type='zoo.TransConvFPN', in_channels=[64, 128, 256, 384], out_channels=256, num_outs=5,
              num_extra_trans_convs=1))
optim_wrapper = dict(optimizer=dict(lr=1e-4, weight_decay=0.05),
                     paramwise_cfg=dict(custom_keys={'attention_biases': dict(decay_mult=0.)}))
