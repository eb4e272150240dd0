# LSNet-T UperNet 160k, 512x512. Not reported by the authors: the base recipe (AdamW 6e-5, wd 0.01, warmup 1500,
# linear decay) on LSNet's four maps (strides 8-64), backbone BatchNorms in eval mode as in their Semantic FPN.
# Source: BiFormer's UperNet recipe (the LSNet authors report no UperNet).
_base_ = ['./_base_/upernet_160k.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='lsnet_t', norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/lsnet_t.pth')),
    decode_head=dict(in_channels=[64, 128, 256, 384], in_index=[0, 1, 2, 3]),
    auxiliary_head=dict(in_channels=256, in_index=2))
