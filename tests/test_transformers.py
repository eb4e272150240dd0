"""🤗 transformers on zoo models, offline, from local folders: a zoo Hub folder (train and deploy form, as
tools/convert_checkpoint.py writes it) loads with ``AutoModelForImageClassification.from_pretrained`` and runs in
``pipeline('image-classification')`` with ``import zoo`` as the only extra line, giving the zoo model's logits
and tools/predict.py's top-5; feature maps come through transformers' timm backbone."""
import os

import pytest
import sklearn
import timm
import torch
import transformers  # the `hf` extra, installed with `dev`

import zoo
from conftest import randomize_norms
from zoo.train import predict
from zoo.weights.hub import save_for_hub

PHOTOS = os.path.join(os.path.dirname(sklearn.__file__), 'datasets', 'images')


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return randomize_norms(timm.create_model('zoo/shvit_s1')).eval()


def _logits_equal(folder, source, tol=0.0):
    hf = transformers.AutoModelForImageClassification.from_pretrained(folder).eval()
    assert type(hf).__name__ == 'TimmWrapperForImageClassification' and hf.config.num_labels == 1000
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        got, want = hf(pixel_values=x).logits, source(x)
    assert (got - want).abs().max().item() <= tol * want.abs().max().item()


def test_auto_model_gives_the_zoo_logits(model, tmp_path):
    save_for_hub(model, tmp_path)
    _logits_equal(tmp_path, model)


def test_auto_model_builds_a_deploy_form_folder(tmp_path):
    """A deploy-form folder (a family with a deploy-form constructor, as tools/convert_checkpoint.py --deploy
    writes it) is rebuilt in its deploy structure through ``model_args``."""
    deploy = zoo.reparameterize(randomize_norms(timm.create_model('zoo/unireplknet_a')).eval())
    built = timm.create_model('zoo/unireplknet_a', deploy=True).eval()
    built.load_state_dict(deploy.state_dict())
    save_for_hub(built, tmp_path, deploy=True)
    # (equal to float rounding, about 2e-7 of logits near 1, where timm's own local-dir load is bit-exact)
    _logits_equal(tmp_path, built, tol=1e-5)


def test_pipeline_top5_is_predicts_top5(model, tmp_path):
    save_for_hub(model, tmp_path / 'hub')
    torch.save(model.state_dict(), tmp_path / 'weights.pth')
    classify = transformers.pipeline('image-classification', model=str(tmp_path / 'hub'))
    ours = predict([PHOTOS], 'shvit_s1', str(tmp_path / 'weights.pth'), topk=5)
    for result in ours:
        theirs = classify(result['image'], top_k=5)
        assert [t['label'] for t in theirs] == [t['label'] for t in result['top']]
        assert [t['score'] for t in theirs] == pytest.approx([t['prob'] for t in result['top']], abs=1e-6)


def test_timm_backbone_gives_the_zoo_feature_maps(model):
    config = transformers.TimmBackboneConfig(backbone='zoo/shvit_s1', use_pretrained_backbone=False,
                                             out_indices=(0, 1, 2))
    backbone = transformers.TimmBackbone(config).eval()
    features = timm.create_model('zoo/shvit_s1', features_only=True, out_indices=(0, 1, 2)).eval()
    features.load_state_dict(model.state_dict(), strict=False)
    backbone._backbone.load_state_dict(features.state_dict())
    assert backbone.channels == features.feature_info.channels()
    x = torch.randn(1, 3, 128, 160)
    with torch.no_grad():
        for got, want in zip(backbone(pixel_values=x).feature_maps, features(x)):
            assert torch.equal(got, want)
