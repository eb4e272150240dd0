"""The zoo/ namespace in timm's registry: zoo models resolve, timm's own models stay timm's."""
import subprocess
import sys

import pytest
import timm
from timm.models import _factory

import zoo
from zoo.patches import timm_names as _timm_names
from zoo.models.lsnet import LSNet

TIMM_OWN = ['shvit_s4', 'convnext_tiny', 'fasternet_t0', 'inception_next_tiny']


def test_zoo_name_resolves_through_timm_create_model():
    model = timm.create_model('zoo/lsnet_t')
    assert isinstance(model, LSNet)
    assert model.pretrained_cfg['architecture'] == 'zoo/lsnet_t'


def test_zoo_create_model_takes_bare_prefixed_and_tagged_names():
    assert isinstance(zoo.create_model('lsnet_t'), LSNet)
    assert isinstance(zoo.create_model('zoo/lsnet_t'), LSNet)
    assert zoo.create_model('lsnet_t.in1k_distill').pretrained_cfg['tag'] == 'in1k_distill'


@pytest.mark.parametrize('name', TIMM_OWN)
def test_timm_models_stay_timm_after_import_zoo(name):
    assert timm.models.model_entrypoint(name).__module__.startswith('timm.models.')
    assert type(timm.create_model(name)).__module__.startswith('timm.models.')


def test_import_zoo_warns_nothing():
    code = 'import warnings; warnings.simplefilter("error"); import zoo, timm; timm.create_model("zoo/lsnet_t")'
    result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert 'Overwriting' not in result.stderr


def test_every_zoo_model_is_listed_by_timm_under_the_namespace():
    assert timm.list_models('zoo/*') == sorted('zoo/' + n for n in zoo.list_models())
    assert zoo.list_models('lsnet_*') == ['lsnet_b', 'lsnet_s', 'lsnet_t']
    assert zoo.list_models('zoo/lsnet_?') == ['lsnet_b', 'lsnet_s', 'lsnet_t']
    assert not any('/' in n for n in timm.list_models()
                   if not n.startswith('zoo/')), 'only the zoo namespace holds a slash'


def test_other_names_are_parsed_by_timm_as_before():
    assert _factory.parse_model_name('hf-hub:org/repo') == ('hf-hub', 'org/repo')
    assert _factory.parse_model_name('resnet18') == (None, 'resnet18')
    with pytest.raises(ValueError, match='looks like a Hugging Face Hub repo id'):
        timm.create_model('someone/lsnet_t')
    with pytest.raises(RuntimeError, match='Unknown model'):
        timm.create_model('zoo/lsnet_x')


def test_namespace_install_is_idempotent():
    parser = _factory.parse_model_name
    _timm_names.install()
    assert _factory.parse_model_name is parser


def test_unknown_name_lists_close_matches():
    with pytest.raises(zoo.UnknownModelError, match=r"'lsnet_x'.*Close matches: .*lsnet_t"):
        zoo.create_model('lsnet_x')
    with pytest.raises(zoo.UnknownModelError, match='Known models: .*lsnet_b'):
        zoo.create_model('resnet50_totally_different')


def test_registering_a_name_twice_is_an_error():
    def lsnet_t(pretrained=False, **kwargs):
        return None
    with pytest.raises(RuntimeError, match='registered twice'):
        zoo.family_of('lsnet').register(lsnet_t)
