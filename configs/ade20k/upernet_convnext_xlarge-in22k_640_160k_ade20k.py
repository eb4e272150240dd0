# ConvNeXt-XL UperNet 160k, 640x640, from ImageNet-22k weights (reported single-scale mIoU 53.6).
# The 22k pre-trained file (convnext_xlarge_22k_224.pth); AdamW 8e-5; the rest as ConvNeXt-B's.
# Source: facebookresearch/ConvNeXt
# semantic_segmentation/configs/convnext/upernet_convnext_xlarge_640_160k_ade20k_ss.py.
_base_ = ['./upernet_convnext_base-in22k_640_160k_ade20k.py']
model = dict(
    backbone=dict(arch='convnext_xlarge', init_cfg=dict(checkpoint='checkpoints/convnext_xlarge_22k_224.pth')),
    decode_head=dict(in_channels=[256, 512, 1024, 2048]),
    auxiliary_head=dict(in_channels=1024))
optim_wrapper = dict(optimizer=dict(lr=8e-5))
