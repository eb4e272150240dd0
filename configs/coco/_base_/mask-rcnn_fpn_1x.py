# Mask R-CNN + FPN on COCO, 1x: 12 epochs, lr x0.1 after epochs 8 and 11, 500-iteration linear warmup,
# 1333x800 single scale, 2 images per GPU on 8 GPUs. mmdet's own base files with zoo.Backbone in place of
# ResNet-50; each model file sets the backbone, the neck's in_channels and the authors' optimizer.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py', 'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py', 'mmdet::_base_/default_runtime.py'
]
custom_imports = dict(imports=['zoo.mm'], allow_failed_imports=False)
model = dict(backbone=dict(_delete_=True, type='zoo.Backbone', arch='lsnet_t', out_indices=(0, 1, 2, 3)))
optim_wrapper = dict(optimizer=dict(_delete_=True, type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05))
auto_scale_lr = dict(enable=False, base_batch_size=16)
