"""Checkpoints on the Hugging Face Hub, in timm's layout, with the release manifest and checksums.

A zoo Hub repo is what ``timm``'s own ``save_for_hf`` writes: ``config.json`` (``architecture`` is the zoo's
registry name, e.g. ``zoo/lsnet_t``, plus ``num_classes``, ``model_args`` and ``pretrained_cfg``) and
``model.safetensors``, with a ``README.md`` model card. So ``timm.create_model('hf-hub:<org>/<repo>')`` and
``timm.create_model('local-dir:<folder>')`` build zoo models through timm's loading path once ``zoo`` is
imported.

``checkpoints/manifest.toml`` lists every released checkpoint: where the authors published it, its sha256
where known, and the zoo's Hub repo with the sha256 of its ``model.safetensors``. When the manifest (or the
caller, ``checksum=``) knows a file's sha256, the zoo downloads the file itself (``huggingface_hub`` with its
cache and offline mode), checks it and only then lets timm load it; a mismatch raises
:class:`ChecksumMismatchError` and no model is returned.
"""
import hashlib
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Dict, List, Optional

import torch
import torch.nn as nn

from .checkpoint import CheckpointError

__all__ = ['ChecksumMismatchError', 'MANIFEST_PATH', 'read_manifest', 'manifest_entry', 'expected_checksum',
           'sha256_of', 'verify_checksum', 'download_verified', 'save_for_hub', 'push_to_hub', 'model_card']

MANIFEST_PATH = Path(__file__).resolve().parent.parent / 'checkpoints' / 'manifest.toml'
_HEX = re.compile(r'^[0-9a-f]{8,64}$')
_FIELDS = ('model', 'tag', 'dataset', 'resolution', 'num_classes', 'source', 'file', 'sha256', 'hub_repo',
           'hub_sha256', 'license')


class ChecksumMismatchError(CheckpointError):
    """A checkpoint file whose sha256 is not the one recorded for it."""


def _manifest_path() -> Path:
    return Path(os.environ.get('ZOO_MANIFEST', MANIFEST_PATH))


def read_manifest(path: Optional[os.PathLike] = None) -> List[Dict]:
    """The manifest's entries, checked: every field present, checksums hex (a full sha256 or its first 8+
    digits, as in torch hub file names), no (model, tag) twice. A missing manifest reads as empty (a wheel
    install without the repository's ``checkpoints/``)."""
    path = Path(path) if path is not None else _manifest_path()
    if not path.is_file():
        return []
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


def verify_checksum(path: os.PathLike, expected: str) -> None:
    """Raise :class:`ChecksumMismatchError` unless ``path``'s sha256 starts with ``expected`` (a full digest or
    a prefix of at least 8 hex digits)."""
    expected = expected.lower()
    if not _HEX.match(expected):
        raise ValueError(f'a checksum is 8 to 64 hex digits of a sha256, got {expected!r}')
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
        if checksum:
            verify_checksum(path, checksum)
        return path
    raise CheckpointError(f'no weights file {" or ".join(names)} in Hub repo {repo_id} '
                          f'(or not in the local cache when offline): {last_error}')


def model_card(model: nn.Module, name: str, sha256: str, entry: Optional[Dict] = None, deploy: bool = False) -> str:
    """A README.md for a zoo Hub repo: metadata header, what the weights are, how to load them, checksum."""
    cfg = model.pretrained_cfg
    params = sum(p.numel() for p in model.parameters())
    license_ = (entry or {}).get('license') or cfg.get('license') or 'other'
    lines = ['---', 'tags:', '- image-classification', '- timm', '- zoo', 'library_name: timm',
             f'license: {license_}', '---', '', f'# {name}', '',
             f'{cfg.get("architecture")} from the zoo, ' + ('in its deploy form (built with `deploy=True`).'
                                                           if deploy else 'in its train form.'), '']
    if entry:
        lines += [f'- Trained on: {entry["dataset"]} at {entry["resolution"]} px, {entry["num_classes"]} classes',
                  f'- Converted from the authors\' release: {entry["source"]}'
                  + (f' (sha256 {entry["sha256"]})' if entry['sha256'] else '')]
    from .benchmark import count_flops
    size = cfg.get('input_size', (3, 224, 224))
    training = model.training
    gflops = count_flops(model.eval(), torch.zeros(1, *size)) / 1e9
    model.train(training)
    paper = cfg.get('paper_ids', '')
    arxiv = paper.split(':', 1)[1] if paper.startswith('arXiv:') else ''
    lines += [f'- Parameters: {params / 1e6:.2f}M', f'- FLOPs: {gflops:.2f}G at {size[-1]} px (1 multiply-add = 2)',
              f'- Paper: {paper}' + (f' (https://arxiv.org/abs/{arxiv})' if arxiv else ''),
              f'- model.safetensors sha256: `{sha256}`', '', '## Use', '', '```python',
              'import timm, zoo  # importing zoo registers its architectures with timm',
              "model = timm.create_model('hf-hub:<this repo>', pretrained=True)", '```', '',
              '## Citation', '', f'Cite the paper of the architecture: {paper}' + (
                  f', https://arxiv.org/abs/{arxiv}' if arxiv else '') + '.', '']
    return '\n'.join(lines)


@torch.no_grad()
def save_for_hub(model: nn.Module, folder: os.PathLike, deploy: bool = False, entry: Optional[Dict] = None) -> str:
    """Write ``model`` as a zoo Hub folder with timm's ``save_for_hf`` (config.json, model.safetensors) plus a
    model card; return the sha256 of model.safetensors. ``deploy`` records ``deploy=True`` in the config's
    ``model_args`` so that loading rebuilds the deploy structure (families that take that argument)."""
    from timm.models._hub import save_for_hf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_for_hf(model, str(folder), model_args={'deploy': True} if deploy else None, safe_serialization=True)
    digest = sha256_of(folder / 'model.safetensors')
    name = model.pretrained_cfg.get('architecture', type(model).__name__)
    (folder / 'README.md').write_text(model_card(model, name, digest, entry, deploy))
    return digest


def push_to_hub(folder: os.PathLike, repo_id: str, token: Optional[str] = None, private: bool = False,
                commit_message: str = 'Add zoo checkpoint', revision: Optional[str] = None):
    """Upload a folder written by :func:`save_for_hub` to ``repo_id`` (created if missing)."""
    from huggingface_hub import HfApi

    folder = Path(folder)
    for required in ('config.json', 'model.safetensors', 'README.md'):
        if not (folder / required).is_file():
            raise FileNotFoundError(f'{folder} is not a zoo Hub folder: {required} is missing '
                                    f'(write it with tools/convert_checkpoint.py)')
    with open(folder / 'config.json') as f:
        architecture = json.load(f).get('architecture', '')
    if not architecture.startswith('zoo/'):
        raise ValueError(f'{folder}/config.json names architecture {architecture!r}, not a zoo model')
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message=commit_message,
                             revision=revision)
