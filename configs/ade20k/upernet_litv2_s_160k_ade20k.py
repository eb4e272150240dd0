# LITv2-S UperNet 160k, 512x512. Not reported by the authors: the base recipe with their segmentation backbone
# (LayerNorm on every output, drop path 0.2).
# Source: BiFormer's UperNet recipe (the LITv2 authors report no UperNet).
_base_ = ['./_base_/upernet_160k.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='litv2_s', drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/litv2_s.pth')),
    decode_head=dict(in_channels=[96, 192, 384, 768], in_index=[0, 1, 2, 3]),
    auxiliary_head=dict(in_channels=384, in_index=2))
