# LITv2-M Mask R-CNN 1x, HiLo window 4 (reported box / mask AP 46.5 / 42.0).
# The window-2 config (mask-rcnn_litv2_m_fpn_1x_coco.py) with stage 3's Hi-Fi windows and Lo-Fi pooling at 4x4.
# Source: ziplab/LITv2@f320e43 detection/configs/litv2/mask_rcnn_litv2_*_fpn_1x_coco_ws_4.py (their RetinaNet-S
# file names a base config their repository lacks; it is read as the window-2 one, as for M and B).
_base_ = ['./mask-rcnn_litv2_m_fpn_1x_coco.py']
model = dict(backbone=dict(model_kwargs=dict(local_ws=(0, 0, 4, 1))))
