"""Every family module; importing one registers its variants."""
from . import biformer, convnext, fasternet, inceptionnext, litv2, lsnet, shvit, unireplknet

__all__ = ['biformer', 'convnext', 'fasternet', 'inceptionnext', 'litv2', 'lsnet', 'shvit', 'unireplknet']
