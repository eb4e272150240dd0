"""Quantize a trained model to int8 and measure it beside its float runtimes: top-1 on a validation folder, the
largest difference of its logits from fp32 eager, its file size, and optionally (--speed) latency at batch 1
and throughput at batch 16 at another input size, every runtime in the same run.

    python tools/quantize.py --checkpoint output/digits/lsnet_t/model_best.pth \\
        --calibration data/digits/train --val data/digits/val --runtimes eager bf16 int8-inductor int8-ort
    python tools/quantize.py --checkpoint CHECKPOINT --calibration DIR --val DIR --speed --markdown deploy.md

Calibration takes --calibration-images images of an ImageFolder directory (the training split) in the
model's evaluation transform. A runtime that cannot run the model gives a row saying why (the operation it
failed on), not a silent fallback.
"""
import argparse
import os
import statistics
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch  # noqa: E402

from zoo.deploy import reparameterize  # noqa: E402
from zoo.deploy.runtimes import PRECISION, RUNTIMES, calibration_batches, deployed  # noqa: E402
from zoo.measure.report import DEPLOY_FIELDS, deploy_table  # noqa: E402
from zoo.measure.timing import interleaved_times, paired_ratio  # noqa: E402
from zoo.train.checkpoint import build_evaluated_model, resolve_weights  # noqa: E402
from zoo.train.engine import eval_transform  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--checkpoint', required=True, help='a training checkpoint of tools/train.py, or a zoo / '
                                                       'official file with --model')
    p.add_argument('--model', help='the zoo model, where the checkpoint does not name it')
    p.add_argument('--num-classes', type=int)
    p.add_argument('--calibration', required=True, help='ImageFolder directory of calibration images')
    p.add_argument('--calibration-images', type=int, default=256)
    p.add_argument('--val', required=True, help='ImageFolder directory to measure top-1 on')
    p.add_argument('--runtimes', nargs='+', default=[r for r in RUNTIMES if r != 'compiled'], choices=RUNTIMES,
                   help='default: all but compiled (fp32 torch.compile: tools/benchmark.py measures it)')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--batch-size', type=int, default=50, help='evaluation batch')
    p.add_argument('--speed', action='store_true', help='also time every runtime at --speed-size')
    p.add_argument('--speed-size', type=int, default=224)
    p.add_argument('--repeats', type=int, default=10)
    p.add_argument('--csv', help='append the rows to this CSV file')
    p.add_argument('--markdown', help='write the table to this file')
    return p


def _val_batches(root, transform, batch_size):
    from timm.data import ImageDataset
    dataset = ImageDataset(root, transform=transform)
    if len(dataset) == 0:
        raise SystemExit(f'--val {root}: no images')
    items = [dataset[i] for i in range(len(dataset))]
    return [(torch.stack([x for x, _ in items[i:i + batch_size]]), torch.tensor([y for _, y in items[i:i + batch_size]]))
            for i in range(0, len(items), batch_size)]


def _reason(e: Exception, workdir: str) -> str:
    """An exception's first line, for a row: the temporary folder's path cut out of it."""
    text = str(e).replace(os.path.join(workdir, ''), '')
    return f'{type(e).__name__}: {(text.splitlines() or [""])[0][:300]}'


def _file_mb(path):
    if not path:
        return None
    from zoo.deploy.export import file_size
    return file_size(path) / 2 ** 20


def main(argv=None):
    a = build_parser().parse_args(argv)
    torch.set_num_threads(a.threads)
    source = resolve_weights(a.model, a.checkpoint, a.num_classes, False)
    model, data_config = build_evaluated_model(source, False, None, None)
    model = reparameterize(model.eval())
    transform = eval_transform(data_config)
    input_size = tuple(data_config['input_size'])
    calibration = calibration_batches(a.calibration, input_size, a.calibration_images, 32, transform)
    val = _val_batches(a.val, transform, a.batch_size)
    with torch.no_grad():
        reference = [model(x) for x, _ in val]
    name = source.model_name
    rows = []
    with tempfile.TemporaryDirectory() as workdir:
        for runtime in a.runtimes:
            row = dict(model=name, runtime=runtime, precision=PRECISION[runtime])
            try:
                t0 = time.perf_counter()
                run = deployed(model, runtime, input_size, workdir, calibration, a.threads)
                correct, worst = 0, 0.0
                for (x, y), want in zip(val, reference):
                    with torch.no_grad():
                        got = torch.as_tensor(run(x)).float()
                    worst = max(worst, (got - want).abs().max().item())
                    correct += (got.argmax(-1) == y).sum().item()
                row.update(top1=100.0 * correct / sum(len(y) for _, y in val), max_abs_err=worst,
                           size_mb=_file_mb(getattr(run, 'path', None)), build_s=time.perf_counter() - t0)
            except Exception as e:  # a runtime that cannot run the model: its row says why
                row['error'] = _reason(e, workdir)
                traceback.print_exc(file=sys.stderr)
            rows.append(row)
            print(row, flush=True)
        if a.speed:
            _time_runtimes(model, rows, a, workdir)
    _report(rows, a, input_size)
    return 0


def _time_runtimes(model, rows, a, workdir):
    """Latency (batch 1) and throughput (batch 16) of every runtime that ran, at --speed-size, taking turns."""
    size = (3, a.speed_size, a.speed_size)
    ok = [r for r in rows if 'error' not in r]
    built = []
    for r in ok:
        try:
            built.append((r, deployed(model, r['runtime'], size, workdir, None, a.threads)))
        except Exception as e:
            r['error'] = f'at {a.speed_size}px: {_reason(e, workdir)}'
    g = torch.Generator().manual_seed(0)
    x1, x16 = torch.randn(1, *size, generator=g), torch.randn(16, *size, generator=g)
    fns = [fn for _, fn in built]
    lat = interleaved_times(fns, x1, 3, a.repeats)
    bt = interleaved_times(fns, x16, 2, max(3, a.repeats // 2))
    eager = next((i for i, (r, _) in enumerate(built) if r['runtime'] == 'eager'), None)
    for i, (r, _) in enumerate(built):
        r.update(latency_ms=1e3 * statistics.median(lat[i]), throughput=16 / statistics.median(bt[i]))
        if eager is not None:  # each round's two calls back to back: the median of the rounds' ratios
            r.update(speedup_b1=paired_ratio(lat[eager], lat[i]), speedup_b16=paired_ratio(bt[eager], bt[i]))


def _report(rows, a, input_size):
    table = deploy_table(rows, f'top-1 ({os.path.basename(os.path.normpath(a.val))})',
                         a.speed_size if a.speed else None)
    print(table)
    if a.markdown:
        with open(a.markdown, 'w') as f:
            f.write(f'Input {input_size[1]}px for top-1 and errors; {a.threads} threads.\n\n{table}\n')
    if a.csv:
        import csv
        new = not os.path.exists(a.csv)
        with open(a.csv, 'a', newline='') as f:
            w = csv.DictWriter(f, fieldnames=DEPLOY_FIELDS, extrasaction='ignore')
            if new:
                w.writeheader()
            w.writerows(rows)


if __name__ == '__main__':
    sys.exit(main())
