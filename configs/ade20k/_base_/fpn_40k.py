# Semantic FPN on ADE20K, 40k iterations, 512x512 crops, 4 images per GPU on 8 GPUs; AdamW 2e-4, weight
# decay 1e-4, poly (power 0.9) decay to 1e-6 without warmup: the PoolFormer / LSNet recipe. mmseg's own base
# files with zoo.Backbone in place of ResNet-50.
_base_ = [
    'mmseg::_base_/models/fpn_r50.py', 'mmseg::_base_/datasets/ade20k.py',
    'mmseg::_base_/schedules/schedule_40k.py', 'mmseg::_base_/default_runtime.py'
]
custom_imports = dict(imports=['zoo.mm'], allow_failed_imports=False)
crop_size = (512, 512)
model = dict(
    data_preprocessor=dict(size=crop_size),
    pretrained=None,
    backbone=dict(_delete_=True, type='zoo.Backbone', arch='lsnet_t', out_indices=(0, 1, 2, 3)),
    decode_head=dict(num_classes=150))
optim_wrapper = dict(_delete_=True, type='OptimWrapper',
                     optimizer=dict(type='AdamW', lr=2e-4, betas=(0.9, 0.999), weight_decay=1e-4))
param_scheduler = [dict(type='PolyLR', power=0.9, begin=0, end=40000, eta_min=1e-6, by_epoch=False)]
train_dataloader = dict(batch_size=4)
