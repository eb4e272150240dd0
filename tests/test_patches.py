"""Third-party patches (zoo/patches/): each applies on the versions it supports and, on any other, refuses with
a message that names the package, the installed version and the supported range, or (oneDNN) turns its fast
path off and computes the same result."""
import warnings

import pytest
import torch
import torch.nn.functional as F

from zoo.layers import FusedLinear
from zoo.patches import UnsupportedVersionError, is_supported, mmengine_checkpoint, onednn, timm_names


@pytest.mark.parametrize('installed,supported,ok', [
    ('1.0.31', '>=1.0.29,<1.1', True), ('1.0.28', '>=1.0.29,<1.1', False), ('1.1.0', '>=1.0.29,<1.1', False),
    ('2.9.1+cpu', '>=2.9,<2.10', True), ('2.10.0.dev20260101', '>=2.9,<2.10', False),
])
def test_version_ranges(installed, supported, ok):
    assert is_supported(installed, supported) is ok


def test_timm_name_patch_refuses_an_unsupported_timm():
    with pytest.raises(UnsupportedVersionError, match=r'supports timm>=1\.0\.29,<1\.1 \(tested with 1\.0\.31\); '
                                                      r'timm 1\.1\.0 is installed'):
        timm_names.install(timm_version='1.1.0')
    timm_names.install()  # the installed timm: a no-op, the parser is wrapped once


def test_mmengine_patch_refuses_an_unsupported_mmengine():
    with pytest.raises(UnsupportedVersionError, match=r'mmengine 0\.9\.1 is installed'):
        mmengine_checkpoint.patch_mmengine_local_loader(mmengine_version='0.9.1')


@pytest.fixture
def fresh_onednn_state(monkeypatch):
    import zoo.patches
    monkeypatch.setattr(onednn, '_state', {})
    monkeypatch.setattr(zoo.patches, '_WARNED', set())
    yield
    onednn._state.clear()


def test_onednn_fast_path_is_on_for_the_tested_torch(fresh_onednn_state):
    assert onednn.why_unavailable() is None, onednn.why_unavailable()
    assert onednn.available()


@pytest.mark.parametrize('act', ['none', 'relu', 'gelu'])
def test_onednn_fast_path_turns_off_on_another_torch_and_results_stay(fresh_onednn_state, monkeypatch, act):
    layer = FusedLinear(16, 8, act=act).eval()
    x = torch.randn(4, 16)
    with torch.no_grad():
        fast = layer(x)
        monkeypatch.setattr(torch, '__version__', '2.10.0')
        onednn._state.clear()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            plain = layer(x)
    assert not onednn.available()
    assert any('supports torch>=2.9,<2.10' in str(w.message) and 'torch 2.10.0 is installed' in str(w.message)
               for w in caught)
    reference = {'none': lambda t: t, 'relu': F.relu, 'gelu': F.gelu}[act](F.linear(x, layer.weight, layer.bias))
    torch.testing.assert_close(plain, reference, rtol=0, atol=0)
    torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5)
