"""``python -m zoo``: list the registered models, then benchmark LSNet, train form vs deploy form, on CPU."""
import argparse

import timm

from . import list_models
from .measure import benchmark, count_params, to_markdown


def main(argv=None):
    p = argparse.ArgumentParser(prog='zoo', description=__doc__)
    p.add_argument('--models', nargs='+', default=['lsnet_t', 'lsnet_s', 'lsnet_b'])
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--repeats', type=int, default=10)
    args = p.parse_args(argv)

    print('Registered zoo models (timm name, params):')
    for name in list_models():
        print(f'  zoo/{name:<20} {count_params(timm.create_model("zoo/" + name)) / 1e6:8.3f}M')
    print(f'\nBenchmark, CPU, {args.threads} threads, fp32, 224px (speed-up = train-form time / deploy-form time):\n')
    rows = benchmark(args.models, threads=args.threads, batch_size=args.batch_size, repeats=args.repeats,
                     progress=True)
    print(to_markdown(rows))


if __name__ == '__main__':
    main()
