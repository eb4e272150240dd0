# ConvNeXt-S UperNet 160k, 512x512 (reported single-scale mIoU 48.7).
# A LayerNorm on every output, drop path 0.3; AdamW 1e-4, wd 0.05, stage-wise lr decay 0.9 with num_layers 12,
# mixed precision; tested with 512x512 sliding windows at stride 341.
# Source: facebookresearch/ConvNeXt semantic_segmentation/configs/convnext/upernet_convnext_*_512_160k_ade20k_ss.py.
_base_ = ['./upernet_convnext_tiny_160k_ade20k.py']
model = dict(
    backbone=dict(arch='convnext_small', drop_path_rate=0.3,
        init_cfg=dict(checkpoint='checkpoints/convnext_small_1k_224_ema.pth')))
optim_wrapper = dict(paramwise_cfg=dict(num_layers=12))
