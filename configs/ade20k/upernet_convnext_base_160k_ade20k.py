# ConvNeXt-B UperNet 160k, 512x512 (reported single-scale mIoU 49.1).
# A LayerNorm on every output, drop path 0.4; AdamW 1e-4, wd 0.05, stage-wise lr decay 0.9 with num_layers 12,
# mixed precision; tested with 512x512 sliding windows at stride 341.
# Source: facebookresearch/ConvNeXt semantic_segmentation/configs/convnext/upernet_convnext_*_512_160k_ade20k_ss.py.
_base_ = ['./upernet_convnext_tiny_160k_ade20k.py']
model = dict(
    backbone=dict(arch='convnext_base', init_cfg=dict(checkpoint='checkpoints/convnext_base_1k_224_ema.pth')),
    decode_head=dict(in_channels=[128, 256, 512, 1024]),
    auxiliary_head=dict(in_channels=512))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
