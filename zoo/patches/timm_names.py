"""Let ``timm.create_model('zoo/<name>')`` reach the zoo's models.

timm (>= 1.0.29) parses a model name before looking it up and refuses names holding '/', because such a
name usually means a Hub repo id or a path. The zoo registers its models in timm's registry under
``zoo/<name>``, so that they never collide with timm's own architectures. This patch teaches timm's name
parser one rule: a name that starts with the zoo's namespace is a registry name. Every other name is parsed
by timm exactly as before.
"""
import functools

from . import installed_version, require_version

__all__ = ['NAMESPACE', 'PREFIX', 'SUPPORTED', 'TESTED', 'install', 'is_zoo_name']

NAMESPACE = 'zoo'
PREFIX = NAMESPACE + '/'
# 1.0.29 made the parser refuse '/'; the parser's contract (name -> (source, name)) holds through 1.0.x
SUPPORTED = '>=1.0.29,<1.1'
TESTED = '1.0.31'


def is_zoo_name(model_name: str) -> bool:
    return isinstance(model_name, str) and model_name.startswith(PREFIX) and len(model_name) > len(PREFIX)


def install(timm_version: str = None) -> None:
    """Wrap timm's parser once; calling again is a no-op. Raises ``UnsupportedVersionError`` on a timm outside
    :data:`SUPPORTED`, and on one whose parser no longer looks as this patch expects."""
    require_version('timm', timm_version or installed_version('timm'), SUPPORTED, TESTED, 'zoo.patches.timm_names')
    from timm.models import _factory

    original = getattr(_factory, 'parse_model_name', None)
    if getattr(original, '_zoo_namespace', False):
        return
    if original is None or original('hf-hub:org/name') != ('hf-hub', 'org/name'):
        from . import UnsupportedVersionError
        raise UnsupportedVersionError('timm.models._factory.parse_model_name is missing or no longer splits '
                                      "'hf-hub:org/name' into ('hf-hub', 'org/name'); zoo.patches.timm_names "
                                      f'was made for timm {TESTED}')

    @functools.wraps(original)
    def parse_model_name(model_name):
        if is_zoo_name(model_name):
            return None, model_name
        return original(model_name)

    parse_model_name._zoo_namespace = True
    _factory.parse_model_name = parse_model_name
