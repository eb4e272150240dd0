"""Checkpoints on the Hugging Face Hub, in timm's layout.

A zoo Hub repo is what ``timm``'s own ``save_for_hf`` writes: ``config.json`` (``architecture`` is the zoo's
registry name, e.g. ``zoo/lsnet_t``, plus ``num_classes``, ``model_args`` and ``pretrained_cfg``) and
``model.safetensors``, with a ``README.md`` model card. So ``timm.create_model('hf-hub:<org>/<repo>')`` and
``timm.create_model('local-dir:<folder>')`` build zoo models through timm's loading path once ``zoo`` is
imported, and so do 🤗 transformers' ``AutoModelForImageClassification.from_pretrained`` and
``pipeline('image-classification')`` (their timm wrapper calls ``timm.create_model``).
"""
import json
import os
import re
from pathlib import Path
from typing import Dict, Optional

import torch
import torch.nn as nn

from .checkpoint import read_checkpoint
from .checksum import ChecksumMismatchError, sha256_of

__all__ = ['save_for_hub', 'push_to_hub', 'model_card']


def model_card(model: nn.Module, name: str, sha256: str, entry: Optional[Dict] = None, deploy: bool = False,
               gflops: Optional[float] = None) -> str:
    """A README.md for a zoo Hub repo: metadata header, what the weights are, how to load them, checksum.
    ``gflops``: the model's FLOPs at its input size (``zoo.measure.count_flops``), stated where given."""
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
    size = cfg.get('input_size', (3, 224, 224))
    paper = cfg.get('paper_ids', '')
    arxiv = paper.split(':', 1)[1] if paper.startswith('arXiv:') else ''
    lines.append(f'- Parameters: {params / 1e6:.2f}M')
    if gflops is not None:
        lines.append(f'- FLOPs: {gflops:.2f}G at {size[-1]} px (1 multiply-add = 2)')
    lines += [f'- Paper: {paper}' + (f' (https://arxiv.org/abs/{arxiv})' if arxiv else ''),
              f'- model.safetensors sha256: `{sha256}`', '', '## Use', '', '```python',
              'import timm, zoo  # importing zoo registers its architectures with timm',
              "model = timm.create_model('hf-hub:<this repo>', pretrained=True)", '```', '',
              '## Citation', '', f'Cite the paper of the architecture: {paper}' + (
                  f', https://arxiv.org/abs/{arxiv}' if arxiv else '') + '.', '']
    return '\n'.join(lines)


def _drop_class_count_from_model_args(config_path: Path) -> None:
    """timm's ``save_for_hf`` writes ``num_classes`` twice: at the top of config.json and in ``model_args``.
    transformers' ``TimmWrapperForImageClassification`` calls ``timm.create_model(architecture,
    num_classes=config.num_labels, **model_args)``, which then fails with "got multiple values for keyword
    argument 'num_classes'" (transformers 5.24 with timm 1.0.31, for timm's own models too). timm takes the
    class count from the top-level entry (into the pretrained cfg, a default of ``create_model``), so the copy in
    ``model_args`` is dropped and both libraries load the folder."""
    config = json.loads(config_path.read_text())
    model_args = config.get('model_args') or {}
    if model_args.pop('num_classes', config.get('num_classes')) != config.get('num_classes'):
        raise ValueError(f'{config_path}: model_args and config give different class counts')
    config['model_args'] = model_args
    config_path.write_text(json.dumps(config, indent=2) + '\n')


@torch.no_grad()
def save_for_hub(model: nn.Module, folder: os.PathLike, deploy: bool = False, entry: Optional[Dict] = None,
                 gflops: Optional[float] = None) -> str:
    """Write ``model`` as a zoo Hub folder with timm's ``save_for_hf`` (config.json, model.safetensors) plus a
    model card; return the sha256 of model.safetensors. ``deploy`` records ``deploy=True`` in the config's
    ``model_args`` so that loading rebuilds the deploy structure (families that take that argument)."""
    from timm.models._hub import save_for_hf

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_for_hf(model, str(folder), model_args={'deploy': True} if deploy else None, safe_serialization=True)
    _drop_class_count_from_model_args(folder / 'config.json')
    digest = sha256_of(folder / 'model.safetensors')
    name = model.pretrained_cfg.get('architecture', type(model).__name__)
    (folder / 'README.md').write_text(model_card(model, name, digest, entry, deploy, gflops))
    return digest


def push_to_hub(folder: os.PathLike, repo_id: str, token: Optional[str] = None, private: bool = False,
                commit_message: str = 'Add zoo checkpoint', revision: Optional[str] = None):
    """Upload a folder written by :func:`save_for_hub` to ``repo_id`` (created if missing), after checking it:
    model.safetensors must read whole and have the sha256 its model card states, so that a truncated or
    replaced file is never published."""
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
    weights = folder / 'model.safetensors'
    read_checkpoint(weights)  # a CheckpointError naming the file if it is truncated or not safetensors
    stated = re.search(r'model\.safetensors sha256: `([0-9a-f]{64})`', (folder / 'README.md').read_text())
    actual = sha256_of(weights)
    if stated is None or stated.group(1) != actual:
        raise ChecksumMismatchError(
            f'{weights} has sha256 {actual}, but its model card states '
            f'{stated.group(1) if stated else "none"}; the file changed after it was written: convert again '
            f'(tools/convert_checkpoint.py) before pushing')
    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(folder_path=str(folder), repo_id=repo_id, commit_message=commit_message,
                             revision=revision)
