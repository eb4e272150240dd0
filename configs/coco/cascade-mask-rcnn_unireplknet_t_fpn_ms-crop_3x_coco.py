# UniRepLKNet-T Cascade Mask R-CNN 3x, multi-scale + crop (reported box / mask AP 51.7 / 44.9).
# ImageNet-1k weights; a LayerNorm on every output, drop path 0.3, gradient checkpointing; AdamW 1e-4, wd 0.05,
# layer-wise lr decay 0.8 over 12 layers, fp32.
# Source: AILab-CVC/UniRepLKNet detection/configs/coco/casc_mask_rcnn_unireplknet_t_in1k_fpn_3x_coco.py.
_base_ = ['./_base_/cascade-mask-rcnn_fpn_ms-crop_3x.py']
model = dict(
    backbone=dict(
        type='zoo.Backbone', arch='unireplknet_t', drop_path_rate=0.3, with_cp=True,
        init_cfg=dict(type='Pretrained', checkpoint='checkpoints/unireplknet_t_in1k_224_acc83.21.pth')),
    neck=dict(in_channels=[80, 160, 320, 640]))
optim_wrapper = dict(constructor='zoo.LayerDecayOptimizerConstructor', optimizer=dict(lr=1e-4, weight_decay=0.05),
                     paramwise_cfg=dict(decay_rate=0.8, decay_type='layer_wise', num_layers=12))
