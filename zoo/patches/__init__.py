"""Every change the zoo makes to a third-party library, in one place.

- :mod:`.timm_names`: timm's model-name parser accepts ``zoo/<name>`` as a registry name.
- :mod:`.mmengine_checkpoint`: mmengine's local checkpoint loader reads the Runner's own files with
  ``weights_only=True`` under torch >= 2.6.
- :mod:`.onednn`: PyTorch's private oneDNN ops behind the deploy forms' fused Linear layers.

Each names the versions it was tested against (``TESTED``) and the range it accepts (``SUPPORTED``), and
checks the installed version before it changes anything: outside the range it raises
:class:`UnsupportedVersionError` (the oneDNN fast path turns itself off instead, with a warning, since its
reference path computes the same result), never a silently wrong result. This module is the bottom layer of
the package: it imports no other part of the zoo.
"""
import warnings
from importlib.metadata import PackageNotFoundError, version

from packaging.specifiers import SpecifierSet
from packaging.version import Version

__all__ = ['UnsupportedVersionError', 'installed_version', 'is_supported', 'require_version']


class UnsupportedVersionError(RuntimeError):
    """A patched library is installed in a version the patch was not made for."""


def installed_version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        raise UnsupportedVersionError(f'{package} is not installed') from None


def is_supported(installed: str, supported: str) -> bool:
    """``installed`` (a version string, local tags such as ``+cpu`` ignored) lies in ``supported`` (a PEP 440
    specifier such as ``'>=1.0.29,<1.1'``)."""
    return Version(Version(installed).base_version) in SpecifierSet(supported)


def require_version(package: str, installed: str, supported: str, tested: str, patch: str) -> None:
    """Raise :class:`UnsupportedVersionError` unless ``installed`` lies in ``supported``."""
    if not is_supported(installed, supported):
        raise UnsupportedVersionError(
            f'{patch} patches {package} and supports {package}{supported} (tested with {tested}); '
            f'{package} {installed} is installed. Install a supported version (the project\'s constraints '
            f'file lists the known-good ones).')


_WARNED = set()


def warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)
