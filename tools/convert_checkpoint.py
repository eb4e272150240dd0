#!/usr/bin/env python
"""Turn an authors' checkpoint file into a zoo Hub folder in timm's layout, and check it.

    python tools/convert_checkpoint.py lsnet_t lsnet_t.pth out/lsnet_t.in1k --tag in1k
    python tools/convert_checkpoint.py unireplknet_t unireplknet_t_in1k_224_acc83.21.pth out/ut --deploy

The file is loaded through the family's checkpoint filter (every key checked), optionally turned into the
deploy form, written with timm's ``save_for_hf`` (config.json, model.safetensors) plus a model card, then
loaded back through ``timm.create_model('local-dir:<folder>', pretrained=True)``. The logits of the reloaded
model on a fixed random batch must equal those of the converted model exactly, and a deploy form must be within
``--tolerance`` of the train form; otherwise the tool fails. The files are written to a new temporary folder
beside the output and moved into the output only once they pass, so a failed conversion removes nothing but
that temporary folder, and files already in the output folder are replaced only with ``--overwrite``. The
sha256 of model.safetensors is printed for ``hub_sha256`` in zoo/weights/manifest.toml.
"""
import argparse
import os
import shutil
import sys
import tempfile

import timm
import torch

import zoo
from zoo.measure import count_flops
from zoo.weights import manifest_entry, save_for_hub


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('model', help='zoo model name, e.g. lsnet_t')
    p.add_argument('checkpoint', help='the official (or zoo) checkpoint file, .pth or .safetensors')
    p.add_argument('output', help='folder to write (config.json, model.safetensors, README.md)')
    p.add_argument('--tag', default=None, help='pretrained tag (default: the model\'s first), e.g. in1k')
    p.add_argument('--num-classes', type=int, default=None, help='classes in the file (default: the tag\'s)')
    p.add_argument('--deploy', action='store_true',
                   help='publish the deploy form; the family must accept deploy=True (UniRepLKNet)')
    p.add_argument('--check-size', type=int, default=None, help='input size for the check (default: the tag\'s)')
    p.add_argument('--tolerance', type=float, default=1e-4, help='max abs logit error, deploy vs train form')
    p.add_argument('--overwrite', action='store_true',
                   help='replace config.json / model.safetensors / README.md already in the output folder')
    args = p.parse_args(argv)
    if args.check_size is not None and args.check_size < 1:
        p.error(f'--check-size must be a positive number of pixels, got {args.check_size}')
    if not args.tolerance >= 0:
        p.error(f'--tolerance must be >= 0, got {args.tolerance}')
    return args


OUTPUT_FILES = ('config.json', 'model.safetensors', 'README.md')


def check_paths(args) -> None:
    """The files the conversion reads and writes, checked before any work: the checkpoint exists, and the
    output folder holds no earlier conversion unless ``--overwrite``."""
    if not os.path.isfile(args.checkpoint):
        raise SystemExit(f'checkpoint {args.checkpoint!r} is not a file')
    if os.path.exists(args.output) and not os.path.isdir(args.output):
        raise SystemExit(f'output {args.output!r} exists and is not a folder')
    taken = [n for n in OUTPUT_FILES if os.path.exists(os.path.join(args.output, n))]
    if taken and not args.overwrite:
        raise SystemExit(f'output folder {args.output!r} already holds {", ".join(taken)}; pass --overwrite to '
                         f'replace them, or choose another folder')


@torch.no_grad()
def convert(args) -> str:
    name = zoo.timm_name(args.model)
    tag = args.tag or timm.models.get_pretrained_cfg(name).tag
    full = f'{name}.{tag}' if tag else name
    kwargs = {} if args.num_classes is None else {'num_classes': args.num_classes}
    model = timm.create_model(full, pretrained=True, pretrained_cfg_overlay=dict(file=args.checkpoint), **kwargs)
    model.eval()
    size = args.check_size or model.pretrained_cfg['input_size'][-1]
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    expected = model(x)
    if args.deploy:
        try:
            built = timm.create_model(full, deploy=True, **kwargs)
        except TypeError as e:
            raise SystemExit(f'{args.model} has no deploy-form constructor (deploy=True): publish the train form '
                             f'and call zoo.reparameterize after loading ({e})')
        deploy = zoo.reparameterize(model)
        built.load_state_dict(deploy.state_dict())
        model = built.eval()
        err = (model(x) - expected).abs().max().item()
        print(f'deploy form vs train form: max abs logit error {err:.2e}')
        if err > args.tolerance:
            raise SystemExit(f'deploy form differs from the train form by {err:.2e} > {args.tolerance}')
        expected = model(x)
    entry = manifest_entry(args.model, tag) if tag else None
    gflops = count_flops(model, torch.zeros(1, *model.pretrained_cfg['input_size'])) / 1e9
    parent = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix='.convert-', dir=parent)  # ours alone: the only folder ever removed
    try:
        digest = save_for_hub(model, staging, deploy=args.deploy, entry=entry, gflops=gflops)
        reloaded = timm.create_model(f'local-dir:{staging}', pretrained=True).eval()
        err = (reloaded(x) - expected).abs().max().item()
        if err != 0.0:
            raise SystemExit(f'the reloaded folder gives different logits (max abs {err:.2e}); '
                             f'nothing was written to {args.output}')
        os.makedirs(args.output, exist_ok=True)
        for name in OUTPUT_FILES:
            os.replace(os.path.join(staging, name), os.path.join(args.output, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    print(f'wrote {args.output}: reloaded through local-dir:, logits identical ({size} px)')
    print(f'model.safetensors sha256 = "{digest}"  (hub_sha256 for {args.model}.{tag} in zoo/weights/manifest.toml)')
    return digest


def main(argv=None):
    args = parse_args(argv)
    check_paths(args)
    return convert(args)


if __name__ == '__main__':
    sys.exit(0 if main() else 1)
