# UniRepLKNet-S UperNet 160k, 512x512, from ImageNet-22k weights (reported single-scale mIoU 51.9).
# The 22k -> 1k file (unireplknet_s_in22k_to_in1k_384_acc86.44.pth); the rest as the 1k UniRepLKNet-S's.
# Source: AILab-CVC/UniRepLKNet segmentation/configs/ade20k/upernet_unireplknet_s_in22k_512_160k_ade20k.py.
_base_ = ['./upernet_unireplknet_s_160k_ade20k.py']
model = dict(backbone=dict(init_cfg=dict(checkpoint='checkpoints/unireplknet_s_in22k_to_in1k_384_acc86.44.pth')))
