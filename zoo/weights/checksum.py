"""The release manifest and checksums: which file each released checkpoint is, and holding a file to it.

``manifest.toml`` (package data, beside this module) lists every released checkpoint: where the authors
published it, its sha256 where known, and the zoo's Hub repo with the sha256 of its ``model.safetensors``.
When the manifest (or the caller, ``checksum=``) knows a file's sha256, the zoo fetches the file itself
(``huggingface_hub`` with its cache and offline mode), checks it and only then reads it; a mismatch raises
:class:`ChecksumMismatchError` and nothing is loaded.
"""
import hashlib
import os
import re
import tomllib
from pathlib import Path
from typing import Dict, List, Optional

from .checkpoint import CheckpointError

__all__ = ['ChecksumMismatchError', 'MANIFEST_PATH', 'read_manifest', 'manifest_entry', 'expected_checksum',
           'sha256_of', 'check_checksum_arg', 'verify_checksum', 'download_verified']

MANIFEST_PATH = Path(__file__).resolve().parent / 'manifest.toml'
_HEX = re.compile(r'^[0-9a-f]{8,64}$')
_FIELDS = ('model', 'tag', 'dataset', 'resolution', 'num_classes', 'source', 'file', 'sha256', 'hub_repo',
           'hub_sha256', 'license')


class ChecksumMismatchError(CheckpointError):
    """A checkpoint file whose sha256 is not the one recorded for it."""


def _manifest_path() -> Path:
    return Path(os.environ.get('ZOO_MANIFEST', MANIFEST_PATH))


def read_manifest(path: Optional[os.PathLike] = None) -> List[Dict]:
    """The manifest's entries, checked: every field present, checksums hex (a full sha256 or its first 8+
    digits, as in torch hub file names), no (model, tag) twice. A missing manifest is an error, not an empty
    one: the package ships it, and without it no download would be checked."""
    path = Path(path) if path is not None else _manifest_path()
    if not path.is_file():
        where = ('ZOO_MANIFEST points to it' if path != MANIFEST_PATH
                 else 'it is package data of zoo; the installation is incomplete, reinstall the package')
        raise FileNotFoundError(f'the checkpoint manifest {path} does not exist ({where}); without it no '
                                f'downloaded checkpoint could be checked against its sha256')
    with open(path, 'rb') as f:
        entries = tomllib.load(f).get('checkpoint', [])
    seen = set()
    for i, e in enumerate(entries):
        where = f'{path} entry {i + 1} ({e.get("model")}.{e.get("tag")})'
        missing = [k for k in _FIELDS if k not in e]
        if missing:
            raise ValueError(f'{where}: missing fields {missing}')
        for k in ('sha256', 'hub_sha256'):
            if e[k] and not _HEX.match(e[k]):
                raise ValueError(f'{where}: {k} must be lowercase hex (8 to 64 digits), got {e[k]!r}')
        key = (e['model'], e['tag'])
        if key in seen:
            raise ValueError(f'{where}: listed twice')
        seen.add(key)
    return entries


def manifest_entry(model: str, tag: str) -> Optional[Dict]:
    return next((e for e in read_manifest() if e['model'] == model and e['tag'] == tag), None)


def expected_checksum(hf_hub_id: Optional[str] = None, filename: Optional[str] = None,
                      url: Optional[str] = None) -> Optional[str]:
    """The recorded sha256 of a file: a zoo Hub repo's ``model.safetensors``, or an authors' file (by its
    URL, or by Hub repo and file name)."""
    for e in read_manifest():
        if hf_hub_id and e['hub_repo'] == hf_hub_id and filename in (None, 'model.safetensors') and e['hub_sha256']:
            return e['hub_sha256']
        if e['sha256'] and ((url and e['source'] == url) or (
                hf_hub_id and filename and e['source'] == f'https://huggingface.co/{hf_hub_id}/resolve/main/{filename}')):
            return e['sha256']
    return None


def sha256_of(path: os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            h.update(block)
    return h.hexdigest()


def check_checksum_arg(checksum: Optional[str]) -> Optional[str]:
    """``checksum`` as given by a caller, lowercased: None (the manifest's, where it records one) or 8 to 64
    hex digits of a sha256. Anything else, an empty string included, is refused: no value turns the check
    off."""
    if checksum is None:
        return None
    if not isinstance(checksum, str) or not _HEX.match(checksum.lower()):
        raise ValueError(f'checksum={checksum!r} is not allowed; checksum must be 8 to 64 hex digits of the '
                         f'file\'s sha256, or None for the one the manifest records')
    return checksum.lower()


def verify_checksum(path: os.PathLike, expected: str) -> None:
    """Raise :class:`ChecksumMismatchError` unless ``path``'s sha256 starts with ``expected`` (a full digest or
    a prefix of at least 8 hex digits)."""
    expected = check_checksum_arg(expected)
    if expected is None:
        raise ValueError('verify_checksum needs the expected sha256, got None')
    actual = sha256_of(path)
    if not actual.startswith(expected):
        raise ChecksumMismatchError(f'checkpoint {path} has sha256 {actual}, expected {expected}; it is corrupt '
                                    f'or not the recorded file, and nothing was loaded')


def download_verified(repo_id: str, filename: Optional[str] = None, checksum: Optional[str] = None,
                      cache_dir: Optional[str] = None) -> str:
    """Fetch a Hub file through ``huggingface_hub`` (its cache, ``HF_HUB_OFFLINE``, revisions as
    ``repo@rev``) and check its sha256. Without a file name, ``model.safetensors`` is taken, else
    ``pytorch_model.bin`` (timm's order)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    repo, _, revision = repo_id.partition('@')
    names = [filename] if filename else ['model.safetensors', 'pytorch_model.bin']
    last_error = None
    for name in names:
        try:
            path = hf_hub_download(repo, name, revision=revision or None, cache_dir=cache_dir)
        except (EntryNotFoundError, LocalEntryNotFoundError) as e:
            last_error = e
            continue
        if checksum is not None:
            verify_checksum(path, checksum)
        return path
    raise CheckpointError(f'no weights file {" or ".join(names)} in Hub repo {repo_id} '
                          f'(or not in the local cache when offline): {last_error}')


