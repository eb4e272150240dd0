"""LSNet's fused SKA kernel (zoo.layers.ska_triton) on the CPU through Triton's interpreter: the forward and
both gradients against the pure-PyTorch reference (odd sizes, several channel groups, 3x3 and 5x5 kernels,
fp32 and bf16), the custom op's registrations (torch.library.opcheck), and LSNet's choice of path."""
import json
import os
import subprocess
import sys

import pytest
import torch

from zoo.layers import ska_triton
from zoo.models.lsnet import ska_reference, small_kernel_aggregation

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# one worker runs this file: the interpreter's run (the module fixture below, ~15 s) then happens once
pytestmark = pytest.mark.xdist_group('ska_interpreter')


@pytest.fixture(scope='module')
def interpreted():
    """What tests/ska_interpreted.py measures in a fresh process under Triton's interpreter (it must be on
    before triton.language is imported, which importing torch's compiler here already did)."""
    env = dict(os.environ, TRITON_INTERPRET='1', PYTHONPATH=os.pathsep.join([ROOT, os.environ.get('PYTHONPATH', '')]))
    done = subprocess.run([sys.executable, os.path.join(ROOT, 'tests', 'ska_interpreted.py')], env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize('case', [f'fp32 {s}' for s in ('2x8x4x5x7x3', '1x6x2x9x4x5', '1x16x2x13x11x3', '1x3x3x1x1x3')])
def test_forward_and_both_gradients_match_the_reference(interpreted, case):
    """(B x C x G x H x W x k): odd and non-square maps, more pixels than one block, one and several channels
    per weight group, 3x3 and 5x5 kernels, a single pixel."""
    got = interpreted[case]
    assert got['dtypes'] == ['torch.float32'] * 3
    assert got['out'] <= 1e-5 and got['grad_x'] <= 1e-5 and got['grad_w'] <= 1e-5, got


def test_bf16_accumulates_in_fp32(interpreted):
    """bf16 in, bf16 out (and gradients): accumulated in fp32 and rounded once, so each result is within
    one bf16 rounding step of the fp32 sum of the same values."""
    got = interpreted['bf16 1x8x2x6x5x3']
    assert got['dtypes'] == ['torch.bfloat16'] * 3
    assert max(got['out_ulps'], got['grad_x_ulps'], got['grad_w_ulps']) <= 1.0, got


def test_custom_op_registrations_hold(interpreted):
    """torch.library.opcheck: the schema, the fake (meta) kernel and autograd as compile and export use them."""
    assert interpreted['opcheck'] == 'ok'


def test_shapes_that_are_not_ska_are_refused():
    with pytest.raises(ValueError, match=r'odd square kernel.*\(1, 6, 4, 4\).*\(1, 4, 9, 4, 4\)'):
        ska_triton.ska_forward(torch.randn(1, 6, 4, 4), torch.randn(1, 4, 9, 4, 4))  # 6 channels, 4 groups
    with pytest.raises(ValueError, match='odd square kernel'):
        ska_triton.ska_forward(torch.randn(1, 4, 4, 4), torch.randn(1, 2, 4, 4, 4))  # a 2x2 kernel
    with pytest.raises(ValueError, match=r'takes x \(B, C, H, W\)'):
        ska_triton.ska_forward(torch.randn(4, 4, 4), torch.randn(1, 2, 9, 4, 4))


def test_lsnet_takes_the_reference_on_the_cpu():
    """The CPU path stays the pure-PyTorch one (exported, quantized and compiled as before); only a CUDA
    tensor reaches the fused op (tests/test_cuda.py counts it there)."""
    from zoo.models import lsnet
    assert lsnet.FUSED_SKA  # Triton is installed with the dev extra
    x, w = torch.randn(1, 4, 5, 5), torch.randn(1, 2, 9, 5, 5)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        out = small_kernel_aggregation(x, w)
    assert not [e for e in prof.key_averages() if e.key == 'zoo::ska']
    torch.testing.assert_close(out, ska_reference(x, w))
