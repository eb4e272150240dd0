# UniRepLKNet-S UperNet 160k, 640x640, from ImageNet-22k weights (reported single-scale mIoU 52.3).
# The 22k -> 1k file (unireplknet_s_in22k_to_in1k_384_acc86.44.pth); a LayerNorm on every output, drop path 0.3,
# gradient checkpointing; AdamW 1e-4, wd 0.05, layer-wise lr decay 0.9 over 12 layers, fp32; tested on whole
# images.
# Source: AILab-CVC/UniRepLKNet segmentation/configs/ade20k/upernet_unireplknet_s_in22k_640_160k_ade20k.py.
_base_ = ['./_base_/upernet_160k_640.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='unireplknet_s', drop_path_rate=0.3, with_cp=True,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/unireplknet_s_in22k_to_in1k_384_acc86.44.pth')),
    decode_head=dict(in_channels=[96, 192, 384, 768], in_index=[0, 1, 2, 3]),
    auxiliary_head=dict(in_channels=384, in_index=2),
    test_cfg=dict(mode='whole'))
optim_wrapper = dict(_delete_=True, type='OptimWrapper', constructor='zoo.LayerDecayOptimizerConstructor',
                     optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
                     paramwise_cfg=dict(decay_rate=0.9, decay_type='layer_wise', num_layers=12))
