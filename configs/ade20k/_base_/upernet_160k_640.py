# UperNet 160k on ADE20K at 640x640 crops (images scaled to 640 on the short side, at most 2560 on the long one,
# then x0.5-2.0 in training): the ImageNet-22k settings of ConvNeXt and UniRepLKNet. The 512 recipe
# (./upernet_160k.py) with mmseg's ade20k_640x640 pipelines; each model file sets the backbone, the heads'
# in_channels, the test mode and the optimizer.
_base_ = ['./upernet_160k.py']
crop_size = (640, 640)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='RandomResize', scale=(2560, 640), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2560, 640), keep_ratio=True),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='PackSegInputs'),
]
model = dict(data_preprocessor=dict(size=crop_size))
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
