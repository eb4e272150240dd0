"""What every hierarchical zoo backbone shares: a stem, stages of (downsample, blocks), a head.

A family subclasses :class:`StagedBackbone`, builds ``stem``, ``stages`` (of :class:`Stage`) and
``feature_info`` (and ``norm``, a final NCHW norm that ``forward_features`` applies, where the family has
one), and implements ``_make_head(num_classes)``: a head over pooled features called as
``head(x, pre_logits)``, whose final Linear is named by ``head_classifier`` and whose pre-logits width is
its ``num_features`` (``num_features`` of the model when it has none). ``reset_classifier`` builds it. The
rest of timm's model contract (features, intermediates, pruning, grad checkpointing, parameter groups)
lives here once.
"""
import re
from typing import Callable, Dict, Iterable, List, Optional, Union

import torch
import torch.nn as nn
from timm.layers import SelectAdaptivePool2d, trunc_normal_
from timm.models import checkpoint_seq
from timm.models._features import feature_take_indices

from ..layers import BNLinear, FusedConv2d, check_input
from ..layers._fx import is_plain_eager

__all__ = ['BNLinearHead', 'CPU_TILE_TOKENS', 'Stage', 'StagedBackbone', 'TokenStage', 'distillation_head_for',
           'levit_unit_key', 'merge_distillation_head', 'official_staged_key']

# the tokens of a Stage's batch tile in CPU inference (its ``tile_tokens``): a 56 x 56 map, one image of a
# stride-4 stage at 224 px (measured at batch 16 on 2 cores: docs/benchmarks.md, "Batch tiles")
CPU_TILE_TOKENS = 56 * 56

torch.fx.wrap('check_input')  # any tracer (torchvision's too) keeps the input check as one call


def official_staged_key(key: str, block_key: Callable[[str], str]) -> str:
    """Map a key of the layout the ConvNeXt and UniRepLKNet authors share (``downsample_layers.0`` the stem,
    ``downsample_layers.i`` the downsampling of stage i, ``stages.i.j`` the blocks, ``norm`` and ``head`` the
    head) to the zoo's; ``block_key`` maps what follows ``stages.i.j.``."""
    m = re.match(r'^downsample_layers\.(\d)\.(\d)\.(.*)$', key)
    if m:
        return f'stem.{m[2]}.{m[3]}' if m[1] == '0' else f'stages.{m[1]}.downsample.{m[2]}.{m[3]}'
    m = re.match(r'^stages\.(\d)\.(\d+)\.(.*)$', key)
    if m:
        return f'stages.{m[1]}.blocks.{m[2]}.{block_key(m[3])}'
    key = re.sub(r'^norm\.', 'head.norm.', key)
    return re.sub(r'^head\.(weight|bias)$', r'head.fc.\1', key)


def levit_unit_key(key: str) -> str:
    """Map the LeViT-style unit names that the LSNet and SHViT releases (and timm's SHViT) share to the zoo's:
    the ``Residual`` wrapper's ``.m.`` goes, ``Conv2d_BN``'s conv ``c`` is ``conv``, the head's Linear ``l``
    is ``fc`` (in the distillation head ``head_dist`` too)."""
    key = re.sub(r'\.m\.', '.', key)
    key = re.sub(r'\.c\.weight$', '.conv.weight', key)
    return re.sub(r'^head(_dist)?\.l\.', r'head\1.fc.', key)


def merge_distillation_head(state_dict: Dict[str, torch.Tensor], eps: float = 1e-5) -> Dict[str, torch.Tensor]:
    """A state dict of a :class:`BNLinearHead` model trained with a distillation head (zoo layout), for the model
    without one: at eval the two heads predict ``(head(x) + head_dist(x)) / 2``, and both are BN + Linear, so
    that mean is one Linear. It goes in ``head.fc`` behind a BatchNorm set to the identity (var = 1 - eps)."""
    state_dict = dict(state_dict)
    weights, biases = [], []
    for prefix in ('head.', 'head_dist.'):
        gamma, beta = state_dict.pop(prefix + 'bn.weight'), state_dict.pop(prefix + 'bn.bias')
        mean, var = state_dict.pop(prefix + 'bn.running_mean'), state_dict.pop(prefix + 'bn.running_var')
        state_dict.pop(prefix + 'bn.num_batches_tracked', None)
        scale = gamma / torch.sqrt(var + eps)
        w, b = state_dict.pop(prefix + 'fc.weight'), state_dict.pop(prefix + 'fc.bias')
        weights.append(w * scale[None, :])
        biases.append(w @ (beta - mean * scale) + b)
    dim = weights[0].shape[1]
    state_dict.update({
        'head.bn.weight': torch.ones(dim), 'head.bn.bias': torch.zeros(dim),
        'head.bn.running_mean': torch.zeros(dim), 'head.bn.running_var': torch.full((dim,), 1.0 - eps),
        'head.bn.num_batches_tracked': torch.tensor(0),
        'head.fc.weight': (weights[0] + weights[1]) / 2, 'head.fc.bias': (biases[0] + biases[1]) / 2,
    })
    return state_dict


def distillation_head_for(state_dict: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """A zoo-layout state dict for ``model``'s heads: a distillation head that ``model`` lacks is merged into
    ``head`` (:func:`merge_distillation_head`); a model with one keeps the two heads, and one whose file has a
    single head (a plain model's weights, to distil from) starts both heads from it."""
    distillation = getattr(model, 'distillation', False)
    if 'head_dist.fc.weight' in state_dict and not distillation:
        return merge_distillation_head(state_dict)
    if distillation and 'head_dist.fc.weight' not in state_dict and 'head.fc.weight' in state_dict:
        state_dict = dict(state_dict)
        state_dict.update({'head_dist.' + k[len('head.'):]: v.clone() for k, v in state_dict.items()
                           if k.startswith('head.')})
    return state_dict


class Stage(nn.Module):
    """An optional downsampling layer, then a sequence of blocks (checkpointed when asked).

    ``tile_tokens``: in eager CPU inference (no gradients, not traced, compiled or exported), the blocks run
    over the batch in tiles of whole images, as many as fit in ``tile_tokens`` tokens of the blocks' map (one
    at least), and the tiles' outputs are joined: the same numbers (in inference the blocks treat each image
    alone), but a tile's temporaries stay small enough for the C allocator to reuse its freed memory, where
    the whole batch's are each mapped anew and their pages faulted in (docs/deploy.md). None: the whole batch
    at once. The default, :data:`CPU_TILE_TOKENS`, was measured faster or the same for every family
    (docs/benchmarks.md, "Batch tiles")."""
    tile_tokens: Optional[int] = CPU_TILE_TOKENS  # what a stage pickled before the attribute existed reads

    def __init__(self, downsample: Optional[nn.Module], blocks: Iterable[nn.Module],
                 tile_tokens: Optional[int] = CPU_TILE_TOKENS):
        super().__init__()
        self.downsample = downsample if downsample is not None else nn.Identity()
        self.blocks = nn.Sequential(*blocks)
        self.grad_checkpointing = False
        self.tile_tokens = tile_tokens

    def run_blocks(self, x):
        if self.grad_checkpointing and not torch.jit.is_scripting():
            return checkpoint_seq(self.blocks, x)
        if not torch.jit.is_scripting():
            tile = self._batch_tile(x)
            if tile:
                return torch.cat([self.blocks(part) for part in x.split(tile)])
        return self.blocks(x)

    @torch.jit.unused
    def _batch_tile(self, x: torch.Tensor) -> int:
        """Images a tile of ``x`` holds in this call, or 0 where the batch runs whole."""
        if self.tile_tokens is None or self.training or torch.is_grad_enabled() or not is_plain_eager():
            return 0  # is_plain_eager before reading x: a traced x (FX) answers with a Proxy
        if not x.is_cpu:
            return 0
        tile = max(1, self.tile_tokens // self._map_tokens(x))
        return tile if tile < x.shape[0] else 0

    @staticmethod
    def _map_tokens(x: torch.Tensor) -> int:
        return x.shape[2] * x.shape[3]

    def forward(self, x):
        return self.run_blocks(self.downsample(x))


class TokenStage(Stage):
    """A stage whose blocks work on (B, H, W, C) tokens, as transformer blocks do: the downsampling layer
    gets and the stage returns (B, C, H, W) maps. The blocks get dense tokens: a channels-last map is them
    already (a permuted view), an NCHW map (LITv2's deformable downsampling, any model in ``plain_layout``)
    is copied once. Its permuted view would reach every residual add of the stage as a transposed operand,
    which oneDNN's int8 Linear with the add fused in (``int8-inductor``) takes on a slow generic path. The
    stage output is the tokens' channels-last NCHW view."""

    @staticmethod
    def _map_tokens(x: torch.Tensor) -> int:
        return x.shape[1] * x.shape[2]

    def forward(self, x):
        return self.run_blocks(self.downsample(x).permute(0, 2, 3, 1).contiguous()).permute(0, 3, 1, 2)


class StagedBackbone(nn.Module):
    """Base of the zoo's hierarchical backbones.

    ``channels_last``: run the network on channels-last tensors (NCHW shape, NHWC storage). Conv families
    set it because their 1x1 convolutions, depthwise convolutions and channel norms are faster that way on
    CPU (docs/benchmarks.md); outputs keep the NCHW shape either way. ``deploy_channels_last``: only the
    deploy form does (``zoo.reparameterize`` sets ``channels_last`` on it), where its 1x1 convolutions have
    become Linears on the channels; the train form keeps the NCHW layout of the official code.
    ``deploy_fused_convs``: the deploy form's plain convolutions become :class:`zoo.layers.FusedConv2d`
    (oneDNN's kernel on a weight packed once, in CPU inference), which the family's benchmarks measured as faster.
    """
    # TorchScript: read when the model is scripted (and the branches they rule out are not compiled)
    __constants__ = ['arch', 'channels_last', '_head_is_identity']
    __jit_unused_properties__ = ['_head_is_identity']
    arch = 'model'
    channels_last = False
    deploy_channels_last = False
    deploy_fused_convs = False
    head_classifier = 'fc'

    @staticmethod
    def _init_weights(m):
        """The authors' init in every conv family: truncated normal (std 0.02) weights, zero biases."""
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    @torch.no_grad()
    def _scale_classifier(self, scale: float) -> None:
        """The authors' ``head_init_scale``: the freshly initialized classifier's weight and bias times ``scale``."""
        fc = self.get_classifier()
        if isinstance(fc, nn.Linear):
            fc.weight.mul_(scale)
            fc.bias.mul_(scale)

    def prepare_input(self, x: torch.Tensor) -> torch.Tensor:
        x = check_input(x, self.in_chans, self.arch)
        if self.channels_last and (torch.jit.is_scripting() or not self._stem_lays_out(x)):
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    @torch.jit.unused
    def _stem_lays_out(self, x: torch.Tensor) -> bool:
        """Whether the stem's first conv reads ``x`` as it is and writes channels-last (a FusedConv2d on oneDNN's
        path): then no copy of the image to channels-last comes first."""
        stem = getattr(self, 'stem', None)
        first = stem[0] if isinstance(stem, nn.Sequential) and len(stem) else stem
        return isinstance(first, FusedConv2d) and first.writes_channels_last(x)

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None):
        """A new classifier for ``num_classes`` (0: none). ``global_pool=''`` keeps the feature map unpooled,
        which a head over pooled features cannot classify, so it needs ``num_classes=0``."""
        if global_pool is None:
            pool = getattr(self, 'global_pool', None)
            global_pool = pool.pool_type if isinstance(pool, SelectAdaptivePool2d) else ''
        if global_pool:
            self.global_pool = SelectAdaptivePool2d(pool_type=global_pool, flatten=True)
            self.head = self._make_head(num_classes)
        elif num_classes:
            raise ValueError(f'{self.arch} classifies pooled features: global_pool="" needs num_classes=0')
        else:
            self.global_pool = self.head = nn.Identity()
        self.num_classes = num_classes
        self.head_hidden_size = getattr(self.head, 'num_features', self.num_features)

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return getattr(self.head, self.head_classifier, self.head)

    @property
    def _head_is_identity(self) -> bool:
        return isinstance(self.head, nn.Identity)

    def forward_head(self, x, pre_logits: bool = False):
        x = self.global_pool(x)
        if torch.jit.is_scripting():  # no isinstance on modules there: the constant read when scripted
            if self._head_is_identity:
                return x
            return self.head(x, pre_logits)
        return x if isinstance(self.head, nn.Identity) else self.head(x, pre_logits)

    @torch.jit.ignore
    def group_matcher(self, coarse: bool = False):
        blocks = r'^stages\.(\d+)' if coarse else [
            (r'^stages\.(\d+)\.downsample', (0,)),
            (r'^stages\.(\d+)\.blocks\.(\d+)', None),
        ]
        if not coarse and hasattr(self, 'norm'):
            blocks.append((r'^norm', (99999,)))  # the final norm goes with the last blocks, as in timm
        return dict(stem=r'^stem', blocks=blocks)

    @torch.jit.ignore
    def set_grad_checkpointing(self, enable: bool = True):
        for stage in self.stages:
            stage.grad_checkpointing = enable

    @torch.jit.ignore
    def no_weight_decay(self):
        return set()

    def forward_intermediates(
            self,
            x: torch.Tensor,
            indices: Optional[Union[int, List[int]]] = None,
            norm: bool = False,
            stop_early: bool = False,
            output_fmt: str = 'NCHW',
            intermediates_only: bool = False,
    ):
        if output_fmt != 'NCHW':
            raise ValueError(f'{self.arch} gives NCHW intermediates, not {output_fmt}')
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        x = self.stem(self.prepare_input(x))
        stages = self.stages if torch.jit.is_scripting() or not stop_early else self.stages[:max_index + 1]
        last = len(self.stages) - 1
        intermediates = []
        for i, stage in enumerate(stages):
            x = stage(x)
            if i in take_indices:
                # as timm: ``norm`` applies the final norm to the last stage's map only
                intermediates.append(self._final_norm(x) if norm and i == last else x)
        if intermediates_only:
            return intermediates
        return self._final_norm(x), intermediates

    def _final_norm(self, x):
        if torch.jit.is_scripting():
            if hasattr(self, 'norm'):
                return self.norm(x)
            return x
        norm = getattr(self, 'norm', None)
        return x if norm is None else norm(x)

    def prune_intermediate_layers(self, indices: Union[int, List[int]] = 1, prune_norm: bool = False,
                                  prune_head: bool = True):
        take_indices, max_index = feature_take_indices(len(self.stages), indices)
        # the final norm belongs to the last stage's map: it goes when asked or when that stage goes
        if hasattr(self, 'norm') and (prune_norm or max_index < len(self.stages) - 1):
            self.norm = nn.Identity()
        self.stages = self.stages[:max_index + 1]
        if prune_head:
            self.reset_classifier(0, '')
        return take_indices

    def forward_features(self, x):
        return self._final_norm(self.stages(self.stem(self.prepare_input(x))))

    def forward(self, x):
        return self.forward_head(self.forward_features(x))


class BNLinearHead:
    """Mixin for a :class:`StagedBackbone` whose head is LeViT's BatchNorm1d + Linear (LSNet, SHViT): one unit
    that folds into one Linear, so the classifier is all of it and the pre-logits are the pooled features.

    ``distillation`` (set before ``reset_classifier``; the authors' option of the same name): a second BN + Linear,
    ``head_dist``, learns from a teacher as in DeiT. The model predicts the mean of the two heads, except in
    training after ``set_distilled_training()`` (timm's ``TokenDistillationTask`` calls it), where it returns
    ``(head(x), head_dist(x))`` for the task's two losses."""
    __constants__ = StagedBackbone.__constants__ + ['distillation']  # TorchScript compiles only the branch taken
    distillation = False
    distilled_training = False
    # the second classifier of a model built with distillation=True: replaced with the first when a checkpoint
    # has another class count (zoo.models._builder adds it to the pretrained cfg's classifiers)
    distillation_classifier = 'head_dist.fc'

    def _make_head(self, num_classes: int) -> nn.Module:
        return BNLinear(self.num_features, num_classes, drop=self.drop_rate) if num_classes else nn.Identity()

    def reset_classifier(self, num_classes: int, global_pool: Optional[str] = None):
        super().reset_classifier(num_classes, global_pool)
        if self.distillation:
            self.head_dist = nn.Identity() if isinstance(self.head, nn.Identity) else self._make_head(num_classes)

    @torch.jit.ignore
    def set_distilled_training(self, enable: bool = True):
        if not self.distillation:
            raise ValueError(f'{self.arch} has no distillation head to train: create it with distillation=True')
        self.distilled_training = enable

    @torch.jit.ignore
    def get_classifier(self) -> nn.Module:
        return self.head

    def forward_head(self, x, pre_logits: bool = False):
        x = self.global_pool(x)
        if pre_logits:
            return x
        if not self.distillation:
            return self.head(x)
        x, x_dist = self.head(x), self.head_dist(x)
        if torch.jit.is_scripting():  # a scripted model predicts
            return (x + x_dist) / 2
        if self.distilled_training and self.training:
            return x, x_dist
        return (x + x_dist) / 2
