"""Export zoo models (deploy form by default) to ONNX, checked against onnxruntime, as a torch.export
program / TorchScript module, checked by loading it back, or for the runtimes people deploy with: int8
(``int8-inductor``: a PT2E program for torch.compile on x86; ``int8-ort``: ONNX Runtime QDQ), OpenVINO
(``openvino``, ``openvino-int8``), ExecuTorch with XNNPACK (``executorch``, ``executorch-int8``), each run
back and compared with PyTorch, and Core ML (``coreml``: converted and inspected; it predicts only on macOS).

    python tools/export.py --model lsnet_t                  # exports/lsnet_t.onnx, checked
    python tools/export.py --model '*' --format torch.export    # exports/<model>.pt2, dynamic batch
    python tools/export.py --model '*' --out exports        # every registered model; a Markdown table
    python tools/export.py --model lsnet_t --checkpoint lsnet_t.pth --train-form
    python tools/export.py --model lsnet_t --format openvino-int8 --calibration data/digits/train --size 32 32

Exits non-zero when an export fails or, for a float format, its outputs differ from PyTorch's by more than
--tolerance (int8 outputs are reported; their accuracy is measured by tools/quantize.py).
"""
import argparse
import os
import sys
import traceback

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from zoo.deploy import FORMATS, INT8_FORMATS, OPSET, calibration_batches, export_and_check  # noqa: E402
from zoo.models import create_model, list_models  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--model', nargs='+', default=['lsnet_t'], help='zoo model names or fnmatch patterns')
    p.add_argument('--out', default='exports', help='directory for the exported files')
    p.add_argument('--format', default='onnx', choices=sorted(FORMATS),
                   help='onnx (checked in onnxruntime), torch.export (.pt2), torchscript (traced, .pt), or a deploy '
                        'runtime: ' + ', '.join(f for f in FORMATS if f not in ('onnx', 'torch.export', 'torchscript')))
    p.add_argument('--calibration', help='int8 formats: an ImageFolder directory of calibration images (default: '
                                         'random images, which time a model but say nothing of its accuracy)')
    p.add_argument('--calibration-images', type=int, default=256, help='images taken from --calibration')
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
            calibration = None
            if a.format in INT8_FORMATS and a.calibration:
                with torch.device('meta'):
                    cfg = create_model(name).pretrained_cfg
                size = (3, *a.size) if a.size else tuple(cfg.get('input_size', (3, 224, 224)))
                calibration = calibration_batches(a.calibration, size, a.calibration_images, 32)
            row = export_and_check(name, a.out, deploy=not a.train_form, checkpoint=a.checkpoint,
                                   input_size=(3, *a.size) if a.size else None,
                                   dynamic_hw=False if a.static_hw else None, opset=a.opset, format=a.format,
                                   calibration=calibration)
        except Exception as e:  # one model's failure is reported, the others still run
            failed += 1
            print(f'| {name} | {"train" if a.train_form else "deploy"} | | | | failed: {type(e).__name__}: '
                  f'{str(e).splitlines()[0][:200]} |')
            traceback.print_exc(file=sys.stderr)
            continue
        if a.format == 'coreml':  # no predictions off macOS: the converted program is reported
            info = row['coreml']
            result = (f'converted: {info["inputs"]} -> {info["outputs"]}, {sum(info["ops"].values())} ops '
                      f'({", ".join(sorted(info["ops"]))}); predictions need macOS')
            print(f'| {name} | {row["form"]} | no | | {row["size_mb"]:.1f} | {result} |', flush=True)
            continue
        if a.format in INT8_FORMATS:
            result = 'int8 (accuracy: tools/quantize.py)'
        else:
            ok = row['max_abs_err'] <= a.tolerance
            failed += not ok
            result = 'ok' if ok else 'over tolerance'
        print(f'| {name} | {row["form"]} | {"yes" if row["dynamic_hw"] else "no"} | {row["max_abs_err"]:.2e} | '
              f'{row["size_mb"]:.1f} | {result} |', flush=True)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
