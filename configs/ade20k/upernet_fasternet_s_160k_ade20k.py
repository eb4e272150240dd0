# FasterNet-S UperNet 160k, 512x512. Not reported by the authors: the base recipe with their detection backbone
# (BatchNorm on every output, drop path 0.15).
# Source: BiFormer's UperNet recipe (the FasterNet authors release no segmentation).
_base_ = ['./_base_/upernet_160k.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='fasternet_s', drop_path_rate=0.15,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/fasternet_s-epoch.299-val_acc1.81.2840.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 1024], in_index=[0, 1, 2, 3]),
    auxiliary_head=dict(in_channels=512, in_index=2))
