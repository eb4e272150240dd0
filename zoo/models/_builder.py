"""The one way a zoo family builds a variant: timm's ``build_model_with_cfg`` with the zoo's namespace,
the family's checkpoint filter, the feature getter for ``features_only``, and checkpoint files resolved,
checksummed and read with errors that name them before timm loads them."""
import os
import sys
from typing import Optional

from timm.models import build_model_with_cfg, resolve_pretrained_cfg

from ..checkpoint import read_checkpoint, unwrap_state_dict
from ..registry import timm_name

__all__ = ['build_zoo_model', 'resolve_weights_file']

_LOCAL_NAMES = ('model.safetensors', 'pytorch_model.bin')


def resolve_weights_file(cfg, checksum: Optional[str] = None) -> Optional[str]:
    """The local weights file a pretrained cfg points at, fetched and checked where the zoo can do so.

    A file (or a ``local-dir:`` folder's model.safetensors / pytorch_model.bin) is used as is; a Hub file is
    fetched through ``huggingface_hub`` when its sha256 is known (``checksum`` or the manifest), so that it is
    checked before loading; a URL with a known sha256 is fetched through timm's download cache. The file is
    then checked against the sha256 and read once, so that a missing, truncated or foreign file is an error
    naming it. Returns None where timm should fetch the weights itself (no checksum to hold them to)."""
    from ..hub import download_verified, expected_checksum, verify_checksum

    path = None
    if cfg.state_dict:
        return None
    if cfg.file:
        path = cfg.file
        if os.path.isdir(path):
            found = [os.path.join(path, n) for n in _LOCAL_NAMES if os.path.isfile(os.path.join(path, n))]
            if not found:
                raise FileNotFoundError(f'no {" or ".join(_LOCAL_NAMES)} in {path}')
            path = found[0]
    elif cfg.hf_hub_id:
        checksum = checksum or expected_checksum(cfg.hf_hub_id, cfg.hf_hub_filename)
        if checksum or cfg.source == 'hf-hub':
            path = download_verified(cfg.hf_hub_id, cfg.hf_hub_filename)  # checked once, below
    elif cfg.url:
        checksum = checksum or expected_checksum(url=cfg.url)
        shared_name = _share_link_file(cfg.url)
        if shared_name:
            path = _download_as(cfg.url, shared_name)
        elif checksum:
            from timm.models._hub import download_cached_file
            path = download_cached_file(cfg.url)
    if path is None:
        return None
    if checksum:
        verify_checksum(path, checksum)
    # memory-mapped for pickles, so nearly free; timm reads the file again to load it
    read_checkpoint(path, mmap=not path.endswith('.safetensors'))
    return path


def _share_link_file(url: str) -> Optional[str]:
    """The file name to cache a share-link download under (the manifest's name for it): a OneDrive share link
    serves every file as 'content', so timm's cache, keyed by the URL's last component, would mix them up."""
    if not url.endswith('/root/content'):
        return None
    from ..hub import read_manifest

    entry = next((e for e in read_manifest() if e['source'] == url), None)
    if entry is None:
        raise ValueError(f'{url} is a share link without a file name; add it to the manifest')
    return entry['file']


def _download_as(url: str, filename: str) -> str:
    import torch
    from timm.models._hub import get_cache_dir

    path = os.path.join(get_cache_dir(), filename)
    if not os.path.exists(path):
        torch.hub.download_url_to_file(url, path, progress=True)
    return path


def build_zoo_model(model_cls, variant: str, pretrained: bool = False, num_stages: int = 4,
                    pretrained_cfg: Optional[object] = None, pretrained_cfg_overlay: Optional[dict] = None,
                    checksum: Optional[str] = None, **kwargs):
    """``checksum``: the sha256 (or its first 8+ hex digits) the pretrained file must have; by default the one
    ``checkpoints/manifest.toml`` records for it, if any."""
    name = timm_name(variant)
    if pretrained:
        cfg = resolve_pretrained_cfg(name, pretrained_cfg=pretrained_cfg,
                                     pretrained_cfg_overlay=pretrained_cfg_overlay)
        path = resolve_weights_file(cfg, checksum)
        if path is not None:
            # timm loads this file; a 'hf-hub' / 'local-dir' source would make it fetch the weights again
            pretrained_cfg_overlay = dict(pretrained_cfg_overlay or {}, file=path, source='zoo')
    elif checksum:
        raise ValueError('checksum is for pretrained weights; pass pretrained=True')
    out_indices = kwargs.pop('out_indices', tuple(range(num_stages)))
    family = sys.modules[model_cls.__module__]

    def filter_fn(state_dict, model):
        # timm hands over URL and Hub files as stored: unwrap {'model': ...} / {'state_dict': ...} first
        return family.checkpoint_filter_fn(unwrap_state_dict(state_dict), model)

    return build_model_with_cfg(
        model_cls, name, pretrained,
        pretrained_cfg=pretrained_cfg,
        pretrained_cfg_overlay=pretrained_cfg_overlay,
        pretrained_filter_fn=filter_fn,
        feature_cfg=dict(feature_cls='getter', out_indices=out_indices),
        **kwargs,
    )
