"""Every family module; importing one registers its variants."""
from . import convnext, fasternet, inceptionnext, lsnet

__all__ = ['convnext', 'fasternet', 'inceptionnext', 'lsnet']
