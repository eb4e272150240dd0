from .checks import check_input
from .conv_bn import BNLinear, ConvBN, RepVGGDW, fold_bn

__all__ = ['BNLinear', 'ConvBN', 'RepVGGDW', 'check_input', 'fold_bn']
