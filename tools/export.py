"""Export zoo models (deploy form by default) to ONNX, checked against onnxruntime, or as a torch.export
program / TorchScript module, checked by loading it back.

    python tools/export.py --model lsnet_t                  # exports/lsnet_t.onnx, checked
    python tools/export.py --model '*' --format torch.export    # exports/<model>.pt2, dynamic batch
    python tools/export.py --model '*' --out exports        # every registered model; a Markdown table
    python tools/export.py --model lsnet_t --checkpoint lsnet_t.pth --train-form

Exits non-zero when an export fails or its outputs differ from PyTorch's by more than --tolerance.
"""
import argparse
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zoo.deploy import FORMATS, OPSET, export_and_check  # noqa: E402
from zoo.models import list_models  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--model', nargs='+', default=['lsnet_t'], help='zoo model names or fnmatch patterns')
    p.add_argument('--out', default='exports', help='directory for the exported files')
    p.add_argument('--format', default='onnx', choices=sorted(FORMATS),
                   help='onnx (checked in onnxruntime), torch.export (.pt2) or torchscript (traced, .pt)')
    p.add_argument('--checkpoint', help='weights to export (an official or zoo file); default: random init')
    p.add_argument('--train-form', action='store_true', help='export the training form, not the deploy form')
    p.add_argument('--size', type=int, nargs=2, metavar=('H', 'W'), help="input size (default: the model's)")
    p.add_argument('--static-hw', action='store_true', help='fixed height and width for every model')
    p.add_argument('--opset', type=int, default=OPSET)
    p.add_argument('--tolerance', type=float, default=1e-4, help='largest allowed |exported - PyTorch|')
    return p


def main(argv=None):
    p = build_parser()
    a = p.parse_args(argv)
    names = sorted({n for pattern in a.model for n in list_models(pattern)})
    if not names:
        p.error(f'no zoo model matches {a.model}')
    print('| model | form | dynamic H, W | max abs error | MB | result |')
    print('|---|---|---|---|---|---|')
    failed = 0
    for name in names:
        try:
            row = export_and_check(name, a.out, deploy=not a.train_form, checkpoint=a.checkpoint,
                                   input_size=(3, *a.size) if a.size else None,
                                   dynamic_hw=False if a.static_hw else None, opset=a.opset, format=a.format)
        except Exception as e:  # one model's failure is reported, the others still run
            failed += 1
            print(f'| {name} | {"train" if a.train_form else "deploy"} | | | | failed: {type(e).__name__}: '
                  f'{str(e).splitlines()[0][:200]} |')
            traceback.print_exc(file=sys.stderr)
            continue
        ok = row['max_abs_err'] <= a.tolerance
        failed += not ok
        print(f'| {name} | {row["form"]} | {"yes" if row["dynamic_hw"] else "no"} | {row["max_abs_err"]:.2e} | '
              f'{row["size_mb"]:.1f} | {"ok" if ok else "over tolerance"} |', flush=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
