# ConvNeXt-L UperNet 160k, 640x640, from ImageNet-22k weights (reported single-scale mIoU 53.2).
# The 22k pre-trained file (convnext_large_22k_224.pth); the rest as ConvNeXt-B's.
# Source: facebookresearch/ConvNeXt semantic_segmentation/configs/convnext/upernet_convnext_large_640_160k_ade20k_ss.py.
_base_ = ['./upernet_convnext_base-in22k_640_160k_ade20k.py']
model = dict(
    backbone=dict(arch='convnext_large', init_cfg=dict(checkpoint='checkpoints/convnext_large_22k_224.pth')),
    decode_head=dict(in_channels=[192, 384, 768, 1536]),
    auxiliary_head=dict(in_channels=768))
