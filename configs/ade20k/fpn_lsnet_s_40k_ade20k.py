# LSNet-S Semantic FPN 40k, 512x512 (reported mIoU 41.6).
# The four LSNet maps (strides 8-64) feed the FPN unchanged (the head upsamples to stride 8); backbone
# BatchNorms in eval mode; AdamW 2e-4, wd 1e-4, poly 0.9 to 1e-6, batch 32, fp32.
# Source: jameslahm/lsnet segmentation/configs/sem_fpn/fpn_lsnet_*_ade20k_40k.py.
_base_ = ['./fpn_lsnet_t_40k_ade20k.py']
model = dict(
    backbone=dict(arch='lsnet_s', init_cfg=dict(checkpoint='checkpoints/lsnet_s.pth')),
    neck=dict(in_channels=[96, 192, 320, 448]))
