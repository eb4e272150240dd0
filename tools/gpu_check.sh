#!/usr/bin/env bash
# The prepared GPU measurement: on one CUDA device, in at most 8 minutes (the steps' limits add up to 475 s),
#   1. the tests that need CUDA (tests/test_cuda.py: the fused SKA kernel compiled for the device, LSNet on it
#      eager / compiled / training, attention on SDPA's fused kernels);
#   2. the fused kernels against the paths they replace (SKA kernel vs the shifted sum, forward and
#      forward+backward, at LSNet-T's stage shapes; BiFormer's routed attention, block-sparse FlexAttention vs
#      gather + SDPA, compiled, at BiFormer-T's stage shapes);
#   3. every family's smallest and a middle variant against timm's model of the same architecture: inference
#      throughput (AMP fp16, channels-last, batch 256, eager) and a training step (AdamW, AMP), models taking
#      turns; then LSNet-T and SHViT-S1 compiled (torch.compile), against timm's SHViT-S1 compiled too.
# Writes docs/benchmark-gpu.csv / .md, docs/benchmark-gpu-compiled.csv / .md and docs/benchmark-gpu-kernels.md
# (or OUT_DIR=... elsewhere), each rewritten as rows come in; each step has its own time limit, so one slow step
# cannot eat the others'. The limits are from the first run on an H200 (2026-12-04): compiling a model and its
# peer took 45-70 s there, the eager step 115 s.
#
#   bash tools/gpu_check.sh                      # the project's .venv, else python3
#   PYTHON=python3 OUT_DIR=$OUT bash tools/gpu_check.sh
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
OUT_DIR=${OUT_DIR:-docs}
mkdir -p "$OUT_DIR"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
status=0
step() {  # step SECONDS NAME COMMAND...: run with a time limit, note a failure, go on
    local limit=$1 name=$2; shift 2
    echo "=== $name (limit ${limit}s) $(date -u +%T)"
    timeout "$limit" "$@" || { echo "=== $name FAILED (exit $?)"; status=1; }
}

"$PY" -c 'import torch; assert torch.cuda.is_available(), "no CUDA device"; print(torch.__version__, torch.cuda.get_device_name())' || exit 2

step 120 "CUDA tests" "$PY" -m pytest -q -m cuda -p no:cacheprovider tests/test_cuda.py

step 100 "fused kernels vs the paths they replace" "$PY" - "$OUT_DIR/benchmark-gpu-kernels.md" <<'EOF'
import sys
import torch
from torch.utils.benchmark import Timer
from zoo.layers.ska_triton import ska
from zoo.models.lsnet import ska_reference

# the timer keeps this process's thread count: a compiled model's guards see the count change and recompile
threads = torch.get_num_threads()
rows = ['| op | shape (B, C, G, H, W, k) | dtype | pass | shifted sum (ms) | fused kernel (ms) | speed-up |',
        '|---|---|---|---|---|---|---|']


def save(last=False):  # after each row: a step stopped at its time limit keeps what it measured
    text = f'{torch.cuda.get_device_name()}, torch {torch.__version__}; median of torch.utils.benchmark runs.\n\n'
    open(sys.argv[1], 'w').write(text + '\n'.join(rows) + ('' if last else '\n\n**Unfinished**') + '\n')
    if not last:
        print(rows[-1])


for B, C, H in ((64, 128, 28), (64, 256, 14), (256, 128, 28)):  # LSNet-T's SKA stages at 224 px
    G, k = C // 8, 3
    for dtype in (torch.float16, torch.float32):
        x = torch.randn(B, C, H, H, device='cuda', dtype=dtype, requires_grad=True)
        w = torch.randn(B, G, k * k, H, H, device='cuda', dtype=dtype, requires_grad=True)
        g = torch.randn(B, C, H, H, device='cuda', dtype=dtype)
        for name, stmt in (('forward', 'f(x, w)'), ('forward+backward', 'f(x, w).backward(g)')):
            t = [Timer(stmt, globals=dict(f=f, x=x, w=w, g=g), num_threads=threads).blocked_autorange(min_run_time=0.5).median * 1e3
                 for f in (ska_reference, ska)]
            rows.append(f'| SKA | {B}, {C}, {G}, {H}, {H}, {k} | {str(dtype)[6:]} | {name} | {t[0]:.3f} | {t[1]:.3f} | '
                        f'{t[0] / t[1]:.2f}x |')
            save()

# BiFormer-T's routed attention at its stage shapes (224 px, batch 64): gather + SDPA vs block-sparse
# FlexAttention, both compiled, AMP fp16
from zoo.models.biformer import BiLevelRoutingAttention, _gpu_tiles
rows += ['', '| op | stage (dim, heads, map, top-k) | dtype | pass | gather + SDPA (ms) | block-sparse flex (ms) | speed-up |',
         '|---|---|---|---|---|---|---|']
for dim, heads, size, topk in ((64, 2, 56, 1), (128, 4, 28, 4), (256, 8, 14, 16)):
    x = torch.randn(64, size, size, dim, device='cuda')
    times = []
    for impl in ('gather', 'block-sparse'):
        if impl == 'block-sparse':
            try:  # what a GPU refuses, known before compiling
                _gpu_tiles((size // 7) ** 2)
            except ValueError:
                times.append('n/a: regions of fewer than 16 tokens')
                continue
        torch.manual_seed(0)
        m = torch.compile(BiLevelRoutingAttention(dim, heads, 7, topk, routing_impl=impl).cuda().eval())
        try:
            with torch.no_grad(), torch.autocast('cuda', dtype=torch.float16):
                outs = m(x)
                times.append(Timer('f(x)', globals=dict(f=m, x=x), num_threads=threads).blocked_autorange(min_run_time=0.5).median * 1e3)
        except Exception as e:  # say why, keep going
            times.append(f'fails: {type(e).__name__}')
            print(f'{impl} at {size}px: {type(e).__name__}: {str(e).splitlines()[0][:200]}', file=sys.stderr)
    fmt = lambda t: t if isinstance(t, str) else f'{t:.3f}'
    ratio = '' if any(isinstance(t, str) for t in times) else f'{times[0] / times[1]:.2f}x'
    rows.append(f'| BRA | {dim}, {heads}, {size}, {topk} | fp16 | forward | {fmt(times[0])} | {fmt(times[1])} | {ratio} |')
    save()
save(last=True)
EOF

MODELS="convnext_atto convnext_tiny inceptionnext_atto inceptionnext_tiny unireplknet_a unireplknet_n lsnet_t lsnet_s
        shvit_s1 shvit_s3 fasternet_t0 fasternet_s litv2_s litv2_m biformer_t biformer_s"
step 130 "inference (eager) and a training step vs timm" "$PY" tools/benchmark.py $MODELS --device cuda --forms deploy \
    --timm-peers --channels-last --train-step --no-memory --warmup 3 --repeats 10 \
    --csv "$OUT_DIR/benchmark-gpu.csv" --markdown "$OUT_DIR/benchmark-gpu.md"
step 125 "compiled inference vs timm compiled" "$PY" tools/benchmark.py lsnet_t shvit_s1 \
    --device cuda --forms deploy --runtimes compiled --timm-peers --channels-last --no-memory --warmup 3 --repeats 10 \
    --csv "$OUT_DIR/benchmark-gpu-compiled.csv" --markdown "$OUT_DIR/benchmark-gpu-compiled.md"
echo "=== done $(date -u +%T), status $status"
exit $status
