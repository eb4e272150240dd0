#!/usr/bin/env python
"""Upload a zoo Hub folder (written by tools/convert_checkpoint.py) to the Hugging Face Hub.

    python tools/push_to_hub.py out/lsnet_t.in1k zoo-models/lsnet_t.in1k [--private] [--token hf_...]

The token defaults to huggingface_hub's (HF_TOKEN or ``huggingface-cli login``). Afterwards
``timm.create_model('hf-hub:zoo-models/lsnet_t.in1k', pretrained=True)`` loads it (after ``import zoo``).
"""
import argparse

from zoo.weights import push_to_hub


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('folder')
    p.add_argument('repo_id', help='<org>/<name>, e.g. zoo-models/lsnet_t.in1k')
    p.add_argument('--token', default=None)
    p.add_argument('--private', action='store_true')
    p.add_argument('--revision', default=None, help='branch to commit to (default: main)')
    p.add_argument('--message', default='Add zoo checkpoint')
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    info = push_to_hub(args.folder, args.repo_id, token=args.token, private=args.private,
                       commit_message=args.message, revision=args.revision)
    print(f'pushed {args.folder} to {args.repo_id}: {info}')
    return info


if __name__ == '__main__':
    main()
