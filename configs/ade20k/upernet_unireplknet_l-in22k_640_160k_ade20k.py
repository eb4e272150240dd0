# UniRepLKNet-L UperNet 160k, 640x640, from ImageNet-22k weights (reported single-scale mIoU 54.5).
# The 22k -> 1k file (unireplknet_l_in22k_to_in1k_384_acc87.88.pth); drop path 0.4, layer-wise lr decay 0.85; the
# rest as UniRepLKNet-S's 640 setting.
# Source: AILab-CVC/UniRepLKNet segmentation/configs/ade20k/upernet_unireplknet_l_in22k_640_160k_ade20k.py.
_base_ = ['./upernet_unireplknet_s-in22k_640_160k_ade20k.py']
model = dict(
    backbone=dict(arch='unireplknet_l', drop_path_rate=0.4,
                  init_cfg=dict(checkpoint='checkpoints/unireplknet_l_in22k_to_in1k_384_acc87.88.pth')),
    decode_head=dict(in_channels=[192, 384, 768, 1536]),
    auxiliary_head=dict(in_channels=768))
optim_wrapper = dict(paramwise_cfg=dict(decay_rate=0.85))
