"""BiFormer: Vision Transformer with Bi-Level Routing Attention (Zhu et al., CVPR 2023), official code:
rayleizhu/BiFormer.

Stem: two 3x3 stride-2 Conv–BNs with a GELU between; each later stage opens with a 3x3 stride-2 Conv–BN.
Every block adds a 3x3 depthwise conv position embedding, then pre-norm attention and a 3x MLP on
(B, H, W, C) tokens (LayerNorm eps 1e-6). Stages 1-3 use Bi-Level Routing Attention (BRA): the map is cut
into an ``n_win x n_win`` grid of regions; region-level queries and keys (the mean over each region) give a
region affinity, and each region keeps its ``topk`` most related regions; every token of a region then
attends to all tokens of those regions (token-to-token attention on the gathered keys/values). A 5x5
depthwise conv over the values (local context enhancement, LCE) is added to the attention output before
the output projection. The last stage uses plain 8-head attention plus the same LCE over its input. The
head: BatchNorm, global average pool, Linear.

Released: n_win 7 (the authors use 16 for COCO and 8 for ADE20K through the ``n_win`` argument), topk
1, 4, 16 in stages 1-3, head width 32, no key/value downsampling, and the BRA scale ``qk_dim ** -0.5``
(the full key width, not the head width, as released; the routing uses the same scale).

As in the authors' dense-prediction backbones (``auto_pad``), BRA zero-pads its input (after the norm) to a
multiple of ``n_win`` and crops back, so any input size runs; at sizes with no padding (224) this is the
classification model. Attention runs through ``scaled_dot_product_attention``: BRA as one call over
(batch x regions, heads) with the gathered keys/values (in eager CPU runs and FX graphs, two batched products
written out instead: ``_written_out``), or over the whole map with the unrouted regions masked out, or
FlexAttention over the whole map with a block mask of the routed regions (``ROUTING_IMPLS`` below). The last
stage is one call over the whole map.

Deploy form: the stem and downsampling Conv–BNs fold into convs, the position embedding's shortcut into its
kernel's centre tap. Every Linear runs oneDNN's kernel on a weight packed once (``FusedLinear``; the MLP's GELU
in its first layer's pass, ``FusedMlp``), every conv too (``FusedConv2d``, ``deploy_fused_convs``), and the
attention's and the MLP's shortcuts are added in their last Linear's pass.
"""
import re
from typing import Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import DropPath, Mlp, calculate_drop_path_rates, trunc_normal_
from timm.models import generate_default_cfgs

from ..layers import (ConvBN, FoldedCopy, FusedLinear, FusedMlp, NormLinear, counting_model_products, on_tokens,
                      pad_to_multiple)
from ..layers._fx import is_exporting, is_fx_tracing, is_onnx_exporting, is_plain_eager
from ..weights import check_pretrained
from ._base import StagedBackbone, TokenStage
from .registry import Family, register_family

__all__ = ['BiFormer', 'BiLevelRoutingAttention', 'AttentionLePE', 'ROUTING_IMPLS', 'routed_block_mask']

# how BRA computes token attention over the routed regions: 'gather' copies the routed regions' keys and
# values into dense tensors, then one SDPA call; 'masked' is one SDPA call over the whole map with a boolean mask
# that keeps, for each query region, the tokens of its routed regions: nothing gathered, but every score
# computed (R / topk times the routed products); 'block-sparse' is FlexAttention over the whole map with a
# block mask listing, for each query region, its routed key regions: nothing gathered, the blocks not routed
# skipped. It is taken only when asked for, and compiled only by inductor: its compiled block mask carries no
# per-token mask (routed_block_mask), which another backend, ignoring the block list, would need; in eager it
# builds the full score matrix (a reference). 'auto' (the default), in CPU inference, compiled or not: the
# masked form where the routed regions are at least 1 / _MASKED_SHARE of all (BiFormer's third stage: copying the
# keys and values cost more than the extra products; compiled, the copies became slow indexed loops), else the
# gather; the gather everywhere else: on a GPU and with gradients (not measured), under torch.export (whose
# runtimes have no FlexAttention), torch.jit.trace and ONNX export, TorchScript, and inside
# zoo.layers.model_products() (count_flops: the routed products). An FX graph records the form its tracing chose
# by the same share rule.
ROUTING_IMPLS = ('auto', 'gather', 'masked', 'block-sparse')
_MASKED_SHARE = 4


def _routed_table(idx: torch.Tensor, B: int, R: int) -> torch.Tensor:
    """The routing as a (B, R, R) bool table: [b, r, s] is True where query region r attends to key region s
    (``idx``, (B, R, topk), lists the s of each r). Built by tensor methods, which a traced graph (FX) records."""
    return idx.new_zeros((B, R, R), dtype=torch.bool).scatter_(2, idx, True)


def routed_block_mask(idx: torch.Tensor, tokens_per_region: int, num_heads: int):
    """FlexAttention's block mask for region-major tokens (region r holds tokens r*T .. r*T+T-1, T =
    ``tokens_per_region``): query region r attends to every token of the regions ``idx[b, r]`` (B, R, topk),
    and to nothing else.

    Compiled by inductor, FlexAttention computes only the listed blocks, and that is the whole mask (its
    per-token mask is left true: a mask reading a tensor made inside the compiled graph gave wrong results with
    torch 2.9 on the CPU, and so did a score mask; listing the blocks as full ones failed to compile). Eager
    FlexAttention evaluates the per-token mask over every pair and ignores the block list, so there the mask
    looks the routing up; a backend that runs that eager form on the compiled graph ('eager', 'aot_eager')
    would attend to every token."""
    from torch.nn.attention.flex_attention import BlockMask
    B, R, topk = idx.shape
    T = tokens_per_region
    listed = torch.zeros(B, num_heads, R, R, dtype=torch.int32, device=idx.device)
    listed[..., :topk] = idx[:, None].to(torch.int32)
    counts = torch.full((B, num_heads, R), topk, dtype=torch.int32, device=idx.device)
    mask_mod = None
    if not torch.compiler.is_compiling():
        routed = _routed_table(idx, B, R)

        def mask_mod(b, h, q_idx, kv_idx):
            return routed[b, q_idx // T, kv_idx // T]
    return BlockMask.from_kv_blocks(counts, listed, BLOCK_SIZE=T, mask_mod=mask_mod, seq_lengths=(R * T, R * T))


def _gpu_tiles(tokens_per_region: int):
    """FlexAttention's tile sizes on a GPU for regions of ``tokens_per_region`` tokens: a region (a block of the
    mask) must be a whole number of tiles, and Triton's tiles are at least 16 rows; its default tiles (64 or 128
    rows) are kept where a region holds a multiple of 64 tokens."""
    T = tokens_per_region
    if T % 16:
        raise ValueError(f"routing_impl='block-sparse' on a GPU needs regions of a multiple of 16 tokens "
                         f"(FlexAttention's smallest tile), got {T} tokens a region; use routing_impl='gather' there")
    return None if T % 64 == 0 else {'BLOCK_M': 16, 'BLOCK_N': 16}


def _region_major(grid: torch.Tensor) -> torch.Tensor:
    """A (B, p, h, p, w, C) view of a map cut into p x p regions of h x w tokens, copied to region-major tokens:
    (B, p*p, h*w, C), region (j, i) at j*p + i."""
    B, p, h, _, w, C = grid.shape
    return grid.permute(0, 1, 3, 2, 4, 5).reshape(B, p * p, h * w, C)


def _flat_regions(idx: torch.Tensor, regions: int) -> torch.Tensor:
    """The routed regions ``idx`` (B, R, topk) as rows of a (B*R, ...) flattening of every image's regions, in
    order: (B*R*topk,)."""
    B = idx.shape[0]
    return (idx + torch.arange(B, device=idx.device).view(B, 1, 1) * regions).view(-1)


def _regions_to_map(out: torch.Tensor, B: int, p: int, h: int, w: int) -> torch.Tensor:
    """Attention outputs of region-major tokens, (B*p*p, heads, h*w, head width), as the (B, p*h, p*w, C) map."""
    C = out.shape[1] * out.shape[3]
    return out.transpose(1, 2).reshape(B, p, p, h, w, C).permute(0, 1, 3, 2, 4, 5).reshape(B, p * h, p * w, C)


# padding depends on the map size: a traced graph (torch.fx) calls the function
torch.fx.wrap('pad_to_multiple')


class BiLevelRoutingAttention(nn.Module):
    """BRA on (B, H, W, C) tokens: region routing, then token attention over the ``topk`` routed regions."""

    def __init__(self, dim: int, num_heads: int, n_win: int = 7, topk: int = 4, qk_dim: int = None,
                 side_dwconv: int = 5, routing_impl: str = 'auto'):
        super().__init__()
        if routing_impl not in ROUTING_IMPLS:
            raise ValueError(f'routing_impl must be one of {ROUTING_IMPLS}, got {routing_impl!r}')
        self.routing_impl = routing_impl
        self.dim = dim
        self.qk_dim = qk_dim or dim
        if self.qk_dim % num_heads or dim % num_heads:
            raise ValueError(f'BRA needs qk_dim and dim divisible by num_heads, got {self.qk_dim}, {dim}, {num_heads}')
        self.num_heads = num_heads
        self.n_win = n_win
        self.topk = topk
        self.scale = self.qk_dim ** -0.5
        self.qkv = nn.Linear(dim, 2 * self.qk_dim + dim)
        self.wo = nn.Linear(dim, dim)
        self.lepe = nn.Conv2d(dim, dim, side_dwconv, 1, side_dwconv // 2, groups=dim)

    def route(self, q_region: torch.Tensor, k_region: torch.Tensor) -> torch.Tensor:
        """Indices (B, p^2, topk) of the regions each region attends to: the top-k of the region-level
        affinity ``q_region @ k_region^T`` (no gradient flows through the choice)."""
        with torch.no_grad():
            affinity = (q_region * self.scale) @ k_region.transpose(-2, -1)
            # affinity is (B, p^2, p^2): a number of regions known before the input
            return affinity.topk(min(self.topk, self.n_win * self.n_win), dim=-1).indices

    def forward(self, x):
        out, H0, W0 = self._mixed(x)
        return self.wo(out)[:, :H0, :W0]

    def forward_add(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """``self(x) + other`` (the block's shortcut), the add in the output projection's pass where no padding
        is cropped (deploy form: ``wo`` a FusedLinear)."""
        out, H0, W0 = self._mixed(x)
        if not is_fx_tracing() and out.shape[1] == H0 and out.shape[2] == W0:  # a traced graph: the plain ops
            return self.wo.forward_add(out, other)
        return self.wo(out)[:, :H0, :W0] + other

    def _mixed(self, x: torch.Tensor) -> Tuple[torch.Tensor, int, int]:
        """The attention output plus LCE on the padded map, before the output projection, and the size to crop to."""
        x, H0, W0 = pad_to_multiple(x, self.n_win)
        B, H, W, _ = x.shape
        p, h, w = self.n_win, H // self.n_win, W // self.n_win
        qkv = self.qkv(x)
        lepe = self.lepe(qkv[..., 2 * self.qk_dim:].permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # conv on NCHW view
        # the map seen as regions: (B, p, h, p, w, C), region (j, i) holding rows j*h.. and columns i*w..
        grid = qkv.view(B, p, h, p, w, qkv.shape[-1])
        # region-level queries and keys: the means over each region, (B, p*p, qk_dim) each; one strided dim at a
        # time (both at once took 4 ms a block at BiFormer-T's third stage, batch 16), on a rank-5 view (Core ML's
        # largest)
        means = qkv.view(B * p, h, p, w, qkv.shape[-1])[..., :2 * self.qk_dim].mean(3).mean(1)
        means = means.view(B, p * p, 2 * self.qk_dim)
        idx = self.route(means[..., :self.qk_dim], means[..., self.qk_dim:])
        if torch.jit.is_scripting():
            out = _regions_to_map(self._gathered(grid, idx), B, p, h, w)
        else:
            out = self._routed(grid, idx)
        return out + lepe, H0, W0

    @torch.jit.unused
    def routing_form(self, x: torch.Tensor) -> str:
        """The form the token attention over ``x`` (its queries, keys and values) takes in this call: 'auto'
        resolved as ROUTING_IMPLS says."""
        if self.routing_impl != 'auto':
            return self.routing_impl
        if is_exporting():  # strict or not
            return 'gather'
        dense = 'masked' if self.topk * _MASKED_SHARE >= self.n_win * self.n_win else 'gather'
        if is_fx_tracing():  # the graph holds the form chosen when traced, wherever it runs
            return dense
        recorded = not torch.compiler.is_compiling() and (  # Dynamo cannot trace the ONNX flags (nor need them)
            torch.jit.is_tracing() or is_onnx_exporting() or counting_model_products())
        if recorded or x.device.type != 'cpu' or (torch.is_grad_enabled() and x.requires_grad):
            return 'gather'
        return dense

    @torch.jit.unused
    def _routed(self, grid: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """The token attention over the routed regions, as a (B, H, W, dim) map."""
        form = self.routing_form(grid)
        if form == 'masked':
            return self._masked(grid, idx)
        B, p, h, _, w, _ = grid.shape
        if form == 'gather':
            return _regions_to_map(self._gathered(grid, idx), B, p, h, w)
        q, kv = _region_major(grid).split([self.qk_dim, self.qk_dim + self.dim], dim=-1)
        return _regions_to_map(self._block_sparse(q, kv, idx), B, p, h, w)

    def _gathered(self, grid: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """Token attention on the routed regions' keys/values gathered into dense tensors, (B*R, m, T, dv) for
        R regions of T tokens."""
        B, p, h, _, w, C = grid.shape
        R, T = p * p, h * w
        topk, m = idx.shape[-1], self.num_heads
        if not torch.jit.is_scripting() and self._writes_out(grid):
            return self._written_out(grid, idx)
        read = None if torch.jit.is_scripting() else self._read_routed(grid, idx)
        if read is None:  # a graph: the routed regions indexed in a region-major copy of the map
            regions = _region_major(grid).flatten(0, 1)
            q = regions[..., :self.qk_dim]
            kv = regions[..., self.qk_dim:][_flat_regions(idx, R)]
        else:
            q, kv = read
        k, v = kv.reshape(B * R, topk * T, C - self.qk_dim).split([self.qk_dim, self.dim], dim=-1)
        q = q.reshape(B * R, T, m, self.qk_dim // m).transpose(1, 2)
        k = k.view(B * R, topk * T, m, self.qk_dim // m).transpose(1, 2)
        v = v.view(B * R, topk * T, m, self.dim // m).transpose(1, 2)
        return F.scaled_dot_product_attention(q, k, v, scale=self.scale)

    @torch.jit.unused
    def _writes_out(self, grid: torch.Tensor) -> bool:
        """Whether the gather writes its products out (:meth:`_written_out`): in eager CPU runs, and in FX graphs,
        which record what eager CPU inference computes (the same ops there, bit for bit). Other graphs and GPUs
        keep SDPA."""
        if self.qk_dim != self.dim:  # one width for the heads of q, k and v
            return False
        if is_fx_tracing():  # before the device test: grid is a Proxy
            return True
        return is_plain_eager() and grid.is_cpu

    @torch.jit.unused
    def _written_out(self, grid: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """The gathered attention in :meth:`_gathered`'s layout, for the CPU: every head's queries, keys and values
        copied once to region-major rows, (3 x heads, B*R, T*d); the routed regions' keys and values gathered as
        whole rows of that copy; softmax(q k^T) v written out as two batched products. SDPA's CPU kernel took up
        to twice as long on these many small problems (BiFormer-T's first stage: 98 of 64 x 64 scores an image),
        and gathering by token from the map (rows of 2 x dim, strided) cost as much as the products at its
        second stage."""
        B, p, h, _, w, C = grid.shape
        R, T, m, topk = p * p, h * w, self.num_heads, idx.shape[-1]
        d = self.dim // m
        heads = grid.reshape(B, p, h, p, w, C // d, d).permute(5, 0, 1, 3, 2, 4, 6).reshape(C // d, B * R, T * d)
        kv = heads[m:].index_select(1, _flat_regions(idx, R))  # (2m, B*R*topk, T*d): keys' heads, then values'
        q = heads[:m].reshape(m * B * R, T, d)
        k = kv[:m].reshape(m * B * R, topk * T, d)
        v = kv[m:].reshape(m * B * R, topk * T, d)
        attn = torch.bmm(q, k.transpose(1, 2)).mul_(self.scale).softmax(-1)
        return torch.bmm(attn, v).view(m, B * R, T, d).transpose(0, 1)

    @torch.jit.unused
    def _read_routed(self, grid: torch.Tensor, idx: torch.Tensor) -> Optional[Tuple[torch.Tensor, torch.Tensor]]:
        """The queries in region-major order, (B*R, T, qk_dim), and the routed tokens' keys and values,
        (B*R*topk*T, qk_dim + dim), each read once from the map by its place in it, with no region-major copy of
        the keys and values first; None but in eager runs. Graphs index a region-major copy instead: converters
        carry these places' aranges and divisions as floats (coremltools 9, ExecuTorch's quantizer), and Core ML
        takes no slice of a rank-6 tensor."""
        if not is_plain_eager():
            return None
        B, p, h, _, w, C = grid.shape
        H, W = p * h, p * w
        # the routed regions' first tokens, then every token of each, as places in the flattened (B*H*W) map
        first = (idx // p) * (h * W) + (idx % p) * w + torch.arange(B, device=idx.device).view(B, 1, 1) * (H * W)
        within = (torch.arange(h, device=idx.device).view(h, 1) * W + torch.arange(w, device=idx.device)).view(-1)
        kv = grid.reshape(B * H * W, C)[:, self.qk_dim:].index_select(0, (first.unsqueeze(-1) + within).view(-1))
        return _region_major(grid[..., :self.qk_dim]).flatten(0, 1), kv

    @torch.jit.unused
    def _masked(self, grid: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """The same attention as one SDPA call over all tokens in the map's own order, the scores of regions
        not routed masked out, as a (B, H, W, dim) map: the queries, keys and values are views of the map and
        the output is one, where region-major tokens cost a copy of each (1.1 ms of 7.8 a block in BiFormer-T's
        third stage at batch 16)."""
        B, p, h, _, w, C = grid.shape
        H, W, R, m = p * h, p * w, p * p, self.num_heads
        routed = _routed_table(idx, B, R)
        # query region r, key token (row, column): the key's region spread over its tokens, then the queries'
        keys = routed.view(B, R, p, 1, p, 1).expand(B, R, p, h, p, w).reshape(B, p, 1, p, 1, H * W)
        mask = keys.expand(B, p, h, p, w, H * W).reshape(B, 1, H * W, H * W)
        tokens = grid.reshape(B, H * W, C)
        q, k, v = tokens.split([self.qk_dim, self.qk_dim, self.dim], dim=-1)
        heads = lambda t, c: t.reshape(B, H * W, m, c // m).transpose(1, 2)
        out = F.scaled_dot_product_attention(heads(q, self.qk_dim), heads(k, self.qk_dim), heads(v, self.dim),
                                             attn_mask=mask, scale=self.scale)
        return out.transpose(1, 2).reshape(B, H, W, self.dim)

    @torch.jit.unused  # FlexAttention is not scriptable: a scripted model runs the gather path
    def _block_sparse(self, q: torch.Tensor, kv: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """The same attention as FlexAttention over all region-major tokens with :func:`routed_block_mask`,
        returned in :meth:`_gathered`'s layout."""
        from torch.nn.attention.flex_attention import flex_attention
        B, R, T, _ = q.shape
        m = self.num_heads
        k, v = kv.split([self.qk_dim, self.dim], dim=-1)
        # separate buffers: inductor's CPU FlexAttention refuses views of one qkv buffer
        heads = lambda t, c: t.reshape(B, R * T, m, c // m).transpose(1, 2).contiguous()
        out = flex_attention(heads(q, self.qk_dim), heads(k, self.qk_dim), heads(v, self.dim),
                             block_mask=routed_block_mask(idx, T, m), scale=self.scale,
                             kernel_options=_gpu_tiles(T) if q.is_cuda else None)
        return out.view(B, m, R, T, self.dim // m).transpose(1, 2).reshape(B * R, m, T, self.dim // m)


class AttentionLePE(nn.Module):
    """Multi-head self-attention over all tokens of a (B, H, W, C) map, plus a depthwise conv of its input
    (LePE) added before the output projection. qkv without bias; scale ``head_dim ** -0.5``."""

    def __init__(self, dim: int, num_heads: int = 8, side_dwconv: int = 5):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=False)
        self.proj = nn.Linear(dim, dim)
        self.lepe = nn.Conv2d(dim, dim, side_dwconv, 1, side_dwconv // 2, groups=dim)

    def forward(self, x):
        return self.proj(self._mixed(x))

    def forward_add(self, x: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
        """``self(x) + other`` (the block's shortcut), the add in the projection's pass (deploy form)."""
        return self.proj.forward_add(self._mixed(x), other)

    def _mixed(self, x: torch.Tensor) -> torch.Tensor:
        B, H, W, C = x.shape
        qkv = self.qkv(x).view(B, H * W, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        return out.transpose(1, 2).reshape(B, H, W, C) + self.lepe(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)


class BiFormerBlock(FoldedCopy, nn.Module):
    """Depthwise-conv position embedding, then pre-norm attention and MLP, on (B, H, W, C) tokens."""

    def __init__(self, dim: int, num_heads: int, n_win: int, topk: int, mlp_ratio: float = 3.0,
                 side_dwconv: int = 5, drop_path: float = 0.0, routing_impl: str = 'auto'):
        super().__init__()
        self.pos_embed = nn.Conv2d(dim, dim, 3, 1, 1, groups=dim)
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        if topk > 0:
            self.attn = BiLevelRoutingAttention(dim, num_heads, n_win, topk, dim, side_dwconv, routing_impl)
        else:
            self.attn = AttentionLePE(dim, side_dwconv=side_dwconv)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x):
        pos = self.pos_embed(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)  # the conv on the NCHW view
        x = pos if self.fused else x + pos  # the deploy form's kernel holds the identity
        if self.training or not self.fused:  # stochastic depth on the branches
            x = x + self.drop_path(self.attn(self.norm1(x)))
            return x + self.drop_path(self.mlp(self.norm2(x)))
        # the same sums, each in its branch's last Linear's pass
        x = self.attn.forward_add(self.norm1(x), x)
        return self.mlp.forward_add(self.norm2(x), x)

    def _fold(self):
        c = self.pos_embed.kernel_size[0] // 2  # the shortcut around the position embedding: its centre tap
        self.pos_embed.weight[:, 0, c, c] += 1.0
        self.mlp = FusedMlp(self.mlp.fc1, self.mlp.fc2, 'gelu')
        for name in ('qkv', 'wo', 'proj'):
            layer = getattr(self.attn, name, None)
            if layer is not None:
                setattr(self.attn, name, FusedLinear.from_weights(layer.weight, layer.bias))


class BiFormer(StagedBackbone):
    arch = 'BiFormer'
    deploy_fused_convs = True
    # the final BatchNorm acts on the residual stream's sum (nothing linear to fold it into) and its output is
    # the feature map forward_features returns; it stays in the deploy form
    unfoldable_norms = ('norm',)

    def __init__(
            self,
            in_chans: int = 3,
            num_classes: int = 1000,
            global_pool: str = 'avg',
            embed_dim: Tuple[int, ...] = (64, 128, 256, 512),
            depth: Tuple[int, ...] = (2, 2, 8, 2),
            topks: Tuple[int, ...] = (1, 4, 16, -2),
            n_win: int = 7,
            head_dim: int = 32,
            mlp_ratio: float = 3.0,
            side_dwconv: int = 5,
            drop_rate: float = 0.0,
            drop_path_rate: float = 0.0,
            routing_impl: str = 'auto',
    ):
        super().__init__()
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.num_features = embed_dim[-1]
        e0 = embed_dim[0]
        self.stem = nn.Sequential(
            ConvBN(in_chans, e0 // 2, 3, 2, 1, bias=True), nn.GELU(), ConvBN(e0 // 2, e0, 3, 2, 1, bias=True))
        dpr = calculate_drop_path_rates(drop_path_rate, list(depth), stagewise=True)
        stages = []
        self.feature_info = []
        for i, dim in enumerate(embed_dim):
            stages.append(TokenStage(
                ConvBN(embed_dim[i - 1], dim, 3, 2, 1, bias=True) if i > 0 else None,
                [BiFormerBlock(dim, dim // head_dim, n_win, topks[i], mlp_ratio, side_dwconv, dpr[i][j], routing_impl)
                 for j in range(depth[i])],
            ))
            self.feature_info.append(dict(num_chs=dim, reduction=4 * 2 ** i, module=f'stages.{i}'))
        self.stages = nn.Sequential(*stages)
        self.norm = nn.BatchNorm2d(self.num_features)
        self.reset_classifier(num_classes, global_pool)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        """The authors' init: truncated normal (std 0.02) Linears with zero bias; convs keep PyTorch's."""
        if isinstance(m, nn.Linear):
            trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)

    def _make_head(self, num_classes: int) -> nn.Module:
        return NormLinear(nn.Identity(), self.num_features, num_classes, drop=self.drop_rate)


_STEM = {'0': 'stem.0.conv', '1': 'stem.0.bn', '3': 'stem.2.conv', '4': 'stem.2.bn'}


def _official_key(key: str) -> str:
    """Map a key of the authors' layout (``downsample_layers.0`` the stem, ``downsample_layers.i`` stage i's
    Conv–BN, ``stages.i.j`` the blocks, ``norm``, ``head``) to the zoo's."""
    m = re.match(r'^downsample_layers\.(\d)\.(\d)\.(.*)$', key)
    if m:
        if m[1] == '0':
            return f'{_STEM[m[2]]}.{m[3]}'
        return f'stages.{m[1]}.downsample.{"conv" if m[2] == "0" else "bn"}.{m[3]}'
    m = re.match(r'^stages\.(\d)\.(\d+)\.(.*)$', key)
    if m:
        rest = m[3].replace('attn.qkv.qkv.', 'attn.qkv.')
        rest = re.sub(r'^mlp\.0\.', 'mlp.fc1.', rest)
        rest = re.sub(r'^mlp\.3\.', 'mlp.fc2.', rest)
        return f'stages.{m[1]}.blocks.{m[2]}.{rest}'
    return re.sub(r'^head\.', 'head.fc.', key)


def checkpoint_filter_fn(state_dict: Dict[str, torch.Tensor], model: nn.Module) -> Dict[str, torch.Tensor]:
    """The authors' files (``{'model': ...}`` unwrapped by the loader) and zoo files both load; the result is
    checked against the model before anything is copied."""
    if 'downsample_layers.0.0.weight' in state_dict:
        state_dict = {_official_key(k): v for k, v in state_dict.items()}
    return check_pretrained(state_dict, model)


def _cfg(url: str = '', **kwargs):
    return {
        'url': url,
        'num_classes': 1000, 'input_size': (3, 224, 224), 'pool_size': (7, 7),
        'crop_pct': 0.9, 'interpolation': 'bicubic',
        'mean': IMAGENET_DEFAULT_MEAN, 'std': IMAGENET_DEFAULT_STD,
        'first_conv': 'stem.0.conv', 'classifier': 'head.fc',
        'license': 'mit', 'paper_ids': 'arXiv:2303.08810', **kwargs,
    }


# the authors' OneDrive share links; each serves its file as 'content', so the zoo caches them under the
# manifest's names (biformer_{tiny,small,base}_in1k.pth, as the authors' loader names them)
_ONEDRIVE = 'https://api.onedrive.com/v1.0/shares/s!AkBbczdRlZvC{}/root/content'
default_cfgs = generate_default_cfgs({
    'biformer_t.in1k': _cfg(_ONEDRIVE.format('hHEOoGkgwgQzEDlM')),
    'biformer_s.in1k': _cfg(_ONEDRIVE.format('hHDyM-x9KWRBZ832')),
    'biformer_b.in1k': _cfg(_ONEDRIVE.format('hHI_XPhoadjaNxtO')),
})


FAMILY = register_family(Family(
    name='biformer',
    display='BiFormer',
    model_cls=BiFormer,
    default_cfgs=default_cfgs,
    checkpoint_filter=checkpoint_filter_fn,
    docs_page='biformer.md',
    dense_out_norm='ln',
    dense_norm_keys=tuple(f'extra_norms.{i}' for i in range(4)),  # the authors' mmdet / mmseg backbones
    static_hw='routing pads each map to a multiple of n_win regions with sizes computed in Python',
))


@FAMILY.register
def biformer_t(pretrained=False, **kwargs) -> BiFormer:
    """BiFormer-T: 13.1M params, 2.2G FLOPs, 81.4 ImageNet top-1."""
    args = dict(embed_dim=(64, 128, 256, 512), depth=(2, 2, 8, 2))
    return FAMILY.build('biformer_t', pretrained, **dict(args, **kwargs))


@FAMILY.register
def biformer_s(pretrained=False, **kwargs) -> BiFormer:
    """BiFormer-S: 25.5M params, 4.5G FLOPs, 83.8 ImageNet top-1."""
    args = dict(embed_dim=(64, 128, 256, 512), depth=(4, 4, 18, 4))
    return FAMILY.build('biformer_s', pretrained, **dict(args, **kwargs))


@FAMILY.register
def biformer_b(pretrained=False, **kwargs) -> BiFormer:
    """BiFormer-B: 56.8M params, 9.8G FLOPs, 84.3 ImageNet top-1."""
    args = dict(embed_dim=(96, 192, 384, 768), depth=(4, 4, 18, 4))
    return FAMILY.build('biformer_b', pretrained, **dict(args, **kwargs))
