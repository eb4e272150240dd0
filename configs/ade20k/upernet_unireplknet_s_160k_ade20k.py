# UniRepLKNet-S UperNet 160k, 512x512 (reported single-scale mIoU 50.5).
# A LayerNorm on every output, drop path 0.3; AdamW 1e-4, wd 0.05, layer-wise lr decay 0.9 over 12 layers, fp32.
# Source: AILab-CVC/UniRepLKNet segmentation/configs/ade20k/upernet_unireplknet_*_512_160k_ade20k.py.
_base_ = ['./upernet_unireplknet_t_160k_ade20k.py']
model = dict(
    backbone=dict(arch='unireplknet_s', drop_path_rate=0.3,
        init_cfg=dict(checkpoint='checkpoints/unireplknet_s_in1k_224_acc83.91.pth')),
    decode_head=dict(in_channels=[96, 192, 384, 768]),
    auxiliary_head=dict(in_channels=384))
optim_wrapper = dict(paramwise_cfg=dict(decay_rate=0.9, num_layers=12))
