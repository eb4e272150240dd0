"""zoo.Backbone in mmdet and mmseg: every family's Mask R-CNN and UperNet from the project's configs on the
generated COCO / ADE20K-format shapes, bad inputs, checkpoints, freezing, layer-wise lr decay, the
transposed-conv FPN, mmengine resume and a two-process torchrun run."""
import copy
import functools
import glob
import json
import math
import os
import subprocess
import sys

import pytest
import timm
import torch
import torch.nn.functional as F

import zoo
import zoo.mm
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from zoo.weights import CheckpointMismatchError
from zoo.mm.runner import adapt_to_cpu
from zoo.mm.shapes import make_ade_shapes, make_coco_shapes

from conftest import randomize_norms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = os.path.join(ROOT, 'configs')

# family: its Mask R-CNN config and its UperNet config from the papers (each run with the family's smallest variant)
FAMILIES = {
    'lsnet': ('mask-rcnn_lsnet_t_fpn_1x_coco', 'upernet_lsnet_t_160k_ade20k'),
    'convnext': ('mask-rcnn_convnext_tiny_fpn_ms-crop_3x_coco', 'upernet_convnext_tiny_160k_ade20k'),
    'inceptionnext': ('mask-rcnn_inceptionnext_tiny_fpn_ms-crop_3x_coco', 'upernet_inceptionnext_tiny_160k_ade20k'),
    'unireplknet': ('mask-rcnn_unireplknet_t_fpn_ms-crop_3x_coco', 'upernet_unireplknet_t_160k_ade20k'),
    'fasternet': ('mask-rcnn_fasternet_s_fpn_1x_coco', 'upernet_fasternet_s_160k_ade20k'),
    'shvit': ('mask-rcnn_shvit_s4_fpn_1x_coco', 'upernet_shvit_s4_160k_ade20k'),
    'litv2': ('mask-rcnn_litv2_s_fpn_1x_coco', 'upernet_litv2_s_160k_ade20k'),
    'biformer': ('mask-rcnn_biformer_s_fpn_1x_coco', 'upernet_biformer_s_160k_ade20k'),
}


@pytest.fixture(scope='module', autouse=True)
def _cached_package_metainfo():
    """mmengine reads all of mmdet's / mmseg's ~400 metafiles again for every `mmdet::` base a config names
    (about two seconds a config); the files do not change during the tests, so each is read once (mmengine
    only reads what they hold)."""
    import mmengine.config.utils as utils
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(utils, 'load', functools.cache(utils.load))
        yield


@pytest.fixture(scope='module')
def shapes(tmp_path_factory):
    root = tmp_path_factory.mktemp('shapes')
    make_coco_shapes(str(root / 'coco'), num_train=4, num_val=2, size=96, seed=1)
    make_ade_shapes(str(root / 'ade'), num_train=4, num_val=2, size=96, seed=1)
    return root


def family_config(task: str, name: str, arch: str, data_root) -> Config:
    """The family's config on the shapes data (the dataloaders, evaluators and class counts of
    configs/shapes/), with ``arch`` as backbone and the heads' in_channels following it."""
    cfg = Config.fromfile(os.path.join(CONFIGS, task, name + '.py'))
    shapes = Config.fromfile(os.path.join(CONFIGS, 'shapes', 'mask-rcnn_lsnet_t_fpn_shapes.py' if task == 'coco'
                                          else 'upernet_lsnet_t_shapes.py'))
    for key in ('train_dataloader', 'val_dataloader', 'test_dataloader', 'val_evaluator', 'test_evaluator'):
        cfg[key] = copy.deepcopy(shapes[key])
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = str(data_root) + '/'
    bb = cfg.model.backbone
    bb.arch, bb.init_cfg = arch, None
    chans = zoo.mm.out_channels(arch, bb.get('out_indices', (0, 1, 2, 3)))
    if task == 'coco':
        cfg.val_evaluator.ann_file = cfg.test_evaluator.ann_file = str(data_root / 'annotations/instances_val2017.json')
        cfg.model.neck.in_channels = chans
        heads = cfg.model.roi_head.bbox_head  # a list of stages in Cascade Mask R-CNN
        for head in heads if isinstance(heads, list) else [heads]:
            head.num_classes = 3
        cfg.model.roi_head.mask_head.num_classes = 3
    else:
        cfg.model.data_preprocessor.size = shapes.model.data_preprocessor.size
        cfg.model.decode_head.in_channels = chans
        cfg.model.auxiliary_head.in_channels = chans[cfg.model.auxiliary_head.in_index]
        cfg.model.decode_head.num_classes = cfg.model.auxiliary_head.num_classes = 4
    adapt_to_cpu(cfg)
    return cfg


def build(cfg: Config):
    init_default_scope(cfg.default_scope)
    if cfg.default_scope == 'mmdet':
        from mmdet.registry import DATASETS, MODELS
    else:
        from mmseg.registry import DATASETS, MODELS
    return MODELS.build(cfg.model), DATASETS.build(cfg.train_dataloader.dataset)


# each family trains one of the two tasks end to end and each task is trained with four families (alternating
# in name order); every family's configs for both tasks are built and checked against its outputs in
# test_every_config_parses_and_names_a_fitting_neck, and its backbone outputs in test_outputs_strides_and_norms
TRAIN_STEPS = [(family, ('coco', 'ade20k')[i % 2]) for i, family in enumerate(sorted(FAMILIES))]


@pytest.mark.slow
@pytest.mark.parametrize('family,task', TRAIN_STEPS)
def test_mask_rcnn_or_upernet_train_step_for_every_family(family, task, shapes):
    det_cfg, seg_cfg = FAMILIES[family]
    arch = zoo.family_of(family).smallest
    cfg = family_config(task, det_cfg if task == 'coco' else seg_cfg, arch,
                        shapes / ('coco' if task == 'coco' else 'ade'))
    model, dataset = build(cfg)
    model.init_weights()
    model.train()
    data = model.data_preprocessor(pseudo_collate([dataset[0], dataset[1]]), True)
    losses = model(**data, mode='loss')
    loss, log_vars = model.parse_losses(losses)
    assert torch.isfinite(loss), log_vars
    expected = {'loss_rpn_cls', 'loss_cls', 'loss_bbox', 'loss_mask'} if task == 'coco' else {'decode.loss_ce', 'aux.loss_ce'}
    assert expected <= set(log_vars)
    loss.backward()
    # every trainable backbone parameter takes part (DistributedDataParallel needs no unused-parameter search)
    no_grad = [n for n, p in model.backbone.named_parameters() if p.requires_grad and p.grad is None]
    assert not no_grad, no_grad[:5]
    assert model.backbone.model.stem.parameters().__next__().grad.abs().sum() > 0
    model.eval()
    with torch.no_grad():
        out = model.test_step(pseudo_collate([dataset[0]]))
    if task == 'coco':
        assert out[0].pred_instances.bboxes.shape[1] == 4
    else:
        # predictions come back at the image's original size
        assert tuple(out[0].pred_sem_seg.data.shape[-2:]) == tuple(out[0].metainfo['ori_shape'])


AUTHORS_REPO = {'lsnet': 'jameslahm/lsnet'}


def test_every_config_parses_and_names_a_fitting_neck():
    files = sorted(glob.glob(os.path.join(CONFIGS, 'coco', '*.py')) + glob.glob(os.path.join(CONFIGS, 'ade20k', '*.py')))
    assert len(files) >= 67
    out_channels = functools.cache(zoo.mm.out_channels)  # (the COCO and ADE20K configs share their backbones)
    for f in files:
        cfg = Config.fromfile(f)
        bb = cfg.model.backbone
        assert bb.type == 'zoo.Backbone' and zoo.models.is_zoo_model(bb.arch), f
        chans = out_channels(bb.arch, tuple(bb.get('out_indices', (0, 1, 2, 3))))
        if 'neck' in cfg.model and 'in_channels' in cfg.model.neck:
            assert list(cfg.model.neck.in_channels) == chans, f
        if cfg.model.get('decode_head', {}).get('type') == 'UPerHead':
            assert list(cfg.model.decode_head.in_channels) == chans, f
            assert cfg.model.auxiliary_head.in_channels == chans[cfg.model.auxiliary_head.in_index], f
        ckpt = bb.init_cfg.checkpoint
        assert ckpt.startswith('checkpoints/'), f
        dense_kwargs = zoo.models.family_of(bb.arch).dense_model_kwargs
        if dense_kwargs and 'Source: ' + AUTHORS_REPO.get(bb.arch.split('_')[0], '?') in open(f).read():
            assert bb.model_kwargs == dense_kwargs, f  # the authors' settings build their dense backbone
        if '-ws4' in f:
            assert tuple(bb.model_kwargs.local_ws) == (0, 0, 4, 1), f
        if '-in22k' in f:  # the ImageNet-22k settings start from a 22k file
            assert '22k' in ckpt, f
        if '_640_' in f:  # and the ADE20K ones crop, pad and slide at 640
            crop = [t for t in cfg.train_dataloader.dataset.pipeline if t.type == 'RandomCrop'][0].crop_size
            assert tuple(crop) == tuple(cfg.model.data_preprocessor.size) == (640, 640), f
            assert cfg.model.test_cfg.get('crop_size', (640, 640)) == (640, 640), f


@pytest.mark.slow
def test_cascade_mask_rcnn_train_step(shapes):
    """The Cascade Mask R-CNN recipe (ConvNeXt's and UniRepLKNet's: three box stages of 4conv1fc heads with GIoU
    losses on Mask R-CNN's mask branch) builds and trains: every stage's losses are finite and reach the
    backbone; it predicts boxes and masks."""
    cfg = family_config('coco', 'cascade-mask-rcnn_convnext_tiny_fpn_ms-crop_3x_coco', 'convnext_atto',
                        shapes / 'coco')
    # fewer proposals and sampled boxes than COCO's 2000 / 512: on 96 px images with a few shapes the three
    # stages of four 3x3 convs would spend a minute on boxes that are nearly all background
    cfg.model.train_cfg.rpn_proposal.max_per_img = cfg.model.test_cfg.rpn.max_per_img = 64
    for stage in cfg.model.train_cfg.rcnn:
        stage.sampler.num = 32
    model, dataset = build(cfg)
    assert type(model).__name__ == 'CascadeRCNN' and len(model.roi_head.bbox_head) == 3
    model.init_weights()
    model.train()
    data = model.data_preprocessor(pseudo_collate([dataset[0], dataset[1]]), True)
    loss, log_vars = model.parse_losses(model(**data, mode='loss'))
    assert torch.isfinite(loss), log_vars
    assert {f's{i}.{k}' for i in range(3) for k in ('loss_cls', 'loss_bbox', 'loss_mask')} <= set(log_vars)
    loss.backward()
    assert model.backbone.model.stem.parameters().__next__().grad.abs().sum() > 0
    model.eval()
    # a validation image (mmdet 3.3's cascade mask merging slices a tensor with a negative step, which torch
    # refuses, for an image whose metainfo says flipped, as the training pipeline's may)
    from mmdet.registry import DATASETS
    val_set = DATASETS.build(cfg.val_dataloader.dataset)
    with torch.no_grad():
        out = model.test_step(pseudo_collate([val_set[0]]))
    assert out[0].pred_instances.bboxes.shape[1] == 4 and 'masks' in out[0].pred_instances


@pytest.mark.slow
@pytest.mark.parametrize('name', ['retinanet_lsnet_t_fpn_shapes', 'fpn_lsnet_t_shapes'])
def test_shapes_learning_check_configs_train_a_step(name, shapes):
    """The RetinaNet and Semantic FPN learning checks (configs/shapes/, measured in docs/downstream.md) build on the
    shapes data and take a step with finite losses that reach the backbone."""
    cfg = Config.fromfile(os.path.join(CONFIGS, 'shapes', name + '.py'))
    data_root = shapes / ('coco' if name.startswith('retinanet') else 'ade')
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        cfg[loader].dataset.data_root = f'{data_root}/'
    adapt_to_cpu(cfg)
    model, dataset = build(cfg)
    model.init_weights()
    model.train()
    data = model.data_preprocessor(pseudo_collate([dataset[0], dataset[1]]), True)
    loss, log_vars = model.parse_losses(model(**data, mode='loss'))
    assert torch.isfinite(loss), log_vars
    assert ({'loss_cls', 'loss_bbox'} if name.startswith('retinanet') else {'decode.loss_ce'}) <= set(log_vars)
    loss.backward()
    assert model.backbone.model.stem.parameters().__next__().grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------- the backbone

def test_outputs_strides_and_norms():
    b = zoo.mm.ZooBackbone('convnext_atto', out_indices=(1, 3))
    outs = b(torch.randn(2, 3, 96, 128))
    assert [tuple(o.shape) for o in outs] == [(2, 80, 12, 16), (2, 320, 3, 4)]
    assert b.out_channels == [80, 320] and len(b.norms) == 2
    # stages after the last output and the classification head are gone
    assert len(b.model.stages) == 4 and not any(k.startswith('head.fc') for k in b.state_dict())
    b = zoo.mm.ZooBackbone('lsnet_t', out_indices=(0, 1))
    assert len(b.model.stages) == 2 and b.norms is None
    assert [o.shape[1] for o in b(torch.randn(1, 3, 64, 64))] == [64, 128]
    b = zoo.mm.ZooBackbone('litv2_s', out_norm=(None, 'ln', 'ln', 'ln'))
    assert isinstance(b.norms[0], torch.nn.Identity) and isinstance(b.norms[1], zoo.layers.norm.LayerNorm2d)


def test_matches_forward_intermediates_of_the_classifier():
    model = zoo.create_model('fasternet_t0').eval()
    b = zoo.mm.ZooBackbone('fasternet_t0', out_norm=None).eval()
    b.model.load_state_dict({k: v for k, v in model.state_dict().items() if k in b.model.state_dict()})
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        for got, want in zip(b(x), model.forward_intermediates(x, intermediates_only=True)):
            torch.testing.assert_close(got, want)


@pytest.mark.parametrize('kwargs, error, words', [
    (dict(arch='lsnet_q'), zoo.UnknownModelError, 'lsnet_t'),
    (dict(arch=3), TypeError, 'arch'),
    (dict(arch='lsnet_t', out_indices=(0, 4)), ValueError, 'out of range for lsnet_t: it has 4 stages'),
    (dict(arch='shvit_s1', out_indices=(0, 1, 2, 3)), ValueError, 'it has 3 stages'),
    (dict(arch='lsnet_t', out_indices=(2, 1)), ValueError, 'increasing'),
    (dict(arch='lsnet_t', frozen_stages=5), ValueError, 'frozen_stages=5'),
    (dict(arch='lsnet_t', out_norm='gn'), ValueError, 'out_norm'),
])
def test_bad_arguments_are_named(kwargs, error, words):
    from mmdet.registry import MODELS
    with pytest.raises(error, match=words):
        MODELS.build(dict(type='zoo.Backbone', **kwargs))


def _params(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_pretrained_official_zoo_and_detector_checkpoints(tmp_path):
    from test_checkpoint import official_state_dict
    # the authors' ImageNet file (their key names, a classifier): mapped, head and final norm dropped
    sd = official_state_dict('lsnet_t')
    torch.save({'model': sd}, tmp_path / 'official.pth')
    b = zoo.mm.ZooBackbone('lsnet_t', init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'official.pth')))
    b.init_weights()
    torch.testing.assert_close(b.model.stem[0].conv.weight, sd['patch_embed.0.c.weight'])
    # a zoo file
    full = zoo.create_model('convnext_atto')
    torch.save(full.state_dict(), tmp_path / 'zoo.pth')
    b = zoo.mm.ZooBackbone('convnext_atto', init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'zoo.pth')))
    b.init_weights()
    torch.testing.assert_close(b.model.stages[3].blocks[1].mlp.fc2.weight, full.stages[3].blocks[1].mlp.fc2.weight)
    # a detector built on zoo.Backbone (mmengine's layout: meta, message hub, 'backbone.' keys)
    det_state = {'state_dict': {'backbone.' + k: v + 1 for k, v in b.state_dict().items()
                                if v.is_floating_point()} | {'neck.x': torch.zeros(1)},
                 'meta': {'epoch': 1}}
    for k, v in b.state_dict().items():
        if not v.is_floating_point():
            det_state['state_dict']['backbone.' + k] = v
    torch.save(det_state, tmp_path / 'det.pth')
    c = zoo.mm.ZooBackbone('convnext_atto', init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'det.pth')))
    c.init_weights()
    torch.testing.assert_close(c.norms[0].weight, b.norms[0].weight + 1)


# the authors' dense backbones as zoo.Backbone arguments: LSNet's 14 x 14 bias tables resized as matrices, LITv2's
# detectors without a norm on the first output
DENSE_KWARGS = {'lsnet_t': dict(model_kwargs=dict(attn_resolution=14, attn_bias_resize='matrix')),
                'litv2_s': dict(out_norm=(None, 'ln', 'ln', 'ln')), 'shvit_s1': dict(out_indices=(0, 1, 2))}
# each family's output norms in the authors' files, and the epsilon of their LayerNorms
DENSE_NORMS = {'fasternet_t0': ['norm0', 'norm2', 'norm4', 'norm6'], 'biformer_t': [f'extra_norms.{i}' for i in range(4)],
               'lsnet_t': [], 'shvit_s1': [], 'litv2_s': [None, 'norm1', 'norm2', 'norm3']}


def _authors_lsnet_bias(table, r, n):
    """The authors' detection attention bias (detection/model/lsnet.py), from its index construction: the bias
    matrix of the r x r grid resized bicubically, as an image, to (n, n)."""
    offsets, idxs = {}, []
    points = [(i, j) for i in range(r) for j in range(r)]
    for p1 in points:
        for p2 in points:
            idxs.append(offsets.setdefault((abs(p1[0] - p2[0]), abs(p1[1] - p2[1])), len(offsets)))
    ab = table[:, torch.tensor(idxs).view(r * r, r * r)]
    return F.interpolate(ab[None], size=(n, n), mode='bicubic')[0]


def _authors_dense_backbone(arch, tmp_path):
    """The backbone entries of the authors' detector / segmentor (their mmdet / mmseg code: the classifier's key
    names without its head and final norm, plus a norm on each output: ConvNeXt's and UniRepLKNet's LayerNorms
    ``norm0..3``, FasterNet's BatchNorms ``norm0/2/4/6``, BiFormer's LayerNorms ``extra_norms.i``, LITv2's
    ``norm1..3``; none for LSNet and SHViT, LSNet with 14 x 14 bias tables), random; and the reference forward,
    written from those names: the classification model the trunk entries came from (LSNet's with the authors'
    bias resize of their detection code), then each output through its norm."""
    torch.manual_seed(0)
    if arch.startswith('unireplknet'):
        from test_unireplknet import official_layout as layout
        trunk = randomize_norms(zoo.create_model(arch, num_classes=0), 0).eval()
        sd = layout(trunk.state_dict())
    elif arch.startswith(('biformer', 'shvit', 'litv2')):  # the authors' classifier keys, recorded from their classes
        from test_attention_families import _official_file
        path, sd = _official_file(tmp_path, arch)
        trunk = zoo.create_model(arch, pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    elif arch.startswith('lsnet'):
        from test_checkpoint import official_state_dict
        sd = official_state_dict(arch)
        for k in [k for k in sd if k.endswith('attention_biases')]:  # the detection backbone's 14 x 14 tables
            sd[k] = torch.randn(sd[k].shape[0], 196)
            sd[k.replace('biases', 'bias_idxs')] = torch.zeros(196, 196, dtype=torch.long)
        trunk = zoo.create_model(arch, num_classes=0, attn_resolution=14)
        trunk.load_state_dict(zoo.models.family_of('lsnet_t').checkpoint_filter(
            {k: v for k, v in sd.items() if not k.startswith('head.')}, trunk))
        for m in trunk.modules():
            if hasattr(m, 'attention_biases'):
                m._bias = lambda table, H, W, r=m.resolution: _authors_lsnet_bias(table, r, H * W)
        trunk.eval()
    else:  # timm's ConvNeXt and FasterNet are the authors' architectures
        from test_conv_families import _convnext_official_layout, _fasternet_official_layout
        layout = _convnext_official_layout if arch.startswith('convnext') else _fasternet_official_layout
        trunk = randomize_norms(timm.create_model(arch, num_classes=0), 0).eval()
        sd = layout(trunk.state_dict())
    names = DENSE_NORMS.get(arch, [f'norm{i}' for i in range(4)])
    eps = 1e-5 if arch.startswith('litv2') else 1e-6  # LITv2's nn.LayerNorm, the others' LayerNorm2d
    sd = {k: v for k, v in sd.items() if not k.startswith(('norm.', 'head.', 'avgpool_pre_head.'))}
    for name, info in zip(names, trunk.feature_info):
        c = info['num_chs']
        if name is None:
            continue
        sd[f'{name}.weight'], sd[f'{name}.bias'] = torch.rand(c) + 0.5, torch.randn(c)
        if arch.startswith('fasternet'):
            sd[f'{name}.running_mean'], sd[f'{name}.running_var'] = torch.randn(c), torch.rand(c) + 0.5
            sd[f'{name}.num_batches_tracked'] = torch.tensor(0)

    def reference(x):
        outs = []
        maps = trunk.forward_intermediates(x, intermediates_only=True)
        for name, m in zip(names or [None] * len(maps), maps):
            if name is None:
                outs.append(m)
                continue
            w, b = sd[f'{name}.weight'], sd[f'{name}.bias']
            if arch.startswith('fasternet'):
                outs.append(F.batch_norm(m, sd[f'{name}.running_mean'], sd[f'{name}.running_var'], w, b, False))
            else:
                u, var = m.mean(1, keepdim=True), m.var(1, keepdim=True, unbiased=False)
                outs.append((m - u) / torch.sqrt(var + eps) * w[:, None, None] + b[:, None, None])
        return outs
    return sd, reference


@pytest.mark.parametrize('arch', ['convnext_atto', 'unireplknet_a', 'fasternet_t0', 'biformer_t', 'lsnet_t',
                                  'shvit_s1', 'litv2_s'])
def test_authors_dense_checkpoint_loads(arch, tmp_path):
    """The authors' own detection / segmentation file: its backbone entries load through init_cfg, and the whole
    file through mmengine's load_checkpoint (load_from, tools/mm_test.py) with every key accounted for, giving
    the reference forward's maps; a file of another family or without one of its output norms is refused, naming
    the keys."""
    from mmengine.runner import load_checkpoint
    sd, reference = _authors_dense_backbone(arch, tmp_path)
    kwargs = DENSE_KWARGS.get(arch, {})
    x = torch.randn(1, 3, 96, 64)
    with torch.no_grad():
        want = reference(x)
    # init_cfg, from a detector checkpoint in mmengine's layout
    torch.save({'state_dict': {'backbone.' + k: v for k, v in sd.items()}, 'meta': {}}, tmp_path / 'authors.pth')
    b = zoo.mm.ZooBackbone(arch, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'authors.pth')), **kwargs)
    b.init_weights()
    with torch.no_grad():
        for got, ref in zip(b.eval()(x), want, strict=True):
            torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
    # the whole detector: the authors' backbone entries beside the neck's and heads'
    init_default_scope('mmdet')
    from mmdet.registry import MODELS
    cfg = Config.fromfile(os.path.join(CONFIGS, 'coco', 'mask-rcnn_convnext_tiny_fpn_ms-crop_3x_coco.py'))
    cfg.model.backbone.update(arch=arch, init_cfg=None, **kwargs)
    cfg.model.neck.in_channels = zoo.mm.out_channels(arch, cfg.model.backbone.out_indices)
    adapt_to_cpu(cfg)
    detector = MODELS.build(cfg.model)
    state = {k: v for k, v in detector.state_dict().items() if not k.startswith('backbone.')}
    torch.save({'state_dict': state | {'backbone.' + k: v for k, v in sd.items()}, 'meta': {}}, tmp_path / 'det.pth')
    fresh = MODELS.build(cfg.model)
    load_checkpoint(fresh, str(tmp_path / 'det.pth'), strict=True)
    with torch.no_grad():
        for got, ref in zip(fresh.backbone.eval()(x), want, strict=True):
            torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)
        # and the loaded detector predicts end to end
        from mmdet.structures import DetDataSample
        shape = tuple(x.shape[-2:])
        sample = DetDataSample(metainfo=dict(img_shape=shape, ori_shape=shape, pad_shape=shape, scale_factor=(1.0, 1.0),
                                             batch_input_shape=shape))
        pred = fresh.eval().predict(x, [sample])[0].pred_instances
    assert pred.bboxes.shape[1] == 4 and len(pred.masks) == len(pred.bboxes)
    # refusals name the keys and copy nothing
    other = 'unireplknet_a' if arch.startswith('convnext') else 'convnext_atto'
    b = zoo.mm.ZooBackbone(other, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'authors.pth')))
    before = _params(b)
    with pytest.raises(CheckpointMismatchError, match=r'(?s)nothing was loaded.*backbone entries of .*authors.pth'):
        b.init_weights()
    assert all(torch.equal(v, before[k]) for k, v in b.state_dict().items())
    names = DENSE_NORMS.get(arch, [f'norm{i}' for i in range(4)])
    if names:
        last = names[-1]
        torch.save({'state_dict': {'backbone.' + k: v for k, v in sd.items() if not k.startswith(last + '.')}},
                   tmp_path / 'no_norm.pth')
        b = zoo.mm.ZooBackbone(arch, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'no_norm.pth')),
                               **kwargs)
        with pytest.raises(CheckpointMismatchError, match=r'missing keys \(\d\): norms\.3\.weight, norms\.3\.bias'):
            b.init_weights()
    if 'model_kwargs' in kwargs:  # a backbone not built as the authors' dense one is refused, naming the arguments
        b = zoo.mm.ZooBackbone(arch, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'authors.pth')))
        with pytest.raises(CheckpointMismatchError, match=r"(?s)built with dict\(attn_resolution=14, "
                                                          r"attn_bias_resize='matrix'\).*nothing was loaded"):
            b.init_weights()
    if arch == 'lsnet_t':  # their ImageNet file (4 x 4 tables) into their dense backbone: resized as they do
        from test_checkpoint import official_state_dict
        in1k = official_state_dict(arch)
        torch.save({'model': in1k}, tmp_path / 'in1k.pth')
        b = zoo.mm.ZooBackbone(arch, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'in1k.pth')), **kwargs)
        b.init_weights()
        table = next(v for k, v in in1k.items() if k.endswith('attention_biases'))
        got = next(m for m in b.modules() if hasattr(m, 'attention_biases')).attention_biases
        torch.testing.assert_close(got, F.interpolate(table.view(1, -1, 4, 4), size=(14, 14), mode='bicubic').view(-1, 196))
    if arch == 'litv2_s':  # their segmentor's layout: a norm on every output (norm0..3), nn.LayerNorm's epsilon
        c = zoo.mm.out_channels(arch)[0]
        seg = dict(sd, **{'norm0.weight': torch.rand(c) + 0.5, 'norm0.bias': torch.randn(c)})
        torch.save({'state_dict': {'backbone.' + k: v for k, v in seg.items()}}, tmp_path / 'seg.pth')
        b = zoo.mm.ZooBackbone(arch, init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 'seg.pth')))
        b.init_weights()
        assert [n.eps for n in b.norms] == [1e-5] * 4
        torch.testing.assert_close(b.norms[0].weight, seg['norm0.weight'])
    torch.save({'state_dict': {'backbone.stem.weight': torch.zeros(1)}}, tmp_path / 'inceptionnext.pth')
    b = zoo.mm.ZooBackbone('inceptionnext_atto', init_cfg=dict(type='Pretrained',
                                                              checkpoint=str(tmp_path / 'inceptionnext.pth')))
    with pytest.raises(CheckpointMismatchError, match="nor a known layout of the InceptionNeXt authors' detection"):
        b.init_weights()


def test_checkpoint_of_another_arch_is_refused_untouched(tmp_path):
    torch.save(zoo.create_model('lsnet_s').state_dict(), tmp_path / 's.pth')
    b = zoo.mm.ZooBackbone('lsnet_t', init_cfg=dict(type='Pretrained', checkpoint=str(tmp_path / 's.pth')))
    before = _params(b)
    with pytest.raises(CheckpointMismatchError, match=r'(?s)does not fit.*shape mismatch.*arch=.lsnet_t'):
        b.init_weights()
    assert all(torch.equal(v, before[k]) for k, v in b.state_dict().items())
    with pytest.raises(ValueError, match='names no checkpoint'):
        zoo.mm.ZooBackbone('lsnet_t', init_cfg=dict(type='Pretrained')).init_weights()


def test_frozen_stages_and_norm_eval():
    b = zoo.mm.ZooBackbone('fasternet_t0', frozen_stages=1, norm_eval=True).train()
    frozen = [n for n, p in b.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith(('model.stem.', 'model.stages.0.')) for n in frozen)
    assert all(p.requires_grad for n, p in b.named_parameters() if n.startswith('model.stages.1.'))
    assert all(not m.training for m in b.modules() if isinstance(m, torch.nn.BatchNorm2d))
    b = zoo.mm.ZooBackbone('fasternet_t0', frozen_stages=0).train()
    assert not b.model.stem.training and b.model.stages[0].training
    assert all(not p.requires_grad for p in b.model.stem.parameters())
    assert all(p.requires_grad for p in b.model.stages.parameters())
    bns = [m for m in b.model.stages.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.training for m in bns)


def test_drop_path_and_model_kwargs_reach_the_model():
    b = zoo.mm.ZooBackbone('biformer_t', drop_path_rate=0.3, model_kwargs=dict(n_win=4))
    assert b.model.stages[0].blocks[0].attn.n_win == 4
    rates = [m.drop_prob for m in b.modules() if type(m).__name__ == 'DropPath']
    assert rates and math.isclose(max(rates), 0.3, rel_tol=1e-6)


# ------------------------------------------------------------------------------- neck and layer decay

def test_trans_conv_fpn_levels():
    from mmdet.registry import MODELS
    neck = MODELS.build(dict(type='zoo.TransConvFPN', in_channels=[128, 224, 320], out_channels=16, num_outs=5,
                             num_extra_trans_convs=2))
    outs = neck([torch.randn(1, c, s, s) for c, s in zip([128, 224, 320], [8, 4, 2])])
    assert [o.shape[-1] for o in outs] == [32, 16, 8, 4, 2]
    neck = MODELS.build(dict(type='zoo.TransConvFPN', in_channels=[8, 16], out_channels=4, num_outs=3,
                             add_extra_convs='on_input'))
    assert [o.shape[-1] for o in neck([torch.randn(1, 8, 8, 8), torch.randn(1, 16, 4, 4)])] == [8, 4, 2]
    with pytest.raises(ValueError, match='num_extra_trans_convs'):
        MODELS.build(dict(type='zoo.TransConvFPN', in_channels=[8], out_channels=4, num_outs=1, num_extra_trans_convs=1))


def test_layer_decay_ids_follow_the_official_convnext_rule():
    lid = zoo.mm.layer_id
    assert lid('backbone.model.stem.0.weight', 12) == 0
    assert lid('backbone.model.stages.0.blocks.2.conv_dw.weight', 12) == 1
    assert lid('backbone.model.stages.1.downsample.1.weight', 12) == 2
    assert lid('backbone.model.stages.2.downsample.1.weight', 12) == 3
    assert lid('backbone.model.stages.2.blocks.7.mlp.fc1.weight', 12) == 3 + 7 // 3
    assert lid('backbone.model.stages.3.blocks.0.norm.weight', 12) == 12
    assert lid('backbone.norms.0.weight', 12) == 13 and lid('neck.lateral_convs.0.conv.weight', 12) == 13
    assert lid('backbone.model.stages.2.blocks.7.mlp.fc1.weight', 6, 'stage_wise') == 3
    assert lid('backbone.model.stages.2.downsample.1.weight', 6, 'stage_wise') == 0
    with pytest.raises(ValueError, match='decay_type'):
        lid('backbone.model.stem.0.weight', 6, 'block_wise')


def test_layer_decay_constructor_builds_scaled_groups():
    from mmengine.optim import build_optim_wrapper
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = Config.fromfile(os.path.join(CONFIGS, 'ade20k', 'upernet_convnext_tiny_160k_ade20k.py'))
    cfg.model.backbone.update(arch='convnext_atto', init_cfg=None)
    cfg.model.decode_head.in_channels = zoo.mm.out_channels('convnext_atto')
    cfg.model.auxiliary_head.in_channels = 160
    adapt_to_cpu(cfg)
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    groups = {id(p): g for g in wrapper.optimizer.param_groups for p in g['params']}
    stem = model.backbone.model.stem[0].weight
    head = model.decode_head.conv_seg.weight
    block_bias = model.backbone.model.stages[2].blocks[0].conv_dw.bias
    # stage-wise, num_layers 6: stem id 0 -> 0.9 ** 7, heads id 7 -> 1; biases and 1-D parameters: no decay
    assert math.isclose(groups[id(stem)]['lr'], 1e-4 * 0.9 ** 7)
    assert math.isclose(groups[id(head)]['lr'], 1e-4) and groups[id(head)]['weight_decay'] == 0.05
    assert math.isclose(groups[id(block_bias)]['lr'], 1e-4 * 0.9 ** 4) and groups[id(block_bias)]['weight_decay'] == 0


# ---------------------------------------------------------------------------------- runs: resume, torchrun

class _GetattrBeyondHistoryBuffer:
    def __reduce__(self):
        from mmengine.logging import HistoryBuffer
        return getattr, (HistoryBuffer, '__init__')


def test_mmengine_loader_reads_weights_only_and_refuses_other_getattr(tmp_path):
    from mmengine.runner.checkpoint import CheckpointLoader
    import pickle
    import numpy as np
    from mmengine.logging import HistoryBuffer
    buf = HistoryBuffer()
    buf.update(np.float64(0.5))
    torch.save({'state_dict': {'w': torch.ones(2)}, 'meta': {'hub': {'loss': buf, 'arr': np.arange(3)}}},
               tmp_path / 'ok.pth')
    ck = CheckpointLoader.load_checkpoint(str(tmp_path / 'ok.pth'), map_location='cpu')
    assert ck['meta']['hub']['loss'].current() == 0.5 and ck['meta']['hub']['arr'].tolist() == [0, 1, 2]
    torch.save({'x': _GetattrBeyondHistoryBuffer()}, tmp_path / 'bad.pth')
    with pytest.raises(pickle.UnpicklingError, match='getattr'):
        CheckpointLoader.load_checkpoint(str(tmp_path / 'bad.pth'), map_location='cpu')


def _losses(work_dir):
    rows = []
    for path in sorted(glob.glob(os.path.join(work_dir, '*', 'vis_data', 'scalars.json'))):
        with open(path) as f:
            rows += [json.loads(line) for line in f if '"loss"' in line]
    return {r['iter']: r['loss'] for r in rows}


def _run(args, **kw):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=ROOT)
    r = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, **kw)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r


def _seg_options(data_root, iters):
    """Options for a short UperNet run on the shapes. No random
    flip and no dropout: mmengine checkpoints carry no RNG state, so only a run without randomness after the
    start can be compared step by step with a resumed one."""
    opts = {'train_dataloader.dataset.data_root': f'{data_root}/', 'val_dataloader.dataset.data_root': f'{data_root}/',
            'test_dataloader.dataset.data_root': f'{data_root}/', 'train_cfg.max_iters': iters,
            'train_cfg.val_interval': iters, 'default_hooks.logger.interval': 1,
            'default_hooks.checkpoint.interval': 2, 'default_hooks.checkpoint.max_keep_ckpts': 5,
            'train_dataloader.batch_size': 2, 'train_dataloader.dataset.pipeline.3.prob': 0.0,
            'model.decode_head.dropout_ratio': 0.0, 'model.auxiliary_head.dropout_ratio': 0.0,
            'param_scheduler.0.end': 2, 'param_scheduler.1.begin': 2, 'param_scheduler.1.end': iters,
            'randomness.seed': 0}
    return [f'{k}={v}' for k, v in opts.items()]


@pytest.mark.slow
def test_resume_continues_with_the_same_iterations_and_losses(shapes, tmp_path):
    """A 4-iteration run, and a second run resumed from the first one's iteration-2 checkpoint: iterations 3
    and 4 have the same losses in both."""
    config = os.path.join(CONFIGS, 'shapes', 'upernet_lsnet_t_shapes.py')
    full, part = str(tmp_path / 'full'), str(tmp_path / 'part')
    _run([sys.executable, 'tools/mm_train.py', config, '--work-dir', full,
          '--cfg-options', *_seg_options(shapes / 'ade', 4)])
    assert os.path.isfile(os.path.join(full, 'iter_2.pth'))
    # the checkpoint holds mmengine's message hub (HistoryBuffer, numpy values): read with weights_only=True
    r = _run([sys.executable, 'tools/mm_train.py', config, '--work-dir', part, '--resume',
              os.path.join(full, 'iter_2.pth'), '--cfg-options', *_seg_options(shapes / 'ade', 4)])
    assert 'resumed epoch: 0, iter: 2' in r.stdout + r.stderr
    want, got = _losses(full), _losses(part)
    assert sorted(want) == [1, 2, 3, 4] and sorted(got) == [3, 4]
    for it in (3, 4):
        assert math.isclose(got[it], want[it], rel_tol=1e-4), (it, got[it], want[it])
    assert os.path.isfile(os.path.join(part, 'iter_4.pth'))


@pytest.mark.slow
@pytest.mark.xdist_group('runs')
def test_two_process_torchrun_trains_with_finite_losses(shapes, tmp_path):
    config = os.path.join(CONFIGS, 'shapes', 'upernet_lsnet_t_shapes.py')
    work = str(tmp_path / 'ddp')
    r = _run([sys.executable, '-m', 'torch.distributed.run', '--nproc-per-node', '2', '--master-port', '29531',
              'tools/mm_train.py', config, '--launcher', 'pytorch', '--work-dir', work,
              '--cfg-options', *_seg_options(shapes / 'ade', 4)])
    log = r.stdout + r.stderr
    assert 'Distributed launcher: pytorch' in log and 'GPU number: 2' in log, log[-2000:]
    losses = _losses(work)
    assert sorted(losses) == [1, 2, 3, 4] and all(math.isfinite(v) for v in losses.values())
    assert 'mIoU' in log


@pytest.mark.parametrize('task', ['coco', 'ade20k'])
def test_predictions_are_drawn_into_pngs(task, shapes, tmp_path):
    """tools/mm_predict.py: a checkpoint of the shapes config (its weights and class names, as mmengine saves
    them) drawn on the validation images by mmdet's / mmseg's inferencer, one PNG each, at the image's size."""
    from PIL import Image

    from zoo.mm.predict import predict
    sys.path.insert(0, os.path.join(ROOT, 'tools'))
    from mm_predict import main
    name, data = (('mask-rcnn_lsnet_t_fpn_shapes', shapes / 'coco' / 'val2017') if task == 'coco'
                  else ('upernet_lsnet_t_shapes', shapes / 'ade' / 'images' / 'validation'))
    config = os.path.join(CONFIGS, 'shapes', name + '.py')
    cfg = Config.fromfile(config)
    cfg.train_dataloader.dataset.data_root = str(data.parents[1] if task == 'ade20k' else data.parent)
    model, dataset = build(cfg)
    checkpoint = tmp_path / 'model.pth'
    torch.save({'state_dict': model.state_dict(), 'meta': {'dataset_meta': dataset.metainfo}}, checkpoint)
    images = sorted(glob.glob(str(data / '*')))
    pngs = predict(config, str(checkpoint), [str(data)], str(tmp_path / 'out'), score_thr=0.0)
    assert [os.path.splitext(os.path.basename(p))[0] for p in pngs] == \
        [os.path.splitext(os.path.basename(p))[0] for p in images]
    for png, image in zip(pngs, images):
        with Image.open(png) as drawn, Image.open(image) as source:
            assert drawn.format == 'PNG' and drawn.size == source.size
    with pytest.raises(FileNotFoundError, match='checkpoint .*nope.pth: no such file'):
        main([config, str(tmp_path / 'nope.pth'), str(data)])
    with pytest.raises(ValueError, match='score_thr=2.0 is not allowed'):
        predict(config, str(checkpoint), [str(data)], str(tmp_path / 'out'), score_thr=2.0)


def test_leaving_the_process_group_frees_ddp_first(tmp_path):
    """A launched mm run frees the runner's DDP wrapper while the group lives, then destroys the group (DDP freed
    after it tore the group down with the GIL held: a finished rank could hang)."""
    import types
    import weakref
    import torch.distributed as dist
    from zoo.mm.runner import CPUDistributedDataParallel, _leave_process_group
    dist.init_process_group('gloo', init_method=f'file://{tmp_path / "group"}', rank=0, world_size=1)
    try:
        module = torch.nn.Linear(4, 2)
        runner = types.SimpleNamespace(model=CPUDistributedDataParallel(module=module))
        ddp = weakref.ref(runner.model)
        _leave_process_group(runner)
        assert runner.model is module and ddp() is None and not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
