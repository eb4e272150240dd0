# LSNet-T RetinaNet (configs/coco/retinanet_lsnet_t_fpn_1x_coco.py) trained from scratch on the generated
# COCO-format shapes (tools/make_shapes.py): the learning check of the one-stage detector on 2 CPU cores.
# Images 128 px at their size; 3 classes; no ImageNet weights, so the backbone's BatchNorms train. The data,
# schedule and hooks of mask-rcnn_lsnet_t_fpn_shapes.py, boxes only.
_base_ = ['../coco/retinanet_lsnet_t_fpn_1x_coco.py']
data_root = 'data/coco_shapes/'
metainfo = dict(classes=('circle', 'square', 'triangle'))
scale = (128, 128)
model = dict(
    # the classifier's bias tables (the authors' 14x14 tables resized as matrices carry ImageNet weights to
    # COCO-sized grids; from scratch on 128-256 px images there is nothing to carry)
    backbone=dict(norm_eval=False, init_cfg=None, model_kwargs=dict(_delete_=True)),
    bbox_head=dict(num_classes=3),
    test_cfg=dict(max_per_img=20))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_train2017.json',
                 data_prefix=dict(img='train2017/'), pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, ann_file='annotations/instances_val2017.json',
                 data_prefix=dict(img='val2017/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json', metric='bbox')
test_evaluator = val_evaluator
max_iters = 800
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=max_iters, val_interval=max_iters)
optim_wrapper = dict(optimizer=dict(lr=1e-3, weight_decay=0.05), clip_grad=dict(max_norm=10.))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', T_max=max_iters - 100, eta_min_ratio=0.01, by_epoch=False, begin=100,
         end=max_iters),
]
default_hooks = dict(logger=dict(interval=50), checkpoint=dict(by_epoch=False, interval=400, max_keep_ckpts=2))
log_processor = dict(by_epoch=False)
