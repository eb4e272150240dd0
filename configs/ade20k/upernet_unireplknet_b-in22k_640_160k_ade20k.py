# UniRepLKNet-B UperNet 160k, 640x640, from ImageNet-22k weights (reported single-scale mIoU 53.5).
# The 22k -> 1k file (unireplknet_b_in22k_to_in1k_384_acc87.40.pth); the rest as UniRepLKNet-S's 640 setting.
# Source: AILab-CVC/UniRepLKNet segmentation/configs/ade20k/upernet_unireplknet_b_in22k_640_160k_ade20k.py.
_base_ = ['./upernet_unireplknet_s-in22k_640_160k_ade20k.py']
model = dict(
    backbone=dict(arch='unireplknet_b',
                  init_cfg=dict(checkpoint='checkpoints/unireplknet_b_in22k_to_in1k_384_acc87.40.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
