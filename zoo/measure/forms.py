"""What is measured: a model in a form (train, deploy, deploy with unfused attention, deploy with its fused
activations unchecked for NaN, timm's model as built or
on channels-last storage) and in a runtime (eager, ``torch.compile``, ONNX Runtime, bf16, int8, OpenVINO,
ExecuTorch: ``zoo.deploy.runtimes``), and the timm peers a zoo model is compared with."""
import copy
from typing import Callable, Optional

import timm
import torch
import torch.nn as nn

from ..deploy import reparameterize
from ..deploy.runtimes import RUNTIMES, deployed
from ..layers import naive_attention, unchecked_activations
from ..models import family_of, timm_name

__all__ = ['FORMS', 'PEER_FORMS', 'RUNTIMES', 'PEERS', 'ChannelsLast', 'Unchecked', 'Unfused', 'build_in_form',
           'in_runtime', 'timm_equivalent']

FORMS = ('train', 'deploy', 'unfused', 'unchecked')
# a timm model: in timm's deploy form as built, or with its weights and inputs in channels-last storage
PEER_FORMS = ('timm', 'timm-cl')
# timm models a user would pick instead of a zoo model: the zoo's families as timm has them, and efficient peers
PEERS = ('convnext_atto', 'inception_next_atto', 'shvit_s1', 'fasternet_t0', 'repvit_m1_0', 'fastvit_t8',
         'efficientvit_m5', 'efficientvit_b0', 'mobilenetv3_large_100')


def _build(name: str, form: str) -> nn.Module:
    """A zoo model (any form but 'timm') or timm's own model of that name ('timm': the bare name is timm's,
    even where the zoo has a model of the same name, as ``shvit_s1`` or ``convnext_tiny``)."""
    return timm.create_model(name if form in PEER_FORMS else timm_name(name)).eval()


class Unfused(nn.Module):
    """Runs ``model`` with ``scaled_dot_product_attention`` replaced by :func:`naive_attention` (the attention
    matrix built in full), to measure what the fused kernels bring."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        fused = nn.functional.scaled_dot_product_attention
        nn.functional.scaled_dot_product_attention = naive_attention
        try:
            return self.model(x)
        finally:
            nn.functional.scaled_dot_product_attention = fused


class Unchecked(nn.Module):
    """Runs ``model`` inside :func:`zoo.layers.unchecked_activations` (every fused activation in oneDNN's
    kernel, no non-finite check), to measure what keeping NaN costs the deploy form."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        with unchecked_activations():
            return self.model(x)


class ChannelsLast(nn.Module):
    """``model`` with its weights, and each input, in channels-last storage."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)

    def forward(self, x):
        return self.model(x.contiguous(memory_format=torch.channels_last))


def build_in_form(name: str, form: str, model: Optional[nn.Module] = None) -> nn.Module:
    """Model ``name`` in ``form``, in eval mode; from a copy of ``model`` (zoo model ``name``, train form) where
    given, else with fresh weights."""
    model = _build(name, form) if model is None else copy.deepcopy(model).eval()
    if form in PEER_FORMS:
        from timm.utils import reparameterize_model
        model = reparameterize_model(model)
        return ChannelsLast(model) if form == 'timm-cl' else model
    if form == 'deploy':
        return reparameterize(model)
    if form == 'unchecked':
        return Unchecked(reparameterize(model))
    return Unfused(reparameterize(model)) if form == 'unfused' else model


def in_runtime(model: nn.Module, runtime: str, img_size, threads: int, workdir: str) -> Callable:
    """``model`` in ``runtime`` (:data:`RUNTIMES`) for inputs of ``img_size`` (an int: square, or (H, W)); the
    int8 runtimes calibrate on random images (timing, not accuracy: see ``tools/quantize.py``)."""
    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    return deployed(model, runtime, (3, h, w), workdir, threads=threads)


def timm_equivalent(name: str) -> Optional[str]:
    """timm's model of the same architecture as zoo model ``name`` (same weights load into both), if any."""
    peer = family_of(name).timm_equivalents.get(name, name)
    return peer if timm.is_model(peer) else None
