"""Every family module; importing one registers its variants."""
from . import lsnet

__all__ = ['lsnet']
