from .checks import check_input
from .conv_bn import BNLinear, ConvBN, NormConv, NormLinear, RepVGGDW
from .fold import (FoldedCopy, fold_affine_into_next, fold_bn, fold_bn_into_prev, fold_scale_into_prev,
                   norm_affine)
from .norm import LayerNorm2d
from .onednn import FusedLinear, FusedMlp, onednn_available

__all__ = [
    'BNLinear', 'ConvBN', 'FoldedCopy', 'FusedLinear', 'FusedMlp', 'LayerNorm2d', 'NormConv', 'NormLinear', 'RepVGGDW', 'check_input',
    'fold_affine_into_next', 'fold_bn', 'fold_bn_into_prev', 'fold_scale_into_prev', 'norm_affine', 'onednn_available',
]
