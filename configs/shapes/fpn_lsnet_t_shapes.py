# LSNet-T Semantic FPN (configs/ade20k/fpn_lsnet_t_40k_ade20k.py) trained from scratch on the generated
# ADE20K-format shapes (tools/make_shapes.py): the learning check of the FPN segmenter on 2 CPU cores.
# Images 128 px, resized to 256; 4 classes (floor, box, tent, ball: ADE20K's ids in the PNGs); no ImageNet
# weights, so the backbone's BatchNorms train. The data, schedule and hooks of upernet_lsnet_t_shapes.py.
_base_ = ['../ade20k/fpn_lsnet_t_40k_ade20k.py']
data_root = 'data/ade_shapes/'
metainfo = dict(classes=('floor', 'box', 'tent', 'ball'))
crop_size = (256, 256)
model = dict(
    data_preprocessor=dict(size=crop_size),
    # the classifier's bias tables (the authors' 14x14 tables resized as matrices carry ImageNet weights to
    # COCO-sized grids; from scratch on 128-256 px images there is nothing to carry)
    backbone=dict(norm_eval=False, init_cfg=None, model_kwargs=dict(_delete_=True)),
    decode_head=dict(num_classes=4, channels=128))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline,
                 data_prefix=dict(img_path='images/training', seg_map_path='annotations/training')))
val_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline,
                 data_prefix=dict(img_path='images/validation', seg_map_path='annotations/validation')))
test_dataloader = val_dataloader
max_iters = 600
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.01))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=50),
    dict(type='PolyLR', power=1.0, begin=50, end=max_iters, eta_min=0.0, by_epoch=False),
]
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(by_epoch=False, interval=200, max_keep_ckpts=2),
                     visualization=dict(draw=False))
