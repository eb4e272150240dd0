# Cascade Mask R-CNN + FPN on COCO, 3x with multi-scale training and random crops: the ConvNeXt and
# UniRepLKNet authors' cascade recipe (after Swin). Mask R-CNN's 3x schedule, data and mask branch, with three
# box stages at IoU 0.5 / 0.6 / 0.7, each a 4conv1fc head (four 3x3 convs with SyncBN, one FC) that regresses
# decoded boxes with a GIoU loss (weight 10), class-specific. Each model file sets the backbone, the neck's
# in_channels and the authors' optimizer.
_base_ = ['./mask-rcnn_fpn_ms-crop_3x.py']


def _box_stage(target_stds):
    return dict(
        type='ConvFCBBoxHead', num_shared_convs=4, num_shared_fcs=1, in_channels=256, conv_out_channels=256,
        fc_out_channels=1024, roi_feat_size=7, num_classes=80,
        bbox_coder=dict(type='DeltaXYWHBBoxCoder', target_means=[0., 0., 0., 0.], target_stds=target_stds),
        reg_class_agnostic=False, reg_decoded_bbox=True, norm_cfg=dict(type='SyncBN', requires_grad=True),
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0),
        loss_bbox=dict(type='GIoULoss', loss_weight=10.0))


def _box_training(iou):
    return dict(
        assigner=dict(type='MaxIoUAssigner', pos_iou_thr=iou, neg_iou_thr=iou, min_pos_iou=iou,
                      match_low_quality=False, ignore_iof_thr=-1),
        sampler=dict(type='RandomSampler', num=512, pos_fraction=0.25, neg_pos_ub=-1, add_gt_as_proposals=True),
        mask_size=28, pos_weight=-1, debug=False)


model = dict(
    type='CascadeRCNN',
    roi_head=dict(
        type='CascadeRoIHead', num_stages=3, stage_loss_weights=[1, 0.5, 0.25],
        bbox_head=[_box_stage(stds) for stds in ([0.1, 0.1, 0.2, 0.2], [0.05, 0.05, 0.1, 0.1],
                                                 [0.033, 0.033, 0.067, 0.067])]),
    train_cfg=dict(rcnn=[_box_training(iou) for iou in (0.5, 0.6, 0.7)]))
