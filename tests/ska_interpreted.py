"""Run by tests/test_ska_kernel.py in a fresh process with TRITON_INTERPRET=1 (Triton reads it when
triton.language is first imported): LSNet's fused SKA kernels on CPU tensors against the pure-PyTorch
reference. Prints one JSON object: per case, the largest error of the output and of both gradients."""
import json
import os
import sys

assert os.environ.get('TRITON_INTERPRET') == '1', 'run with TRITON_INTERPRET=1'

import torch  # noqa: E402

from zoo.layers import ska_triton  # noqa: E402
from zoo.models.lsnet import ska_reference  # noqa: E402

# (B, C, G, H, W, k): odd and non-square maps, a map larger than one block of 128 pixels, one and several
# channels per weight group, LSNet's 3x3 and a 5x5 kernel, a single pixel
SHAPES = [(2, 8, 4, 5, 7, 3), (1, 6, 2, 9, 4, 5), (1, 16, 2, 13, 11, 3), (1, 3, 3, 1, 1, 3)]


def _inputs(B, C, G, H, W, k, dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, C, H, W, generator=g).to(dtype).requires_grad_()
    w = torch.randn(B, G, k * k, H, W, generator=g).to(dtype).requires_grad_()
    return x, w


def errors(shape, dtype):
    """Largest |kernel - reference| of the output and both gradients; for bf16 the reference is the fp32 sum
    of the same bf16 values, and the error is given in units of bf16's rounding of the reference."""
    x, w = _inputs(*shape, dtype)
    out = ska_triton.ska(x, w)
    grad = torch.randn(out.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    got = (out, *torch.autograd.grad(out, (x, w), grad))
    x32, w32 = x.detach().float().requires_grad_(), w.detach().float().requires_grad_()
    ref = ska_reference(x32, w32)
    want = (ref, *torch.autograd.grad(ref, (x32, w32), grad.float()))
    result = {'dtypes': [str(t.dtype) for t in got]}
    for name, a, b in zip(('out', 'grad_x', 'grad_w'), got, want):
        diff = (a.float() - b).abs()
        result[name] = diff.max().item()
        if dtype == torch.bfloat16:  # in ulps of bf16 at each reference value
            ulp = torch.finfo(torch.bfloat16).eps * b.abs().clamp_min(1e-3)
            result[name + '_ulps'] = (diff / ulp).max().item()
    return result


def main():
    report = {'fp32 ' + 'x'.join(map(str, s)): errors(s, torch.float32) for s in SHAPES}
    report['bf16 1x8x2x6x5x3'] = errors((1, 8, 2, 6, 5, 3), torch.bfloat16)
    x, w = _inputs(1, 4, 2, 5, 3, 3, torch.float32)
    torch.library.opcheck(ska_triton.ska, (x, w))  # schema, fake kernel, autograd registration
    report['opcheck'] = 'ok'
    json.dump(report, sys.stdout)


if __name__ == '__main__':
    main()
