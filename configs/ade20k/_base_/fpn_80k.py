# Semantic FPN on ADE20K, 80k iterations (LITv2's and BiFormer's length); otherwise as fpn_40k.py.
_base_ = ['./fpn_40k.py']
param_scheduler = [dict(type='PolyLR', power=0.9, begin=0, end=80000, eta_min=1e-6, by_epoch=False)]
train_cfg = dict(type='IterBasedTrainLoop', max_iters=80000, val_interval=8000)
default_hooks = dict(checkpoint=dict(type='CheckpointHook', by_epoch=False, interval=8000))
