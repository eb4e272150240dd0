"""SHViT, LITv2 and BiFormer: fused attention against the straightforward softmax(QK^T)V form, any input
size, the deformable conv, parameter counts, and checkpoints in the authors' and timm's layouts."""
import json
import math
import os
import random

import pytest
import timm
import torch
import torch.nn.functional as F

import zoo
from conftest import SMALLEST, count_params, randomize_norms, shallow
from zoo.layers import DeformConv2dPack, naive_attention
from zoo.models.biformer import AttentionLePE, BiLevelRoutingAttention
from zoo.models.litv2 import HiLo
from zoo.models.shvit import SingleHeadAttention

FAMILIES = ('shvit', 'litv2', 'biformer')
MODELS = [m for m in zoo.list_models() if m.split('_')[0] in FAMILIES]
DATA = os.path.join(os.path.dirname(__file__), 'data')


def _randomize(module, seed=0):
    """Unit-scale random weights (std fan_in ** -0.5, biases std 0.1) and random norms, so that activations
    stay O(1) and an absolute tolerance means what it says."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            std = p[0].numel() ** -0.5 if p.ndim > 1 else 0.1
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return randomize_norms(module, seed)


# ---------------------------------------------------------------------------------------------------------
# each attention against the authors' formula written out with the attention matrix materialized


def _shsa_reference(m, x):
    B, _, H, W = x.shape
    x1, x2 = x.split([m.pdim, m.dim - m.pdim], dim=1)
    q, k, v = m.qkv(m.pre_norm(x1)).split([m.qk_dim, m.qk_dim, m.pdim], dim=1)
    q, k, v = q.flatten(2), k.flatten(2), v.flatten(2)
    attn = ((q.transpose(-2, -1) @ k) * m.qk_dim ** -0.5).softmax(dim=-1)
    x1 = (v @ attn.transpose(-2, -1)).reshape(B, m.pdim, H, W)
    return m.proj(torch.cat([x1, x2], dim=1))


def _hilo_reference(m, x):
    """The authors' detection-backbone HiLo: pad to the window, Hi-Fi in windows, Lo-Fi to pooled keys."""
    H0, W0 = x.shape[1:3]
    ws = m.ws
    x = F.pad(x, (0, 0, 0, -W0 % ws, 0, -H0 % ws))
    B, H, W, C = x.shape
    outs = []
    if m.h_heads:
        hg, wg = H // ws, W // ws
        t = x.reshape(B, hg, ws, wg, ws, C).transpose(2, 3)
        qkv = m.h_qkv(t).reshape(B, hg * wg, -1, 3, m.h_heads, m.head_dim).permute(3, 0, 1, 4, 2, 5)
        a = naive_attention(qkv[0], qkv[1], qkv[2], scale=m.head_dim ** -0.5)
        a = a.transpose(2, 3).reshape(B, hg, wg, ws, ws, m.h_dim).transpose(2, 3).reshape(B, H, W, m.h_dim)
        outs.append(m.h_proj(a))
    if m.l_heads:
        q = m.l_q(x).reshape(B, H * W, m.l_heads, m.head_dim).permute(0, 2, 1, 3)
        src = F.avg_pool2d(x.permute(0, 3, 1, 2), ws).reshape(B, C, -1).permute(0, 2, 1) if ws > 1 else x
        kv = m.l_kv(src).reshape(B, -1, 2, m.l_heads, m.head_dim).permute(2, 0, 3, 1, 4)
        a = naive_attention(q, kv[0], kv[1], scale=m.head_dim ** -0.5)
        outs.append(m.l_proj(a.transpose(1, 2).reshape(B, H, W, m.l_dim)))
    return torch.cat(outs, dim=-1)[:, :H0, :W0]


def _bra_reference(m, x):
    """The authors' BRA (auto_pad): regions, mean-pooled routing, gather with expand, attention, LCE."""
    H0, W0 = x.shape[1:3]
    p = m.n_win
    x = F.pad(x, (0, 0, 0, -W0 % p, 0, -H0 % p))
    n, H, W, C = x.shape
    h, w = H // p, W // p
    t = x.reshape(n, p, h, p, w, C).permute(0, 1, 3, 2, 4, 5).reshape(n, p * p, h, w, C)
    q, kv = m.qkv(t).split([m.qk_dim, m.qk_dim + m.dim], dim=-1)
    q_pix = q.reshape(n, p * p, h * w, m.qk_dim)
    kv_pix = kv.reshape(n, p * p, h * w, -1)
    q_win, k_win = q.mean([2, 3]), kv[..., :m.qk_dim].mean([2, 3])
    v_map = kv[..., m.qk_dim:].reshape(n, p, p, h, w, C).permute(0, 5, 1, 3, 2, 4).reshape(n, C, H, W)
    lepe = m.lepe(v_map).permute(0, 2, 3, 1)
    logits = (q_win * m.scale) @ k_win.transpose(-2, -1)
    r_idx = logits.topk(m.topk, dim=-1).indices
    k_sel = torch.gather(kv_pix.view(n, 1, p * p, h * w, -1).expand(-1, p * p, -1, -1, -1), 2,
                         r_idx.view(n, p * p, m.topk, 1, 1).expand(-1, -1, -1, h * w, kv_pix.shape[-1]))
    k_sel, v_sel = k_sel.split([m.qk_dim, m.dim], dim=-1)
    heads = m.num_heads
    k_sel = k_sel.reshape(n * p * p, m.topk * h * w, heads, -1).transpose(1, 2)
    v_sel = v_sel.reshape(n * p * p, m.topk * h * w, heads, -1).transpose(1, 2)
    q_pix = q_pix.reshape(n * p * p, h * w, heads, -1).transpose(1, 2)
    out = naive_attention(q_pix, k_sel, v_sel, scale=m.scale)
    out = out.transpose(1, 2).reshape(n, p, p, h, w, C).permute(0, 1, 3, 2, 4, 5).reshape(n, H, W, C)
    return m.wo(out + lepe)[:, :H0, :W0]


def _lepe_attention_reference(m, x):
    B, H, W, C = x.shape
    t = x.reshape(B, H * W, C)
    qkv = m.qkv(t).reshape(B, H * W, 3, m.num_heads, C // m.num_heads).permute(2, 0, 3, 1, 4)
    a = naive_attention(qkv[0], qkv[1], qkv[2]).transpose(1, 2).reshape(B, H * W, C)
    lepe = m.lepe(x.permute(0, 3, 1, 2)).flatten(2).transpose(1, 2)
    return m.proj(a + lepe).reshape(B, H, W, C)


# name: (module, reference, width, works on (B, H, W, C) tokens)
ATTENTIONS = {
    'shsa': (lambda: SingleHeadAttention(64, 16, 24), _shsa_reference, 64, False),
    'hilo_ws2': (lambda: HiLo(96, 12, window_size=2, alpha=0.9), _hilo_reference, 96, True),
    'hilo_ws3_half': (lambda: HiLo(64, 4, window_size=3, alpha=0.5), _hilo_reference, 64, True),
    'hilo_msa': (lambda: HiLo(96, 3, window_size=1, alpha=0.9), _hilo_reference, 96, True),
    'bra_topk4': (lambda: BiLevelRoutingAttention(64, 2, n_win=7, topk=4), _bra_reference, 64, True),
    'bra_topk1_nwin4': (lambda: BiLevelRoutingAttention(64, 2, n_win=4, topk=1), _bra_reference, 64, True),
    'bra_topk4_block_sparse': (lambda: BiLevelRoutingAttention(64, 2, n_win=7, topk=4, routing_impl='block-sparse'),
                               _bra_reference, 64, True),
    'bra_topk16_auto_masked': (lambda: BiLevelRoutingAttention(64, 2, n_win=7, topk=16), _bra_reference, 64, True),
    'bra_topk3_masked': (lambda: BiLevelRoutingAttention(64, 2, n_win=4, topk=3, routing_impl='masked'),
                         _bra_reference, 64, True),
    'lepe_attention': (lambda: AttentionLePE(64), _lepe_attention_reference, 64, True),
}


@pytest.mark.filterwarnings('ignore:flex_attention called without torch.compile')  # the eager reference
@pytest.mark.parametrize('size', [(14, 14), (13, 17), (5, 3)])
@pytest.mark.parametrize('name', sorted(ATTENTIONS))
def test_fused_attention_matches_softmax_form(name, size):
    build, reference, dim, channels_last = ATTENTIONS[name]
    torch.manual_seed(0)
    m = _randomize(build()).eval()
    x = torch.randn(2, *size, dim) if channels_last else torch.randn(2, dim, *size)
    with torch.no_grad():
        out, ref = m(x), reference(m, x)
    assert out.shape == x.shape
    assert ref.abs().max() > 0.5  # activations of unit scale
    assert (out - ref).abs().max() <= 1e-5


def test_every_attention_calls_sdpa_once(monkeypatch):
    """One fused call per attention (HiLo: one per Hi-Fi and one per Lo-Fi branch), no matrix built by hand;
    BRA's masked form passes its mask. BRA's gather in eager CPU runs writes its products out (SDPA's CPU kernel
    is the slower there, _written_out): no call; traced by torch.jit.trace, it keeps SDPA, with no mask."""
    calls = []
    sdpa = F.scaled_dot_product_attention

    def counting(*args, **kwargs):
        calls.append(kwargs.get('attn_mask') is not None)
        return sdpa(*args, **kwargs)

    monkeypatch.setattr(F, 'scaled_dot_product_attention', counting)
    expected = {'shsa': 1, 'hilo_ws2': 2, 'hilo_ws3_half': 2, 'hilo_msa': 1, 'bra_topk4': 0,
                'bra_topk1_nwin4': 0, 'bra_topk4_block_sparse': 0, 'bra_topk16_auto_masked': 1, 'bra_topk3_masked': 1,
                'lepe_attention': 1}  # FlexAttention, not SDPA
    for name, (build, _, dim, channels_last) in ATTENTIONS.items():
        calls.clear()
        m = build().eval()
        with torch.no_grad():
            m(torch.randn(1, 14, 14, dim) if channels_last else torch.randn(1, dim, 14, 14))
        assert len(calls) == expected[name], name
        assert any(calls) is name.endswith('masked'), name
    calls.clear()
    bra = ATTENTIONS['bra_topk4'][0]().eval()
    with torch.no_grad():
        torch.jit.trace(bra, torch.randn(1, 14, 14, 64), check_trace=False)
    assert calls == [False]


@pytest.mark.parametrize('name', ['lsnet_t', 'shvit_s1', 'litv2_s', 'biformer_t'])
def test_sdpa_calls_take_what_the_fused_gpu_kernels_take(name, monkeypatch):
    """What sends a call to SDPA's math fallback on a GPU, checked without one (tests/test_cuda.py runs the
    kernels): each token's features strided apart (LSNet's attention took views of its NCHW maps), a 3-D mask
    (LSNet's bias was (heads, N, N)). On the meta device, which takes the paths a GPU takes (LSNet's CPU path
    has no SDPA) and gives the strides they would have; BiFormer as a GPU runs it: the gather, no mask."""
    calls = []
    sdpa = F.scaled_dot_product_attention

    def recording(q, k, v, attn_mask=None, **kwargs):
        calls.append((q, k, v, attn_mask))
        return sdpa(q, k, v, attn_mask=attn_mask, **kwargs)

    monkeypatch.setattr(F, 'scaled_dot_product_attention', recording)
    model = zoo.reparameterize(shallow(name, **({'routing_impl': 'gather'} if name == 'biformer_t' else {})).eval())
    with torch.no_grad():
        model.to('meta')(torch.randn(2, 3, 112, 112, device='meta'))
    assert calls
    for q, k, v, mask in calls:
        assert [t.stride(-1) for t in (q, k, v)] == [1, 1, 1]
        assert q.shape[-1] == k.shape[-1]
        assert q.dtype == k.dtype == v.dtype
        if mask is not None:
            assert mask.dim() == 4 and mask.stride(-1) == 1 and mask.dtype in (q.dtype, torch.bool)


def test_block_sparse_gpu_tiles_divide_the_regions():
    """FlexAttention's compiled GPU kernel needs each region to be whole tiles of at least 16 rows: BiFormer-T's
    second stage (16 tokens a region) failed to compile with the default tiles on an H200."""
    from zoo.models.biformer import _gpu_tiles
    assert _gpu_tiles(64) is None and _gpu_tiles(128) is None  # the default tiles divide these
    assert _gpu_tiles(16) == {'BLOCK_M': 16, 'BLOCK_N': 16} == _gpu_tiles(48)
    with pytest.raises(ValueError, match="multiple of 16 tokens .*got 4 tokens a region; use routing_impl='gather'"):
        _gpu_tiles(4)


def test_bra_routes_each_region_to_its_topk():
    """The regions a query region attends to are the top-k of the region-level affinity: making one region's
    keys match every query makes it the first choice of every region."""
    torch.manual_seed(0)
    m = BiLevelRoutingAttention(32, 1, n_win=2, topk=1).eval()
    q_region = torch.randn(1, 4, 32)
    k_region = torch.zeros(1, 4, 32)
    k_region[0, 2] = q_region[0].sum(0) * 10
    assert m.route(q_region, k_region).flatten().tolist() == [2, 2, 2, 2]


def test_bra_block_sparse_compiled_skips_unrouted_blocks_and_matches():
    """Compiled, FlexAttention computes only the routed blocks the block mask lists (eager evaluates its mask
    everywhere): the compiled block-sparse BRA equals the authors' gather form, so the listed blocks are right."""
    torch.manual_seed(0)
    m = _randomize(BiLevelRoutingAttention(32, 2, n_win=4, topk=3, routing_impl='block-sparse')).eval()
    x = torch.randn(2, 16, 12, 32)  # regions of 4 x 3 tokens
    with torch.no_grad():
        ref = _bra_reference(m, x)
        out = torch.compile(m, fullgraph=True)(x)
    assert (out - ref).abs().max() <= 1e-5


@pytest.mark.parametrize('impl,topk,compiling,exporting,form', [
    ('auto', 4, False, False, 'gather'), ('auto', 16, False, False, 'masked'), ('auto', 13, False, False, 'masked'),
    ('auto', 12, False, False, 'gather'), ('auto', 12, True, False, 'gather'), ('auto', 16, True, False, 'masked'),
    ('auto', 16, True, True, 'gather'), ('auto', 16, False, True, 'gather'), ('gather', 16, True, False, 'gather'),
    ('masked', 1, True, True, 'masked'),
    ('block-sparse', 4, False, False, 'block-sparse')])
def test_bra_auto_chooses_the_routing_form(monkeypatch, impl, topk, compiling, exporting, form):
    """'auto' (the default) in CPU inference, compiled or not: the masked form where the routed regions are at
    least a quarter of all (n_win 7: topk >= 13), else the gather; torch.export (whose runtimes have no
    FlexAttention) keeps the gather. A named form is always taken."""
    assert BiLevelRoutingAttention(32, 1).routing_impl == 'auto'
    m = BiLevelRoutingAttention(32, 1, n_win=7, topk=topk, routing_impl=impl)
    monkeypatch.setattr(torch.compiler, 'is_compiling', lambda: compiling)
    monkeypatch.setattr(torch.compiler, 'is_exporting', lambda: exporting)
    with torch.no_grad():
        assert m.routing_form(torch.zeros(1)) == form


@pytest.mark.parametrize('topk,form', [(4, 'gather'), (16, 'masked')])
def test_bra_auto_under_torch_compile_and_torch_export(monkeypatch, topk, form):
    """The forms 'auto' takes where Dynamo traces for real. torch 2.9's Dynamo answers
    torch.compiler.is_exporting() with True under torch.compile too, which sent every compiled BRA to the gather
    (compiled BiFormer-T ran at half its eager speed at batch 16, its third stage's gather an indexed loop).
    Compiled: the eager form; exported, strict or not: the gather. Outputs equal the eager model's."""
    torch.manual_seed(0)
    m = _randomize(BiLevelRoutingAttention(32, 2, n_win=7, topk=topk)).eval()
    x = torch.randn(1, 14, 14, 32)
    forms = _record_routing_forms(monkeypatch)
    with torch.no_grad():
        ref = m(x)
        torch._dynamo.reset()
        out = torch.compile(m, backend='eager', fullgraph=True)(x)
        assert forms == [form, form]
        assert (out - ref).abs().max() <= 1e-5
        for strict in (True, False):
            exported = torch.export.export(m, (x,), strict=strict)
            assert forms[-1] == 'gather'
            assert (exported.module()(x) - ref).abs().max() <= 1e-5


def _record_routing_forms(monkeypatch):
    """The list of the forms BRA's routing_form() returns from now on, traced calls included."""
    forms, routing_form = [], BiLevelRoutingAttention.routing_form

    def recorded(self, q):
        forms.append(routing_form(self, q))
        return forms[-1]
    monkeypatch.setattr(BiLevelRoutingAttention, 'routing_form', recorded)
    return forms


def test_bra_auto_masks_only_in_cpu_inference():
    """The masked form was measured in CPU inference only: with gradients, or on another device, 'auto' gathers."""
    m = BiLevelRoutingAttention(32, 1, n_win=7, topk=16)
    q = torch.zeros(1, requires_grad=True)
    with torch.no_grad():
        assert m.routing_form(q) == 'masked'
        assert m.routing_form(torch.zeros(1, device='meta')) == 'gather'
    assert m.routing_form(q) == 'gather'
    assert m.routing_form(torch.zeros(1)) == 'masked'  # no tensor that needs a gradient


def test_bra_auto_gathers_where_the_masked_form_would_be_recorded_or_counted():
    """Traced by torch.jit.trace (as ONNX export does) and FLOP-counted, 'auto' takes the gather: the recorded
    graph runs anywhere, and the FLOP count is the routed products, not the masked form's R / topk times as many.
    An FX graph records the masked form, as eager runs it; the peak-memory count sees the form that is timed."""
    from zoo.measure import count_flops, peak_memory
    torch.manual_seed(0)
    m = _randomize(BiLevelRoutingAttention(32, 2, n_win=4, topk=4)).eval()  # 4 of 16 regions: masked in eager
    x = torch.randn(1, 8, 8, 32)
    forms = []
    m._gathered = lambda *a, f=m._gathered: forms.append('gather') or f(*a)
    m._masked = lambda *a, f=m._masked: forms.append('masked') or f(*a)
    with torch.no_grad():
        want = m(x)
        traced = torch.jit.trace(m, x, check_trace=False)
        flops = count_flops(m, x)
        fx_graph = torch.fx.symbolic_trace(m)
        peak_memory(m, x)
        assert forms == ['masked', 'gather', 'gather', 'masked', 'masked']
        assert torch.equal(fx_graph(x), want)
    assert (traced(x) - want).abs().max() <= 1e-5
    routed = 2 * 2 * 64 * 16 * 32  # 64 queries x 16 routed keys, QK and AV, 2 FLOPs a multiply-add
    projections = 2 * 64 * 32 * 96 + 2 * 64 * 32 * 32 + 2 * 16 * 16 * 32  # qkv, wo, region affinity
    lepe = 2 * 64 * 32 * 25
    assert flops == routed + projections + lepe


def test_routed_block_mask_lists_each_query_regions_routes():
    from zoo.models.biformer import routed_block_mask
    idx = torch.tensor([[[2, 0], [1, 3], [3, 2], [0, 1]]])  # 1 image, 4 regions, top-2
    mask = routed_block_mask(idx, tokens_per_region=3, num_heads=2)
    assert mask.shape == (1, 2, 12, 12)
    dense = mask.to_dense()[0, 0]  # which (query block, key block) pairs are computed
    assert dense.tolist() == [[1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 1], [1, 1, 0, 0]]
    with pytest.raises(ValueError, match="routing_impl must be one of .*got 'dense'"):
        BiLevelRoutingAttention(32, 1, routing_impl='dense')


def test_hilo_splits_heads_as_released():
    m = HiLo(384, 12, window_size=2, alpha=0.9)  # LITv2-S stage 3
    assert (m.l_heads, m.h_heads) == (10, 2)
    msa = HiLo(768, 24, window_size=1, alpha=0.9)  # stage 4: all heads Lo-Fi, no pooling
    assert (msa.l_heads, msa.h_heads) == (24, 0) and isinstance(msa.sr, torch.nn.Identity)


# ---------------------------------------------------------------------------------------------------------
# the deformable conv of LITv2's token merging


def _deform_reference(x, offset, weight, bias, stride):
    """DCNv1 with bilinear sampling (zero outside the image) written with grid_sample, kernel taps in
    row-major order, offsets as (dy, dx) pairs per tap."""
    B, C, H, W = x.shape
    O, _, kh, kw = weight.shape
    oh, ow = offset.shape[-2:]
    cols = []
    for t in range(kh * kw):
        ky, kx = divmod(t, kw)
        ys = torch.arange(oh).view(-1, 1) * stride + ky + offset[:, 2 * t]
        xs = torch.arange(ow).view(1, -1) * stride + kx + offset[:, 2 * t + 1]
        grid = torch.stack([2 * xs / (W - 1) - 1, 2 * ys / (H - 1) - 1], dim=-1)
        cols.append(F.grid_sample(x, grid, mode='bilinear', padding_mode='zeros', align_corners=True))
    cols = torch.stack(cols, dim=2)  # (B, C, taps, oh, ow)
    return torch.einsum('bctyx,oct->boyx', cols, weight.reshape(O, C, kh * kw)) + bias.view(1, -1, 1, 1)


def test_deform_conv_matches_bilinear_sampling_reference():
    torch.manual_seed(0)
    m = DeformConv2dPack(6, 10, 2, 2)
    torch.nn.init.normal_(m.conv_offset.weight, std=0.5)
    torch.nn.init.normal_(m.conv_offset.bias, std=1.0)
    x = torch.randn(2, 6, 12, 10)
    with torch.no_grad():
        out = m(x)
        ref = _deform_reference(x, m.conv_offset(x), m.weight, m.bias, 2)
    assert out.shape == (2, 10, 6, 5)
    assert (out - ref).abs().max() <= 1e-4


@pytest.mark.parametrize('k,stride,padding,dilation', [(2, 2, 0, 1), (3, 1, 1, 1), (3, 2, 2, 2), (1, 1, 0, 1)])
def test_deform_conv_inference_samples_as_torchvision_does(monkeypatch, k, stride, padding, dilation):
    """In CPU inference the deformable conv is grid_sample at the displaced taps and one product: equal to
    torchvision's kernel, offsets reaching far outside the map included; with gradients, and traced, the
    layer calls torchvision's op."""
    import zoo.layers.deform as deform
    from torchvision.ops import deform_conv2d
    torch.manual_seed(0)
    x, w, b = torch.randn(2, 5, 9, 7), torch.randn(6, 5, k, k), torch.randn(6)
    ho = (9 + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    wo = (7 + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    offset = torch.randn(2, 2 * k * k, ho, wo) * 3
    offset[0, 0, 0, 0], offset[1, 1, -1, -1], offset[1, -1, 0, -1] = 3e38, -3e38, 1e30  # finite, far outside
    args = ((stride, stride), (padding, padding), (dilation, dilation))
    want = deform_conv2d(x, offset, w, b, *args)
    calls = []
    monkeypatch.setattr(deform, 'deform_conv2d', lambda *a: calls.append(1) or deform_conv2d(*a))
    with torch.no_grad():
        got = deform.deform_conv(x, offset, w, b, *args)
        assert not calls
        torch.jit.trace(lambda x: deform.deform_conv(x, offset, w, b, *args), x, check_trace=False)
        assert calls == [1]
    torch.testing.assert_close(got, want, atol=1e-5 * want.abs().max().item(), rtol=0)
    with torch.no_grad(), pytest.raises(RuntimeError):  # an offset map of another size: torchvision's refusal
        deform.deform_conv(x, offset[..., :-1], w, b, *args)
    assert calls == [1, 1]
    w.requires_grad_(True)
    deform.deform_conv(x, offset, w, b, *args).sum().backward()
    assert calls == [1, 1, 1] and w.grad is not None


def test_deform_conv_compiled_samples_and_exported_keeps_torchvisions_op():
    """Under torch.compile, CPU inference takes the sampled form too (plain ops the compiler fuses; LITv2-S
    compiled ran torchvision's CPU kernel before); under torch.export, strict or not, the graph holds
    torchvision's op, which the exporters map (ONNX DeformConv). Both equal eager."""
    torch.manual_seed(0)
    m = DeformConv2dPack(4, 6, 3, 1, 1).eval()
    with torch.no_grad():
        m.conv_offset.weight.normal_(0, 0.5)
    x = torch.randn(1, 4, 8, 8)
    with torch.no_grad():
        want = m(x)
        torch._dynamo.reset()
        graphs = []

        def backend(gm, inputs):
            graphs.append(gm)
            return gm.forward
        got = torch.compile(m, backend=backend, fullgraph=True)(x)
        ops = [str(n.target) for g in graphs for n in g.graph.nodes if n.op == 'call_function']
        assert not any('deform_conv2d' in op for op in ops) and any('grid_sample' in op for op in ops)
        torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
        for strict in (True, False):
            exported = torch.export.export(m, (x,), strict=strict)
            ops = [str(n.target) for n in exported.graph.nodes if n.op == 'call_function']
            assert any('deform_conv2d' in op for op in ops) and not any('grid_sampler' in op for op in ops)
            torch.testing.assert_close(exported.module()(x), want, atol=1e-5, rtol=0)


def test_deform_conv_with_zero_offsets_is_a_conv_and_pads_odd_maps():
    m = DeformConv2dPack(4, 8, 2, 2, pad_to_stride=True)
    x = torch.randn(1, 4, 7, 9)
    with torch.no_grad():
        ref = F.conv2d(F.pad(x, (0, 1, 0, 1)), m.weight, m.bias, stride=2)
        torch.testing.assert_close(m(x), ref)
    assert m(x).shape[-2:] == (4, 5)


# ---------------------------------------------------------------------------------------------------------
# any input size


def _random_sizes(name, n=2):
    rng = random.Random(name)
    return [(rng.randrange(64, 513), rng.randrange(64, 513)) for _ in range(n)]


@pytest.mark.parametrize('model_name', [m for m in SMALLEST if m in MODELS])
def test_features_only_at_random_sizes(model_name):
    """Sizes from 64 to 512, most not multiples of 32: every feature map is ceil(size / reduction). The padding
    is family code, run alike by every variant (each of which is checked at 64x128 in its one-build contract)."""
    model = timm.create_model('zoo/' + model_name, features_only=True).eval()
    sizes = _random_sizes(model_name) + [(64, 64), (97, 131)]
    for size in sizes:
        with torch.no_grad():
            feats = model(torch.randn(1, 3, *size))
        for f, info in zip(feats, model.feature_info):
            expected = tuple(math.ceil(s / info['reduction']) for s in size)
            assert f.shape == (1, info['num_chs'], *expected), (size, info)
            assert torch.isfinite(f).all()


@pytest.mark.parametrize('model_name', ['shvit_s1', 'litv2_s', 'biformer_t'])
def test_detection_sized_input(model_name):
    model = timm.create_model('zoo/' + model_name, features_only=True).eval()
    with torch.no_grad():
        feats = model(torch.randn(1, 3, 800, 1333))
    assert [f.shape[-2:] for f in feats] == [
        (math.ceil(800 / r), math.ceil(1333 / r)) for r in model.feature_info.reduction()]


# ---------------------------------------------------------------------------------------------------------
# parameter counts and checkpoints

with open(os.path.join(DATA, 'official_layouts.json')) as f:
    OFFICIAL = json.load(f)


def test_param_counts_equal_official():
    """Counted by instantiating the authors' classes (tests/data/official_layouts.json)."""
    assert sorted(OFFICIAL['params']) == sorted(MODELS)
    for name, count in OFFICIAL['params'].items():
        assert count_params(name) == count, name


def _official_file(tmp_path, name):
    """A checkpoint in the authors' layout, as released (``{'model': state_dict}``), every tensor distinct."""
    g = torch.Generator().manual_seed(0)
    sd = {}
    for key, shape in OFFICIAL['keys'][name].items():
        if key.endswith('num_batches_tracked'):
            sd[key] = torch.tensor(7)
        elif key.endswith('running_var'):
            sd[key] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[key] = torch.randn(shape, generator=g) * 0.02
    path = tmp_path / f'{name}.pth'
    torch.save({'model': sd, 'epoch': 300}, path)
    return path, sd


@pytest.mark.parametrize('name', sorted(OFFICIAL['keys']))
def test_official_layout_loads_every_tensor(tmp_path, name):
    path, sd = _official_file(tmp_path, name)
    model = zoo.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    loaded = model.state_dict()
    # zero missing / unexpected (the loader is strict) and every released tensor lands in exactly one place
    values = {round(v.double().sum().item(), 6): k for k, v in sd.items() if v.numel() > 1}
    placed = {round(v.double().sum().item(), 6) for v in loaded.values() if v.numel() > 1}
    assert len(values) == len([v for v in sd.values() if v.numel() > 1])  # the sums tell tensors apart
    assert placed == set(values)
    assert len(loaded) == len(sd)
    with torch.no_grad():
        assert torch.isfinite(model(torch.randn(1, 3, 96, 96))).all()


def test_official_shvit_file_with_2d_pointwise_kernels_loads(tmp_path):
    """The authors' SHViT loader unsqueezes 1x1 kernels their files hold as (out, in) matrices; so does ours."""
    path, sd = _official_file(tmp_path, 'shvit_s1')
    flat = {k: v.flatten(1) if v.ndim == 4 and v.shape[2:] == (1, 1) else v for k, v in sd.items()}
    assert sum(v.ndim == 2 for v in flat.values()) > 50
    torch.save({'model': flat}, path)
    model = zoo.create_model('shvit_s1', pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))
    torch.testing.assert_close(model.state_dict()['stages.1.blocks.0.mixer.qkv.conv.weight'],
                               sd['blocks2.3.mixer.m.qkv.c.weight'])


def test_official_layout_with_a_missing_tensor_is_refused(tmp_path):
    path, sd = _official_file(tmp_path, 'litv2_s')
    del sd['layers.2.blocks.1.attn.h_qkv.weight']
    torch.save({'model': sd}, path)
    with pytest.raises(Exception, match='stages.2.blocks.1.attn.h_qkv.weight'):
        zoo.create_model('litv2_s', pretrained=True, pretrained_cfg_overlay=dict(file=str(path)))


@pytest.mark.parametrize('name', ['shvit_s1', 'shvit_s3'])
def test_timm_shvit_weights_give_timm_outputs(tmp_path, name):
    """timm's ``shvit_*`` (same architecture, timm's layout): its weights load and give its outputs."""
    ref = randomize_norms(timm.create_model(name)).eval()
    path = tmp_path / 'timm.pth'
    torch.save(ref.state_dict(), path)
    model = zoo.create_model(name, pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    x = torch.randn(2, 3, 160, 192)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=0, atol=1e-5)
        torch.testing.assert_close(zoo.reparameterize(model)(x), ref(x), rtol=0, atol=1e-4)


def test_official_shvit_file_gives_timm_outputs(tmp_path):
    """The authors' layout and timm's are the same weights: the released file, loaded into the zoo, gives the
    outputs of timm's model loaded through timm's own mapping of that layout."""
    path, sd = _official_file(tmp_path, 'shvit_s1')
    model = zoo.create_model('shvit_s1', pretrained=True, pretrained_cfg_overlay=dict(file=str(path))).eval()
    ref = timm.create_model('shvit_s1').eval()
    mapped = {}
    for k, v in sd.items():  # the stage re-indexing timm's shvit.py describes for the authors' files
        m = __import__('re').match(r'^blocks(\d)\.(\d+)\.(.*)$', k)
        if m:
            s, j, rest = int(m[1]) - 1, int(m[2]), m[3]
            if s == 0:
                k = f'stages.0.blocks.{j}.{rest}'
            elif j in (0, 2):
                unit, _, rest = rest.partition('.')
                k = f'stages.{s}.downsample.{int(unit) + (0 if j == 0 else 3)}.{rest}'
            elif j == 1:
                k = f'stages.{s}.downsample.2.{rest}'
            else:
                k = f'stages.{s}.blocks.{j - 3}.{rest}'
        mapped[k] = v
    ref.load_state_dict(mapped)
    x = torch.randn(1, 3, 128, 128)
    with torch.no_grad():
        torch.testing.assert_close(model(x), ref(x), rtol=0, atol=1e-5)


def test_share_link_weights_are_cached_under_their_own_name(tmp_path, monkeypatch):
    """BiFormer's OneDrive links all end in 'content': the zoo caches each under the manifest's file name."""
    path, _ = _official_file(tmp_path, 'biformer_t')
    fetched = []

    def fake_download(url, dst, progress=True):
        fetched.append((url, os.path.basename(dst)))
        __import__('shutil').copy(path, dst)

    monkeypatch.setattr(torch.hub, 'download_url_to_file', fake_download)
    monkeypatch.setattr('timm.models._hub.get_cache_dir', lambda *a: str(tmp_path))
    model = zoo.create_model('biformer_t', pretrained=True)
    assert fetched == [(model.pretrained_cfg['url'], 'biformer_tiny_in1k.pth')]
    zoo.create_model('biformer_t', pretrained=True)  # cached now
    assert len(fetched) == 1


def test_shvit_deploy_form_runs_pointwise_convs_as_linears_on_channels_last_maps():
    """Deploy form: no 1x1 conv is left (each is a Linear on the channels), the stage outputs are channels-last
    maps, also behind timm's features_only wrapper; the train form keeps the NCHW layout."""
    model = randomize_norms(zoo.create_model('shvit_s1', features_only=True)).eval()
    deploy = zoo.reparameterize(model)
    convs = [m for m in deploy.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(m.kernel_size != (1, 1) for m in convs)
    assert all(m.weight.is_contiguous(memory_format=torch.channels_last) for m in convs)
    x = torch.randn(2, 3, 160, 96)
    with torch.no_grad():
        for a, b in zip(model(x), deploy(x)):
            assert a.is_contiguous() and b.is_contiguous(memory_format=torch.channels_last)
            assert (a - b).abs().max() <= 1e-5 * a.abs().max()


@pytest.mark.parametrize('name', ['litv2_s', 'biformer_t'])
def test_token_stages_give_their_blocks_dense_tokens(name):
    """Every stage's blocks get (B, H, W, C) tokens laid out densely, whatever the layout of the map before
    them (LITv2's deformable downsampling writes NCHW; the exporters' ``plain_layout`` copy runs NCHW): a
    transposed token view reached each residual add as its operand, where oneDNN's int8 Linear with the add
    fused in took a generic path (LITv2-S through ``int8-inductor``: seconds a forward). Outputs unchanged."""
    from zoo.deploy.runtimes import plain_layout
    model = zoo.reparameterize(shallow(name).eval())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = model(x)
    for form in (model, plain_layout(model)):
        seen = []
        hooks = [stage.blocks[0].register_forward_pre_hook(lambda m, a: seen.append(a[0].is_contiguous()))
                 for stage in form.stages]
        with torch.no_grad():
            out = form(x)
        for h in hooks:
            h.remove()
        assert seen == [True] * len(form.stages)
        assert (out - want).abs().max() <= 1e-5 * want.abs().max()


def test_deform_conv_survives_non_finite_offsets_and_runs_bf16():
    """torchvision's kernel segfaults on a NaN offset (the process dies) and samples 0 at an infinite one; the
    zoo's op gives NaN at those output positions and the plain result elsewhere. bf16 (LiTv2 under --amp on
    CPU, where torchvision has no bf16 kernel) is computed in float32."""
    from torchvision.ops import deform_conv2d
    from zoo.layers.deform import deform_conv
    x, w = torch.randn(1, 8, 16, 16), torch.randn(16, 8, 2, 2)
    offset = torch.randn(1, 8, 8, 8)
    want = deform_conv2d(x, offset, w, stride=2)
    for value in (float('nan'), float('inf'), -float('inf')):
        bad = offset.clone()
        bad[0, 3, 2, 5] = value
        got = deform_conv(x, bad, w, None, (2, 2), (0, 0), (1, 1))
        assert got[0, :, 2, 5].isnan().all()
        keep = torch.ones(8, 8, dtype=torch.bool)
        keep[2, 5] = False
        torch.testing.assert_close(got[0][:, keep], want[0][:, keep])
    model = zoo.create_model('litv2_s', num_classes=10)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = model(torch.randn(2, 3, 64, 64))
    out.float().sum().backward()
    offsets = [m.conv_offset for m in model.modules() if hasattr(m, 'conv_offset')]
    assert torch.isfinite(out).all() and offsets and all(c.weight.grad is not None for c in offsets)
