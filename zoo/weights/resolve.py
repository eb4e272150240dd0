"""Where a pretrained cfg's weights are, as one checked local file.

Every pretrained path goes through here, so that the zoo reads each file once, with one rule for what a
file holds (:func:`zoo.weights.checkpoint.unwrap_state_dict`), and holds it to its sha256 where one is known.
"""
import os
from typing import Optional

from .checksum import check_checksum_arg, download_verified, expected_checksum, read_manifest, verify_checksum

__all__ = ['resolve_weights_file']

_LOCAL_NAMES = ('model.safetensors', 'pytorch_model.bin')


def resolve_weights_file(cfg, checksum: Optional[str] = None) -> Optional[str]:
    """The local weights file a pretrained cfg points at, fetched where needed and checked.

    A file (or a ``local-dir:`` folder's model.safetensors / pytorch_model.bin) is used as is; a Hub file is
    fetched through ``huggingface_hub`` (its cache and offline mode); a URL through timm's download cache. The
    file is then held to ``checksum`` or the sha256 the manifest records for it, where either is known.
    Returns None for a cfg that carries its state dict itself."""
    checksum = check_checksum_arg(checksum)
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
        checksum = checksum if checksum is not None else expected_checksum(cfg.hf_hub_id, cfg.hf_hub_filename)
        path = download_verified(cfg.hf_hub_id, cfg.hf_hub_filename)  # checked once, below
    elif cfg.url:
        checksum = checksum if checksum is not None else expected_checksum(url=cfg.url)
        shared_name = _share_link_file(cfg.url)
        if shared_name:
            path = _download_as(cfg.url, shared_name)
        else:
            from timm.models._hub import download_cached_file
            path = download_cached_file(cfg.url)
    else:
        raise ValueError(f'pretrained cfg of {cfg.architecture} names no weights (no file, hf_hub_id or url)')
    if checksum is not None:
        verify_checksum(path, checksum)
    return path


def _share_link_file(url: str) -> Optional[str]:
    """The file name to cache a share-link download under (the manifest's name for it): a OneDrive share link
    serves every file as 'content', so timm's cache, keyed by the URL's last component, would mix them up."""
    if not url.endswith('/root/content'):
        return None
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
