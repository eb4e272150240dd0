from .checks import check_input
from .conv_bn import (DILATED_BRANCHES, BNLinear, ConvBN, DilatedReparamBlock, NormConv, NormLinear, RepVGGDW,
                      dilate_kernel)
from .fold import (FoldedCopy, fold_affine_into_next, fold_bn, fold_bn_into_prev, fold_scale_into_prev,
                   norm_affine)
from .large_kernel import DEPTHWISE_METHODS, depthwise_conv
from .norm import GlobalResponseNorm, LayerNorm2d
from .onednn import FusedLinear, FusedMlp, onednn_available

__all__ = [
    'BNLinear', 'ConvBN', 'DEPTHWISE_METHODS', 'DILATED_BRANCHES', 'DilatedReparamBlock', 'FoldedCopy', 'FusedLinear', 'FusedMlp',
    'GlobalResponseNorm', 'LayerNorm2d', 'NormConv', 'NormLinear', 'RepVGGDW', 'check_input', 'depthwise_conv', 'dilate_kernel',
    'fold_affine_into_next', 'fold_bn', 'fold_bn_into_prev', 'fold_scale_into_prev', 'norm_affine',
    'onednn_available',
]
