# UniRepLKNet-T UperNet 160k, 512x512 (reported single-scale mIoU 48.6).
# A LayerNorm on every output, drop path 0.2; AdamW 1e-4, wd 0.05, layer-wise lr decay 1.0 over 9 layers, fp32.
# Source: AILab-CVC/UniRepLKNet segmentation/configs/ade20k/upernet_unireplknet_*_512_160k_ade20k.py.
_base_ = ['./_base_/upernet_160k.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='unireplknet_t', drop_path_rate=0.2,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/unireplknet_t_in1k_224_acc83.21.pth')),
    decode_head=dict(in_channels=[80, 160, 320, 640], in_index=[0, 1, 2, 3]),
    auxiliary_head=dict(in_channels=320, in_index=2))
optim_wrapper = dict(_delete_=True, type='OptimWrapper', constructor='zoo.LayerDecayOptimizerConstructor',
                     optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
                     paramwise_cfg=dict(decay_rate=1.0, decay_type='layer_wise', num_layers=9))
