# UniRepLKNet-XL UperNet 160k, 640x640, from ImageNet-22k weights (reported single-scale mIoU 55.2).
# The authors report this setting but ship no config for it: UniRepLKNet-L's (drop path 0.4, layer-wise lr decay
# 0.85) with the XL backbone and its 22k -> 1k file (unireplknet_xl_in22k_to_in1k_384_acc87.96.pth).
# Source: AILab-CVC/UniRepLKNet README.md (ADE20K table) and AILab-CVC/UniRepLKNet
# segmentation/configs/ade20k/upernet_unireplknet_l_in22k_640_160k_ade20k.py.
_base_ = ['./upernet_unireplknet_l-in22k_640_160k_ade20k.py']
model = dict(
    backbone=dict(arch='unireplknet_xl',
                  init_cfg=dict(checkpoint='checkpoints/unireplknet_xl_in22k_to_in1k_384_acc87.96.pth')),
    decode_head=dict(in_channels=[256, 512, 1024, 2048]),
    auxiliary_head=dict(in_channels=1024))
