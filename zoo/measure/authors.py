"""The authors' own model code as a benchmark peer.

For the attention families, the model is built from a local checkout of the authors' repository, in the
form the authors time it (LSNet's and SHViT's ``replace_batchnorm``; LITv2 and BiFormer have no other), with
the pieces that run on CUDA only replaced by plain PyTorch: LSNet's Triton SKA by an unfold, LITv2's
compiled deformable convolution by ``torchvision.ops.deform_conv2d``. The zoo model it is measured against
loads the authors' model's weights through the family's checkpoint filter, so both compute the same
function and the difference of their outputs is reported beside the speed.

    python tools/benchmark.py lsnet_t --forms deploy --authors lsnet=../lsnet

Importing an authors' module must leave the process as it was: their ``register_model`` decorators would
replace timm's entries of the same name (timm's own ``shvit_s1``), and their top-level packages (``model``,
``models``, ``ops``, ``utils``) would shadow one another. :func:`authors_model` imports each checkout with
timm's registration switched off and takes its modules out of ``sys.modules`` again afterwards; the model
keeps them, and :func:`authors_modules` puts them back while it runs (``torch.compile`` looks a function's
module up by name).
"""
import contextlib
import copy
import dataclasses
import importlib
import importlib.util
import os
import sys
import types
from typing import Callable, Dict, Mapping, Sequence, Tuple
from unittest import mock

import torch
import torch.nn as nn
import torch.nn.functional as F

__all__ = ['AUTHORS', 'AuthorsCode', 'authors_model', 'check_checkout', 'authors_modules', 'UnfoldSKA',
           'TorchvisionDeformConv2dPack', 'randomize_']


@dataclasses.dataclass(frozen=True)
class AuthorsCode:
    """How one family's official code is built from a checkout of ``repo``: ``variants`` maps the zoo's
    variant to the authors' name for it; ``build(checkout, authors_name)`` returns their model, in eval mode;
    ``deploy(checkout, model)`` their deploy form of it."""
    repo: str
    variants: Mapping[str, str]
    build: Callable[[str, str], nn.Module]
    deploy: Callable[[str, nn.Module], nn.Module]


class UnfoldSKA(nn.Module):
    """LSNet's small-kernel aggregation as an unfold, for the authors' Triton module (``model/ska.py``, CUDA
    only): ``out[b, c] = sum over the k x k taps of x[b, c] shifted, times weight[b, c % G, tap]``."""

    def forward(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        B, C, H, W = x.shape
        G, kk = weight.shape[1], weight.shape[2]
        k = int(round(kk ** 0.5))
        cols = F.unfold(x, k, padding=(k - 1) // 2).view(B, C // G, G, kk, H, W)
        return (cols * weight.unsqueeze(1)).sum(3).reshape(B, C, H, W)


class TorchvisionDeformConv2dPack(nn.Module):
    """LITv2's ``DeformConv2dPack`` (its parameters: ``weight``, ``bias``, ``conv_offset``) computed by
    ``torchvision.ops.deform_conv2d`` instead of the authors' compiled extension."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation=1, groups=1,
                 deformable_groups=1, im2col_step=32, bias=True, lr_mult=0.1):
        super().__init__()
        k = nn.modules.utils._pair(kernel_size)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *k))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        nn.init.kaiming_uniform_(self.weight, a=5 ** 0.5)
        self.conv_offset = nn.Conv2d(in_channels, deformable_groups * 2 * k[0] * k[1], k, stride, padding)
        nn.init.zeros_(self.conv_offset.weight)
        nn.init.zeros_(self.conv_offset.bias)

    def forward(self, x):
        from torchvision.ops import deform_conv2d
        return deform_conv2d(x, self.conv_offset(x), self.weight, self.bias, stride=self.stride,
                             padding=self.padding, dilation=self.dilation)


def _module(name: str, **attrs) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__path__ = []  # a package, so submodules can be stubbed under it
    module.__dict__.update(attrs)
    return module


@contextlib.contextmanager
def _checkout(root: str, packages: Sequence[str], stubs: Mapping[str, types.ModuleType] = None):
    """Import from ``root`` with timm's ``register_model`` a no-op and ``stubs`` standing in for modules; on
    exit every module of ``packages`` imported meanwhile is dropped (and put into the dict this yields) and what
    was there before is back."""
    import timm.models
    import timm.models._registry
    mine = lambda name: name.split('.')[0] in packages or name in (stubs or {})
    saved = {name: module for name, module in sys.modules.items() if mine(name)}
    for name in saved:
        del sys.modules[name]
    sys.modules.update(stubs or {})
    sys.path.insert(0, root)
    registries = [timm.models, timm.models._registry]
    with contextlib.suppress(ImportError):  # timm's deprecated alias, which some authors import from
        registries.append(importlib.import_module('timm.models.registry'))
    imported = {}
    try:
        with contextlib.ExitStack() as stack:
            for registry in registries:
                stack.enter_context(mock.patch.object(registry, 'register_model', lambda fn: fn))
            yield imported
    finally:
        sys.path.remove(root)
        for name in [name for name in sys.modules if mine(name)]:
            imported[name] = sys.modules.pop(name)
        sys.modules.update(saved)


@contextlib.contextmanager
def authors_modules(model: nn.Module):
    """While inside, the modules ``model`` (from :func:`authors_model`) was imported from are in
    ``sys.modules`` again (``torch.compile`` imports a function's module by name); on exit, what was there."""
    modules = getattr(model, 'authors_modules', {})
    saved = {name: sys.modules[name] for name in modules if name in sys.modules}
    sys.modules.update(modules)
    try:
        yield model
    finally:
        for name in modules:
            del sys.modules[name]
        sys.modules.update(saved)


def _load_file(path: str, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _replace_batchnorm(root: str, model: nn.Module) -> nn.Module:
    """The authors' own deploy step, ``utils.replace_batchnorm`` of their repository (LSNet, SHViT)."""
    _load_file(os.path.join(root, 'utils.py'), '_authors_utils').replace_batchnorm(model)
    return model


def _as_is(root: str, model: nn.Module) -> nn.Module:
    return model


def _build_lsnet(root: str, name: str) -> nn.Module:
    package = importlib.import_module('model')  # the checkout's package
    stubs = {'model.ska': _module('model.ska', SKA=UnfoldSKA)}
    sys.modules.update(stubs)
    package.ska = stubs['model.ska']
    lsnet = importlib.import_module('model.lsnet')
    # their variant functions go through timm's build_model_with_cfg with a keyword timm no longer takes
    with mock.patch.object(lsnet, 'build_model_with_cfg', lambda cls, variant, pretrained, default_cfg=None,
                           **kwargs: cls(**kwargs)):
        return getattr(lsnet, name)()


def _build_shvit(root: str, name: str) -> nn.Module:
    return getattr(importlib.import_module('model.build'), name)()


def _build_litv2(root: str, name: str) -> nn.Module:
    import yaml
    with open(os.path.join(root, 'classification', 'configs', f'{name}.yaml')) as f:
        lit = yaml.safe_load(f)['MODEL']['LIT']
    keys = {'EMBED_DIM': 'embed_dim', 'DEPTHS': 'depths', 'NUM_HEADS': 'num_heads', 'ALPHA': 'alpha',
            'LOCAL_WS': 'local_ws'}
    kwargs = {'local_ws': [0, 0, 2, 1]}  # their config's default (classification/config.py)
    kwargs.update({keys[k]: v for k, v in lit.items() if k in keys})
    return importlib.import_module('models.litv2').LITv2(drop_path_rate=0., **kwargs)


def _build_biformer(root: str, name: str) -> nn.Module:
    return getattr(importlib.import_module('models.biformer'), name)()


def _litv2_stubs() -> Dict[str, types.ModuleType]:
    names = ['mm_modules', 'mm_modules.DCN', 'mm_modules.DCN.modules', 'mm_modules.DCN.modules.deform_conv2d']
    stubs = {name: _module(name) for name in names}
    stubs[names[-1]].DeformConv2dPack = TorchvisionDeformConv2dPack
    return stubs


def _biformer_stubs() -> Dict[str, types.ModuleType]:
    """fairscale, which their models import for activation checkpointing only (unused at inference)."""
    if importlib.util.find_spec('fairscale') is not None:
        return {}
    names = ['fairscale', 'fairscale.nn', 'fairscale.nn.checkpoint']
    stubs = {name: _module(name) for name in names}
    stubs[names[-1]].checkpoint_wrapper = lambda module, *args, **kwargs: module
    return stubs


# family -> its official code; where the packages and stubs of each checkout come from
AUTHORS: Dict[str, AuthorsCode] = {
    'lsnet': AuthorsCode('THU-MIG/lsnet', {'lsnet_t': 'lsnet_t', 'lsnet_s': 'lsnet_s', 'lsnet_b': 'lsnet_b'},
                         _build_lsnet, _replace_batchnorm),
    'shvit': AuthorsCode('ysj9909/SHViT', {f'shvit_s{i}': f'shvit_s{i}' for i in range(1, 5)},
                         _build_shvit, _replace_batchnorm),
    'litv2': AuthorsCode('ziplab/LITv2', {'litv2_s': 'litv2-small', 'litv2_m': 'litv2-medium',
                                          'litv2_b': 'litv2-base'}, _build_litv2, _as_is),
    'biformer': AuthorsCode('rayleizhu/BiFormer', {'biformer_t': 'biformer_tiny', 'biformer_s': 'biformer_small',
                                                   'biformer_b': 'biformer_base'}, _build_biformer, _as_is),
}
_IMPORTS = {  # family -> (the folder put on sys.path, its top-level packages, stubs)
    'lsnet': ('', ('model',), dict),
    'shvit': ('', ('model',), dict),
    'litv2': ('classification', ('models',), _litv2_stubs),
    'biformer': ('', ('models', 'ops'), _biformer_stubs),
}


@torch.no_grad()
def randomize_(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every parameter a value its initialization leaves constant (zero-initialized branches, unit
    norms) and every BatchNorm non-trivial statistics, so that comparing two models tests every term."""
    g = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        if p.numel() and p.is_floating_point() and (p.numel() == 1 or p.std() == 0):
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
            m.running_mean.copy_(0.1 * torch.randn(m.running_mean.shape, generator=g))
            m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=g))
    return model


def check_checkout(family: str, checkout: str) -> None:
    """Raise FileNotFoundError, naming the repository to clone, where ``checkout`` (of ``family``'s authors'
    code) is not a folder."""
    if not os.path.isdir(checkout):
        raise FileNotFoundError(f'checkout={checkout!r}: not a folder; clone https://github.com/{AUTHORS[family].repo}')


def authors_model(name: str, checkout: str, seed: int = 0) -> Tuple[nn.Module, nn.Module]:
    """The authors' model of zoo variant ``name`` from ``checkout`` in their deploy form, and the zoo's model
    of that variant (train form) holding the same weights, both in eval mode."""
    from ..models import create_model, family_of
    family = family_of(name)
    code = AUTHORS.get(family.name)
    if code is None:
        raise ValueError(f'name={name!r}: no authors\' code is wired for family {family.name!r}; '
                         f'families with it: {sorted(AUTHORS)}')
    if name not in code.variants:
        raise ValueError(f'name={name!r}: the authors\' code of {family.display} builds {sorted(code.variants)}')
    check_checkout(family.name, checkout)
    folder, packages, stubs = _IMPORTS[family.name]
    torch.manual_seed(seed)
    with _checkout(os.path.abspath(os.path.join(checkout, folder)), packages, stubs()) as imported:
        theirs = randomize_(code.build(checkout, code.variants[name]), seed).eval()
    ours = create_model(name)
    ours.load_state_dict(family.checkpoint_filter(copy.deepcopy(theirs.state_dict()), ours))
    theirs = code.deploy(checkout, theirs).eval()
    theirs.authors_modules = imported  # for authors_modules()
    return theirs, ours.eval()
