# SHViT-S4 UperNet 160k, 512x512. Not reported by the authors: the base recipe on SHViT's three maps
# (strides 16-64; the auxiliary head reads the stride-32 map), backbone BatchNorms in eval mode as in their detectors.
# Source: BiFormer's UperNet recipe (the SHViT authors release no segmentation).
_base_ = ['./_base_/upernet_160k.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='shvit_s4', out_indices=(0, 1, 2), norm_eval=True,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/shvit_s4.pth')),
    decode_head=dict(in_channels=[224, 336, 448], in_index=[0, 1, 2]),
    auxiliary_head=dict(in_channels=336, in_index=1))
