# UperNet (+ FCN auxiliary head on stage 2) on ADE20K, 160k iterations, 512x512 crops, 2 images per GPU on
# 8 GPUs; AdamW 6e-5, weight decay 0.01, 1500-iteration linear warmup then linear (power 1) decay, the
# Swin / BiFormer UperNet recipe. mmseg's own base files with zoo.Backbone in place of ResNet-50; each model
# file sets the backbone, the heads' in_channels and, where its authors differ, the optimizer.
_base_ = [
    'mmseg::_base_/models/upernet_r50.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/schedules/schedule_160k.py', 'mmseg::_base_/default_runtime.py'
]
custom_imports = dict(imports=['zoo.mm'], allow_failed_imports=False)
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,
    backbone=dict(_delete_=True, type='zoo.Backbone', arch='lsnet_t', out_indices=(0, 1, 2, 3)),
    decode_head=dict(num_classes=150),
    auxiliary_head=dict(num_classes=150))
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=6e-5, betas=(0.9, 0.999), weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, begin=1500, end=160000, eta_min=0.0, by_epoch=False),
]
train_dataloader = dict(batch_size=2)
val_dataloader = dict(batch_size=1)
test_dataloader = val_dataloader
