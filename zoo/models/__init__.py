"""Every family module; importing one registers its variants."""
from . import convnext, fasternet, inceptionnext, lsnet, unireplknet

__all__ = ['convnext', 'fasternet', 'inceptionnext', 'lsnet', 'unireplknet']
