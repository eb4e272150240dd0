"""What only a GPU can check (``-m cuda``; tools/gpu_check.sh runs them): LSNet's fused SKA kernel compiled
for the device against the shifted-sum reference, LSNet taking it (eager, compiled, training), and the
attention of LITv2, SHViT and BiFormer reaching SDPA's fused kernels. The same kernels are checked on the
CPU under Triton's interpreter (tests/test_ska_kernel.py)."""
import pytest
import torch

import zoo
from zoo.layers import ska_triton
from zoo.models.lsnet import ska_reference

pytestmark = [pytest.mark.cuda,
              pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device (tools/gpu_check.sh)')]


@pytest.fixture(autouse=True)
def exact_matmul():
    old = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old


@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize('shape', [(2, 64, 8, 28, 28, 3), (1, 24, 3, 15, 9, 5)], ids=lambda s: 'x'.join(map(str, s)))
def test_ska_kernel_matches_the_reference(shape, dtype):
    B, C, G, H, W, k = shape
    g = torch.Generator(device='cuda').manual_seed(0)
    x = torch.randn(B, C, H, W, device='cuda', generator=g).to(dtype).requires_grad_()
    w = torch.randn(B, G, k * k, H, W, device='cuda', generator=g).to(dtype).requires_grad_()
    out = ska_triton.ska(x, w)
    grad = torch.randn_like(out)
    got = (out, *torch.autograd.grad(out, (x, w), grad))
    x32, w32 = x.detach().float().requires_grad_(), w.detach().float().requires_grad_()
    ref = ska_reference(x32, w32)
    want = (ref, *torch.autograd.grad(ref, (x32, w32), grad.float()))
    tol = dict(atol=1e-5, rtol=1e-5) if dtype == torch.float32 else dict(atol=2e-2, rtol=1e-2)
    for a, b in zip(got, want):
        assert a.dtype == dtype
        torch.testing.assert_close(a.float(), b.to(dtype).float(), **tol)


def _ska_calls(fn):
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        out = fn()
    return out, sum(e.count for e in prof.key_averages() if e.key == 'zoo::ska')


def test_lsnet_takes_the_fused_op_and_agrees_with_the_cpu():
    torch.manual_seed(0)
    model = zoo.create_model('lsnet_t').eval()
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        want = model(x)
        got, calls = _ska_calls(lambda: model.cuda()(x.cuda()).cpu())
    assert calls == sum(1 for m in model.modules() if type(m).__name__ == 'SKA')
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


def test_lsnet_compiles_and_trains_with_the_fused_op():
    """torch.compile keeps the op whole (no graph break), and a training step's gradients match eager's."""
    torch.manual_seed(0)
    model = zoo.create_model('lsnet_t', num_classes=10).cuda().train()
    x = torch.randn(4, 3, 128, 128, device='cuda')
    explanation = torch._dynamo.explain(model)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    compiled = torch.compile(model)
    grads = []
    for fn in (model, compiled):
        model.zero_grad()
        torch.manual_seed(1)
        fn(x).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[1], grads[0], atol=1e-4, rtol=1e-3)


@pytest.mark.parametrize('name', ['litv2_s', 'shvit_s1', 'biformer_t', 'lsnet_t'])
def test_attention_reaches_sdpa_fused_kernels(name):
    """Under fp16 autocast every attention call runs on a fused SDPA kernel (flash, memory-efficient or
    cuDNN): with the math fallback switched off, a call that would need it raises."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    model = zoo.reparameterize(zoo.create_model(name).eval()).cuda()
    x = torch.randn(2, 3, 224, 224, device='cuda')
    with torch.no_grad(), torch.autocast('cuda', dtype=torch.float16):
        want = model(x).float()
        with sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION]):
            got = model(x).float()
    torch.testing.assert_close(got, want, atol=5e-2, rtol=5e-2)


@pytest.mark.parametrize('stage', [(64, 2, 56, 1), (128, 4, 28, 4), (256, 8, 14, 16)], ids=str)
def test_bra_block_sparse_compiled_matches_gather(stage):
    """BiFormer-T's stages (dim, heads, map, top-k) at 224 px: 64, 16 and 4 tokens a region."""
    from zoo.models.biformer import BiLevelRoutingAttention
    dim, heads, size, topk = stage
    torch.manual_seed(0)
    gather = BiLevelRoutingAttention(dim, heads, 7, topk).cuda().eval()
    sparse = BiLevelRoutingAttention(dim, heads, 7, topk, routing_impl='block-sparse').cuda().eval()
    sparse.load_state_dict(gather.state_dict())
    x = torch.randn(4, size, size, dim, device='cuda')
    with torch.no_grad():
        if (size // 7) ** 2 % 16:  # fewer tokens a region than FlexAttention's smallest GPU tile: said at once
            with pytest.raises(ValueError, match='multiple of 16 tokens'):
                sparse(x)
            return
        torch.testing.assert_close(torch.compile(sparse)(x), gather(x), atol=1e-4, rtol=1e-4)
