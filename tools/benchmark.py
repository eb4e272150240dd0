#!/usr/bin/env python
"""Benchmark zoo models, train form vs deploy form, optionally against timm models, on CPU.

    python tools/benchmark.py lsnet_t lsnet_s --compare efficientvit_m5 --threads 2 --markdown out.md
    python tools/benchmark.py 'convnext_*' --timm-peers --forms deploy    # vs timm's same architecture
    python tools/benchmark.py biformer_t --forms unfused deploy    # fused attention (SDPA) vs the softmax form
    python tools/benchmark.py --large-kernel    # ways to compute a 13x13 depthwise conv, timed and checked
"""
import argparse
import sys

import zoo
from zoo.benchmark import LARGE_KERNEL_SHAPES, benchmark, kernel_table_markdown, large_kernel_table, to_csv, to_markdown


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('models', nargs='*', default=['lsnet_*'],
                   help='zoo model names or fnmatch patterns (default: lsnet_*)')
    p.add_argument('--compare', nargs='*', default=[],
                   help='timm model names measured in the same run, against the first zoo model')
    p.add_argument('--timm-peers', action='store_true',
                   help="pair every zoo model with timm's model of the same architecture, measured in turns")
    p.add_argument('--forms', nargs='+', default=['train', 'deploy'], choices=['train', 'deploy', 'unfused'],
                   help='unfused: the deploy form with attention as the materialized softmax(QK^T)V, not SDPA; '
                        'speed-ups are against the first form listed')
    p.add_argument('--img-size', type=int, default=224)
    p.add_argument('--batch-size', type=int, default=16, help='batch for the throughput figure')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--repeats', type=int, default=10)
    p.add_argument('--large-kernel', action='store_true',
                   help='instead of models: time every way of computing a large depthwise conv '
                        '(zoo.layers.DEPTHWISE_METHODS) on UniRepLKNet shapes, with its error')
    p.add_argument('--kernel-size', type=int, default=13, help='kernel size for --large-kernel')
    p.add_argument('--csv', help='write the rows as CSV to this file')
    p.add_argument('--markdown', help='write the table as Markdown to this file')
    return p.parse_args(argv)


def expand(patterns):
    names = []
    for pattern in patterns:
        found = zoo.list_models(pattern)
        if not found:
            zoo.create_model(pattern)  # raises with the close matches
        names += [n for n in found if n not in names]
    return names


def report(args, table: str, header: str) -> None:
    """Print the table under its header; with --markdown also write it to that file."""
    print(header + '\n')
    print(table)
    if args.markdown:
        with open(args.markdown, 'w') as f:
            f.write(table + '\n')


def main_large_kernel(args):
    rows = large_kernel_table(LARGE_KERNEL_SHAPES, kernel_size=args.kernel_size, threads=args.threads,
                              warmup=args.warmup, repeats=args.repeats,
                              progress=lambda s: print(f'measuring {s} ...', file=sys.stderr))
    report(args, kernel_table_markdown(rows),
           f'CPU, {args.threads} threads, fp32; median of {args.repeats}; error against a float64 direct conv; '
           f'"dilated branches" is the train form of the Dilated Reparam Block, before merging')
    return rows


def main(argv=None):
    args = parse_args(argv)
    if args.large_kernel:
        return main_large_kernel(args)
    models = expand(args.models)
    rows = benchmark(models, compare=args.compare, forms=args.forms, timm_peers=args.timm_peers,
                     img_size=args.img_size,
                     batch_size=args.batch_size, threads=args.threads, warmup=args.warmup,
                     repeats=args.repeats, progress=lambda s: print(f'measuring {s} ...', file=sys.stderr))
    report(args, to_markdown(rows),
           f'CPU, {args.threads} threads, fp32, {args.img_size}px; latency: batch 1 median of {args.repeats}; '
           f'speed-up: reference latency / latency (see the ratio column)')
    if args.csv:
        with open(args.csv, 'w') as f:
            f.write(to_csv(rows))
    return rows


if __name__ == '__main__':
    main()
