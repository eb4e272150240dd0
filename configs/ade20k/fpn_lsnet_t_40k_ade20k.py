# LSNet-T Semantic FPN 40k, 512x512 (reported mIoU 40.1).
# The four LSNet maps (strides 8-64) feed the FPN unchanged (the head upsamples to stride 8); backbone
# BatchNorms in eval mode; AdamW 2e-4, wd 1e-4, poly 0.9 to 1e-6, batch 32, fp32.
# The authors' dense backbone: 14x14 attention-bias tables (the ImageNet 4x4 ones resized on loading), the
# bias matrix resized to each grid (zoo.Backbone loads their released checkpoints only so built).
# Source: jameslahm/lsnet segmentation/configs/sem_fpn/fpn_lsnet_*_ade20k_40k.py.
_base_ = ['./_base_/fpn_40k.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='lsnet_t', norm_eval=True,
        model_kwargs=dict(attn_resolution=14, attn_bias_resize='matrix'),
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/lsnet_t.pth')),
    neck=dict(_delete_=True, type='zoo.TransConvFPN', out_channels=256, in_channels=[64, 128, 256, 384], num_outs=4),
    decode_head=dict(in_channels=[256] * 4, in_index=[0, 1, 2, 3]))
