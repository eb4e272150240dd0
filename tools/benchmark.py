#!/usr/bin/env python
"""Benchmark zoo models: params, FLOPs, batch-1 latency, batch-N throughput, achieved GFLOP/s against the
machine's measured GEMM peak, peak activation memory; train vs deploy form, eager vs torch.compile vs ONNX
Runtime; against timm peers. Every model of a group is measured in turns, so ratios are fair.

    python tools/benchmark.py lsnet_t lsnet_s --compare efficientvit_m5 --threads 2 --markdown out.md
    python tools/benchmark.py '*' --forms train deploy --csv all.csv          # every registered model
    python tools/benchmark.py lsnet_t --forms deploy --runtimes eager compiled onnx
    python tools/benchmark.py lsnet_t shvit_s1 --forms deploy --compare        # the default timm peers (PEERS)
    python tools/benchmark.py 'convnext_*' --timm-peers --forms deploy    # vs timm's same architecture
    python tools/benchmark.py 'shvit_*' --timm-peers --peers-channels-last --forms deploy   # timm's also NHWC
    python tools/benchmark.py biformer_t --forms unfused deploy    # fused attention (SDPA) vs the softmax form
    python tools/benchmark.py shvit_s1 convnext_atto --forms unchecked deploy   # what keeping NaN costs
    python tools/benchmark.py lsnet_t --device cuda                # GPU: batch 256 with AMP (fp16) by default
    python tools/benchmark.py lsnet_t --device cuda --timm-peers --channels-last --train-step   # + a training step
    python tools/benchmark.py lsnet_t biformer_t --forms train deploy --authors lsnet=../lsnet biformer=../BiFormer
                                                   # against the authors' own code (a checkout), same weights
    python tools/benchmark.py --large-kernel    # ways to compute a 13x13 depthwise conv, timed and checked
"""
import argparse
import itertools
import os
import sys

import zoo
import torch

from zoo.measure import (AUTHORS, FORMS, LARGE_KERNEL_SHAPES, PEERS, RUNTIMES, benchmark, cpu_name, gemm_peak,
                           kernel_table_markdown, large_kernel_table, to_csv, to_markdown)


# environment variables that change the memory allocator (glibc's tunables, a preloaded jemalloc or tcmalloc)
ALLOCATOR_ENV = ('GLIBC_TUNABLES', 'LD_PRELOAD', 'MALLOC_CONF')


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('models', nargs='*', default=['lsnet_*'],
                   help='zoo model names or fnmatch patterns (default: lsnet_*)')
    p.add_argument('--compare', nargs='*', default=None,
                   help='timm model names measured in the same run, against the first zoo model; bare: '
                        f'the default peers {" ".join(PEERS)}')
    p.add_argument('--timm-peers', action='store_true',
                   help="pair every zoo model with timm's model of the same architecture, measured in turns")
    p.add_argument('--peers-channels-last', action='store_true',
                   help='also measure every timm model (--timm-peers, --compare) with its weights and inputs in '
                        'channels-last storage (form timm-cl)')
    p.add_argument('--forms', nargs='+', default=['train', 'deploy'], choices=FORMS,
                   help='unfused: the deploy form with attention as the materialized softmax(QK^T)V, not SDPA; '
                        'unchecked: the deploy form with every activation fused and no NaN check (for measuring); '
                        'speed-ups are against the first form listed')
    p.add_argument('--runtimes', nargs='+', default=['eager'], choices=RUNTIMES,
                   help='compiled: torch.compile (inductor); onnx: the model exported to ONNX, run by onnxruntime')
    p.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    p.add_argument('--amp', default=None, choices=['fp16', 'bf16', 'none'],
                   help='autocast dtype on a GPU (default fp16 there; the CPU measures fp32)')
    p.add_argument('--img-size', type=int, default=224)
    p.add_argument('--batch-size', type=int, default=None,
                   help='batch for the throughput figure (default 16 on the CPU, 256 on a GPU)')
    p.add_argument('--no-memory', action='store_true', help='skip the peak-memory forward')
    p.add_argument('--channels-last', action='store_true',
                   help='every model (zoo and timm) and the inputs in channels-last storage')
    p.add_argument('--train-step', action='store_true',
                   help='also time a training step per model at the batch size (AdamW, AMP on a GPU), '
                        'zoo and timm peers taking turns')
    p.add_argument('--authors', nargs='+', default=[], metavar='FAMILY=CHECKOUT',
                   help="also measure the authors' own model code, from a checkout of their repository, in their "
                        'deploy form on the same weights (form authors: in eager, and compiled too where '
                        '--runtimes has compiled; each row against the zoo deploy form in its runtime); families: '
                        + ', '.join(f'{family} ({code.repo})' for family, code in AUTHORS.items()))
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--warmup', type=int, default=3)
    p.add_argument('--repeats', type=int, default=10)
    p.add_argument('--large-kernel', action='store_true',
                   help='instead of models: time every way of computing a large depthwise conv '
                        '(zoo.layers.DEPTHWISE_METHODS) on UniRepLKNet shapes, with its error')
    p.add_argument('--kernel-size', type=int, default=13, help='kernel size for --large-kernel')
    p.add_argument('--csv', help='write the rows as CSV to this file')
    p.add_argument('--markdown', help='write the table as Markdown to this file')
    args = p.parse_args(argv)
    # counts that would divide by zero, time nothing or silently become a default
    for name, least in (('img_size', 1), ('batch_size', 1), ('threads', 1), ('warmup', 0), ('repeats', 1),
                        ('kernel_size', 1)):
        value = getattr(args, name)
        if value is not None and value < least:
            p.error(f'--{name.replace("_", "-")} must be >= {least}, got {value}')
    authors = {}
    for item in args.authors:
        family, sep, checkout = item.partition('=')
        if not sep or family not in AUTHORS:
            p.error(f'--authors takes FAMILY=CHECKOUT with FAMILY one of {sorted(AUTHORS)}, got {item!r}')
        authors[family] = checkout
    args.authors = authors
    return args


def expand(patterns):
    names = []
    for pattern in patterns:
        found = zoo.list_models(pattern)
        if not found:
            zoo.create_model(pattern)  # raises with the close matches
        names += [n for n in found if n not in names]
    return names


def report(args, table: str, header: str, echo: bool = True) -> None:
    """Print the table under its header (unless not ``echo``); with --markdown also write both, and the command,
    to that file."""
    if echo:
        print(header + '\n')
        print(table)
    if args.markdown:
        command = ' '.join(['python', 'tools/benchmark.py'] + [a if a.replace('-', '').replace('_', '').replace(
            '.', '').replace('/', '').isalnum() else f"'{a}'" for a in sys.argv[1:]])
        with open(args.markdown, 'w') as f:
            f.write(f'Command: `{command}`\n\n{header}\n\n{table}\n')


def write_csv(args, rows) -> None:
    if args.csv:
        with open(args.csv, 'w') as f:
            f.write(to_csv(rows))


def main_large_kernel(args):
    rows = large_kernel_table(LARGE_KERNEL_SHAPES, kernel_size=args.kernel_size, threads=args.threads,
                              warmup=args.warmup, repeats=args.repeats,
                              progress=lambda s: print(f'measuring {s} ...', file=sys.stderr))
    report(args, kernel_table_markdown(rows),
           f'CPU ({cpu_name()}), {args.threads} threads, fp32; median of {args.repeats}; error against a float64 direct '
           f'conv; "dilated branches" is the train form of the Dilated Reparam Block, before merging')
    return rows


def main(argv=None):
    args = parse_args(argv)
    if args.large_kernel:
        return main_large_kernel(args)
    models = expand(args.models)
    gpu = args.device == 'cuda'
    if gpu and not torch.cuda.is_available():
        sys.exit('--device cuda: no CUDA device is visible to torch')
    amp = {'fp16': torch.float16, 'bf16': torch.bfloat16, 'none': None, None: torch.float16 if gpu else None}[args.amp]
    batch_size = args.batch_size or (256 if gpu else 16)
    compare = PEERS if args.compare == [] else (args.compare or [])
    where = torch.cuda.get_device_name() if gpu else f'CPU ({cpu_name()}), {args.threads} threads'
    # the allocator changes what large activations cost (docs/deploy.md): a table says which it ran with
    where += ''.join(f', {k}={os.environ[k]}' for k in ALLOCATOR_ENV if os.environ.get(k))
    dtype = {None: 'fp32', torch.float16: 'AMP fp16', torch.bfloat16: 'AMP bf16'}[amp]
    peak = gemm_peak(args.device, amp or torch.float32, args.threads)  # measured once: benchmark() reuses it
    header = (f'{where}, {dtype}, {args.img_size}px; latency: batch 1 median of {args.repeats}; throughput: batch '
              f'{batch_size}; GEMM peak {peak:.0f} GFLOP/s ({"fp32" if amp is None else dtype.split()[-1]} '
              f'matrix product, {"torch.mm" if gpu else "the faster of torch.mm and oneDNN"}, '
              f'measured in this run); '
              + ('' if args.no_memory else f'peak act. mem: activations at batch {batch_size}'
                                           f'{"" if gpu else " (eager)"}; ')
              + 'speed-up: reference latency / latency (see the ratio column)')
    finished, groups = itertools.count(1), len(models) + len(compare)

    def so_far(rows):  # the files hold every row measured so far: a run stopped part-way keeps them
        report(args, to_markdown(rows), f'{header}\n\n**Unfinished**: the rows of {next(finished)} of {groups} '
                                        'models; the run had not ended when this was written.', echo=False)
        write_csv(args, rows)

    rows = benchmark(models, compare=compare, forms=args.forms, runtimes=args.runtimes, timm_peers=args.timm_peers,
                     peer_forms=('timm', 'timm-cl') if args.peers_channels_last else ('timm',),
                     img_size=args.img_size, batch_size=batch_size, threads=args.threads, warmup=args.warmup,
                     repeats=args.repeats, device=args.device, amp=amp, memory=not args.no_memory,
                     channels_last=args.channels_last, train_step=args.train_step, authors=args.authors,
                     progress=True, on_group=so_far if args.csv or args.markdown else None)
    report(args, to_markdown(rows), header)
    write_csv(args, rows)
    return rows


if __name__ == '__main__':
    main()
