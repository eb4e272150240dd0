"""``zoo.TransConvFPN``: an FPN that also grows finer levels by transposed convolutions.

LSNet (strides 8-64) and SHViT (strides 16-64) have no stride-4 map, so their authors' detectors (the
EfficientViT neck they reuse) add ``num_extra_trans_convs`` levels below the finest one: each a 2x2
stride-2 ``ConvTranspose2d`` of the level above's lateral (after the top-down pass), then a 3x3 output conv,
prepended to the outputs. The other levels are mmdet's ``FPN`` unchanged; ``num_outs`` counts all levels."""
from typing import List, Tuple

import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import ConvModule
from mmdet.models.necks import FPN
from torch import Tensor

from .registry import MODELS

__all__ = ['TransConvFPN']


@MODELS.register_module()
class TransConvFPN(FPN):

    def __init__(self, in_channels: List[int], out_channels: int, num_outs: int, num_extra_trans_convs: int = 0,
                 **kwargs):
        if not 0 <= num_extra_trans_convs < num_outs:
            raise ValueError(f'num_extra_trans_convs={num_extra_trans_convs} must be in 0 .. num_outs - 1 ({num_outs - 1})')
        super().__init__(in_channels, out_channels, num_outs - num_extra_trans_convs, **kwargs)
        self.num_outs = num_outs
        self.num_extra_trans_convs = num_extra_trans_convs
        norm_cfg = None if self.no_norm_on_lateral else kwargs.get('norm_cfg')
        self.extra_trans_convs = nn.ModuleList()
        self.extra_fpn_convs = nn.ModuleList()
        for _ in range(num_extra_trans_convs):
            up = ConvModule(out_channels, out_channels, 2, stride=2, norm_cfg=norm_cfg,
                            act_cfg=kwargs.get('act_cfg'), conv_cfg=dict(type='deconv'), inplace=False)
            self.extra_trans_convs.append(up)
            self.extra_fpn_convs.append(ConvModule(out_channels, out_channels, 3, padding=1, conv_cfg=kwargs.get('conv_cfg'),
                                                   norm_cfg=kwargs.get('norm_cfg'), act_cfg=kwargs.get('act_cfg'),
                                                   inplace=False))

    def forward(self, inputs: Tuple[Tensor]) -> tuple:
        if len(inputs) != len(self.in_channels):
            raise ValueError(f'{type(self).__name__} expects {len(self.in_channels)} maps, got {len(inputs)}')
        laterals = [conv(inputs[i + self.start_level]) for i, conv in enumerate(self.lateral_convs)]
        for i in range(len(laterals) - 1, 0, -1):
            if 'scale_factor' in self.upsample_cfg:
                up = F.interpolate(laterals[i], **self.upsample_cfg)
            else:
                up = F.interpolate(laterals[i], size=laterals[i - 1].shape[2:], **self.upsample_cfg)
            laterals[i - 1] = laterals[i - 1] + up
        outs = [self.fpn_convs[i](lat) for i, lat in enumerate(laterals)]
        top = self.num_outs - self.num_extra_trans_convs  # the levels mmdet's FPN would give
        if top > len(outs):
            if not self.add_extra_convs:
                while len(outs) < top:
                    outs.append(F.max_pool2d(outs[-1], 1, stride=2))
            else:
                source = {'on_input': lambda: inputs[self.backbone_end_level - 1],
                          'on_lateral': lambda: laterals[-1], 'on_output': lambda: outs[-1]}[self.add_extra_convs]()
                outs.append(self.fpn_convs[len(laterals)](source))
                for i in range(len(laterals) + 1, top):
                    x = F.relu(outs[-1]) if self.relu_before_extra_convs else outs[-1]
                    outs.append(self.fpn_convs[i](x))
        finer, x = [], laterals[0]
        for up, conv in zip(self.extra_trans_convs, self.extra_fpn_convs):
            x = up(x)
            finer.insert(0, conv(x))
        return tuple(finer + outs)
