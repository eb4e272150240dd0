"""A ninth family, declared the way a family file declares one and nowhere else: a pytest plugin
(``-p tiny_family``) that registers it before the suite collects, and checks that the zoo's consumers pick it
up from its record. ``tests/test_tiny_family.py`` runs the contract tests and these checks on it in a fresh
process, so the family never leaks into the rest of the suite."""
import dataclasses
import re

import timm
import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, calculate_drop_path_rates
from timm.models import generate_default_cfgs

import zoo
from zoo.layers import ConvBN, ResidualConvBN
from zoo.models._base import Stage, StagedBackbone
from zoo.weights import check_pretrained


class TinyBlock(nn.Module):
    def __init__(self, dim: int, drop_path: float = 0.):
        super().__init__()
        self.mixer = ResidualConvBN(dim, 3)
        self.mlp = nn.Sequential(ConvBN(dim, 2 * dim), nn.ReLU(), ConvBN(2 * dim, dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        x = self.mixer(x)
        return x + self.drop_path(self.mlp(x))


class TinyHead(nn.Module):
    def __init__(self, dim: int, num_classes: int, drop: float = 0.):
        super().__init__()
        self.drop = nn.Dropout(drop)
        self.fc = nn.Linear(dim, num_classes)

    def forward(self, x, pre_logits: bool = False):
        return x if pre_logits else self.fc(self.drop(x))


class TinyNet(StagedBackbone):
    arch = 'TinyNet'

    def __init__(self, in_chans=3, num_classes=1000, global_pool='avg', dims=(8, 16, 24, 32), depths=(1, 1, 1, 1),
                 drop_rate=0., drop_path_rate=0.):
        super().__init__()
        self.in_chans, self.drop_rate, self.num_features = in_chans, drop_rate, dims[-1]
        self.stem = ConvBN(in_chans, dims[0], 3, 2, 1)
        dpr = calculate_drop_path_rates(drop_path_rate, list(depths), stagewise=True)
        stages, self.feature_info = [], []
        for i, (dim, depth) in enumerate(zip(dims, depths)):
            down = ConvBN(dims[i - 1], dim, 3, 2, 1) if i else None
            stages.append(Stage(down, [TinyBlock(dim, p) for p in dpr[i]]))
            self.feature_info.append(dict(num_chs=dim, reduction=2 * 2 ** i, module=f'stages.{i}'))
        self.stages = nn.Sequential(*stages)
        self.reset_classifier(num_classes, global_pool)
        self.apply(self._init_weights)

    def _make_head(self, num_classes):
        return TinyHead(self.num_features, num_classes, self.drop_rate) if num_classes else nn.Identity()


def checkpoint_filter_fn(state_dict, model):
    """The 'authors' layout names the stem 'patch_embed'."""
    return check_pretrained({re.sub(r'^patch_embed\.', 'stem.', k): v for k, v in state_dict.items()}, model)


default_cfgs = generate_default_cfgs({
    'tinynet_t.demo': dict(url='https://example.invalid/tinynet_t.pth', num_classes=1000, input_size=(3, 64, 64),
                           pool_size=(2, 2), crop_pct=0.9, interpolation='bicubic', mean=IMAGENET_DEFAULT_MEAN,
                           std=IMAGENET_DEFAULT_STD, first_conv='stem.conv', classifier='head.fc'),
})

FAMILY = zoo.register_family(zoo.Family(
    name='tinynet', display='TinyNet', model_cls=TinyNet, default_cfgs=default_cfgs,
    checkpoint_filter=checkpoint_filter_fn, docs_page='tinynet.md', dense_out_norm='bn'))


@FAMILY.register
def tinynet_t(pretrained=False, **kwargs):
    """TinyNet-T: a few thousand parameters, for tests."""
    return FAMILY.build('tinynet_t', pretrained, **kwargs)


# -- the consumers, each reading the record (run with: pytest -p tiny_family tests/tiny_family.py) --

def test_tinynet_is_listed_by_the_zoo_and_by_timm_under_its_module():
    assert 'tinynet_t' in zoo.list_models()
    assert timm.list_models(module='tinynet') == ['zoo/tinynet_t']
    assert zoo.family_of('tinynet_t') is FAMILY and FAMILY.smallest == 'tinynet_t'


def test_tinynet_loads_its_authors_layout_through_the_record(tmp_path):
    source = zoo.create_model('tinynet_t')
    official = {re.sub(r'^stem\.', 'patch_embed.', k): v for k, v in source.state_dict().items()}
    torch.save({'model': official}, tmp_path / 'tinynet_t.pth')
    model = zoo.load_checkpoint(zoo.create_model('tinynet_t'), str(tmp_path / 'tinynet_t.pth'))
    built = timm.create_model('zoo/tinynet_t', pretrained=True,
                              pretrained_cfg_overlay=dict(file=str(tmp_path / 'tinynet_t.pth')))
    for k, v in source.state_dict().items():
        assert torch.equal(model.state_dict()[k], v) and torch.equal(built.state_dict()[k], v), k


def test_tinynet_is_an_mm_backbone_with_its_dense_output_norm():
    from zoo.mm import ZooBackbone
    backbone = ZooBackbone(arch='tinynet_t', out_indices=(0, 1, 2, 3)).eval()
    outs = backbone(torch.randn(1, 3, 64, 64))
    assert [o.shape[1] for o in outs] == [8, 16, 24, 32]
    assert all(isinstance(n, nn.BatchNorm2d) for n in backbone.norms)  # the record's dense_out_norm='bn'


def test_tinynet_exports_and_deploys(tmp_path):
    from zoo.deploy import export_and_check
    row = export_and_check('tinynet_t', str(tmp_path), deploy=True, input_size=(3, 64, 64))
    assert row['max_abs_err'] <= 1e-4 and row['dynamic_hw']  # the record states no static_hw
    model = zoo.create_model('tinynet_t').eval()
    deploy = zoo.reparameterize(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in deploy.modules())
    x = torch.randn(2, 3, 64, 64)
    torch.testing.assert_close(deploy(x), model(x), rtol=1e-4, atol=1e-4)


def test_tinynet_is_benchmarked_and_tabled():
    from zoo.measure import benchmark
    from zoo.measure.report import models_table, variants_table
    rows = benchmark(['tinynet_t'], forms=('train', 'deploy'), img_size=64, batch_size=2, warmup=0, repeats=1,
                     memory=False)
    assert [(r.model, r.form) for r in rows] == [('tinynet_t', 'train'), ('tinynet_t', 'deploy')]
    reported = {'models': {n: dict(top1=70.0, top1_res=224, top1_data='in1k') for n in zoo.list_models()},
                'peers': {}}
    assert '`tinynet_t`' in variants_table('tinynet', rows, reported)
    # the models page lists every family: the others' rows stand in as copies of these
    others = [dataclasses.replace(r, model=n) for n in zoo.list_models() if n != 'tinynet_t' for r in rows]
    page = models_table(rows + others, reported)
    assert '### [TinyNet](tinynet.md)' in page and page.index('[TinyNet]') > page.index('[BiFormer]')
