"""Let ``timm.create_model('zoo/<name>')`` reach the zoo's models.

timm (>= 1.0.29) parses a model name before looking it up and refuses names holding '/', because such a
name usually means a Hub repo id or a path. The zoo registers its models in timm's registry under
``zoo/<name>``, so that they never collide with timm's own architectures. This module teaches timm's
name parser one rule: a name that starts with the zoo's namespace is a registry name. Every other name is
parsed by timm exactly as before.
"""
import functools

from timm.models import _factory

NAMESPACE = 'zoo'
PREFIX = NAMESPACE + '/'


def is_zoo_name(model_name: str) -> bool:
    return isinstance(model_name, str) and model_name.startswith(PREFIX) and len(model_name) > len(PREFIX)


def install() -> None:
    """Wrap timm's parser once; calling again is a no-op."""
    original = _factory.parse_model_name
    if getattr(original, '_zoo_namespace', False):
        return

    @functools.wraps(original)
    def parse_model_name(model_name):
        if is_zoo_name(model_name):
            return None, model_name
        return original(model_name)

    parse_model_name._zoo_namespace = True
    _factory.parse_model_name = parse_model_name
