from .checks import check_input
from .attention import counting_model_products, model_products, naive_attention, on_channels, on_tokens, pad_to_multiple
from .conv_bn import (DILATED_BRANCHES, BNLinear, ConvBN, ConvBNFFN, ConvFFN, DilatedReparamBlock, NormConv, NormLinear,
                      RepVGGDW, ResidualConvBN, dilate_kernel)
from .deform import DeformConv2dPack
from .fold import (FoldedCopy, fold_affine_into_next, fold_bn, fold_bn_into_prev, fold_scale_into_prev,
                   norm_affine)
from .large_kernel import DEPTHWISE_METHODS, depthwise_conv
from .norm import GlobalResponseNorm, LayerNorm2d
from .onednn import FusedConv2d, FusedLinear, FusedMlp, onednn_available, unchecked_activations
from .squeeze_excite import FusedSqueezeExcite, SqueezeExcite

__all__ = [
    'BNLinear', 'ConvBN', 'ConvBNFFN', 'ConvFFN', 'DEPTHWISE_METHODS', 'DeformConv2dPack', 'DILATED_BRANCHES', 'DilatedReparamBlock', 'FoldedCopy', 'FusedConv2d', 'FusedLinear', 'FusedMlp', 'FusedSqueezeExcite',
    'GlobalResponseNorm', 'LayerNorm2d', 'NormConv', 'NormLinear', 'RepVGGDW', 'ResidualConvBN', 'SqueezeExcite', 'check_input', 'depthwise_conv', 'dilate_kernel',
    'fold_affine_into_next', 'fold_bn', 'fold_bn_into_prev', 'fold_scale_into_prev', 'norm_affine',
    'counting_model_products', 'model_products', 'naive_attention', 'on_channels', 'on_tokens', 'onednn_available', 'pad_to_multiple', 'unchecked_activations',
]
