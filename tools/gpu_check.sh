#!/usr/bin/env bash
# The prepared GPU measurement: on one CUDA device, in at most 8 minutes (the steps' limits add up to 480 s),
#   1. the tests that need CUDA (tests/test_cuda.py: the fused SKA kernel compiled for the device, LSNet on it
#      eager / compiled / training, attention on SDPA's fused kernels);
#   2. the fused kernels against the paths they replace (SKA kernel vs the shifted sum, forward and
#      forward+backward, at LSNet-T's stage shapes; BiFormer's routed attention, block-sparse FlexAttention vs
#      gather + SDPA, compiled, at BiFormer-T's stage shapes), each timed as called from the host and replayed
#      from a CUDA graph (the GPU's own time: at these sizes a slow host's launching can bound both sides);
#   3. every family's smallest and a middle variant against timm's model of the same architecture: inference
#      throughput (AMP fp16, channels-last, batch 256, eager) and a training step (AdamW, AMP), models taking
#      turns; then SHViT-S1 compiled (torch.compile) against timm's SHViT-S1 compiled, and LSNet-T compiled.
# Writes docs/benchmark-gpu.csv / .md, docs/benchmark-gpu-compiled.csv / .md and docs/benchmark-gpu-kernels.md
# (or OUT_DIR=... elsewhere), each rewritten as rows come in; each step has its own time limit, so one slow step
# cannot eat the others'. What the steps took on two H200 machines (2026-12-04): the tests 60 s with kernels
# compiled before, 7 of 15 in the first 120 s on a fresh machine; step 2 98 s; step 3 115 s on one machine and
# about 210 s on the other, whose host launched GPU work 1.2-2.5x slower; compiling a model and its peer 45-70 s.
# On a host that slow the whole needs about 600 s, and the limits cut the steps' tails (their rows are kept).
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

step 150 "CUDA tests" "$PY" -m pytest -q -m cuda -p no:cacheprovider tests/test_cuda.py

step 110 "fused kernels vs the paths they replace" "$PY" - "$OUT_DIR/benchmark-gpu-kernels.md" <<'EOF'
import statistics
import sys
import torch
from torch.utils.benchmark import Timer
from zoo.layers.ska_triton import ska
from zoo.models.lsnet import ska_reference

# the timer keeps this process's thread count: a compiled model's guards see the count change and recompile
threads = torch.get_num_threads()
rows = ['| op | shape (B, C, G, H, W, k) | dtype | pass | shifted sum (ms) | fused kernel (ms) | speed-up '
        '| shifted sum, graphed (ms) | fused kernel, graphed (ms) | speed-up, graphed |', '|---|---|---|---|---|---|---|---|---|---|']


def save(last=False):  # after each row: a step stopped at its time limit keeps what it measured
    text = (f'{torch.cuda.get_device_name()}, torch {torch.__version__}. A call\'s time on the host: the median of '
            'torch.utils.benchmark runs, launches included. Graphed: the GPU\'s time for a call, 20 calls captured '
            'in a CUDA graph and replayed (median of 5 replays, CUDA events), the host\'s launching left out.\n\n')
    open(sys.argv[1], 'w').write(text + '\n'.join(rows) + ('' if last else '\n\n**Unfinished**') + '\n')
    if not last:
        print(rows[-1])


def graphed_ms(fn, calls=20):
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm-up off the default stream, as a capture asks
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(side)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(calls):
            fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    times = []
    for _ in range(5):
        start.record()
        graph.replay()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / calls)
    return statistics.median(times)


def timed(fn, what):
    """(host ms, graphed ms or why not); a failure to capture costs the graphed figure only."""
    host = Timer('f()', globals=dict(f=fn), num_threads=threads).blocked_autorange(min_run_time=0.3).median * 1e3
    try:
        return host, graphed_ms(fn)
    except Exception as e:  # say why, keep going
        print(f'{what}, graphed: {type(e).__name__}: {str(e).splitlines()[0][:200]}', file=sys.stderr)
        return host, f'fails: {type(e).__name__}'


fmt = lambda t: t if isinstance(t, str) else f'{t:.3f}'
ratio = lambda a, b: '' if isinstance(a, str) or isinstance(b, str) else f'{a / b:.2f}x'


def cells(first, second):  # two (host, graphed) pairs: the row's last six cells
    return (f'{fmt(first[0])} | {fmt(second[0])} | {ratio(first[0], second[0])} | {fmt(first[1])} | {fmt(second[1])} | '
            f'{ratio(first[1], second[1])} |')


for B, C, H in ((64, 128, 28), (64, 256, 14), (256, 128, 28)):  # LSNet-T's SKA stages at 224 px
    G, k = C // 8, 3
    for dtype in (torch.float16, torch.float32):
        x = torch.randn(B, C, H, H, device='cuda', dtype=dtype, requires_grad=True)
        w = torch.randn(B, G, k * k, H, H, device='cuda', dtype=dtype, requires_grad=True)
        g = torch.randn(B, C, H, H, device='cuda', dtype=dtype)
        for name, call in (('forward', lambda f: f(x, w)), ('forward+backward', lambda f: f(x, w).backward(g))):
            first, second = (timed(lambda: call(f), f'SKA {name} {f.__name__}') for f in (ska_reference, ska))
            rows.append(f'| SKA | {B}, {C}, {G}, {H}, {H}, {k} | {str(dtype)[6:]} | {name} | {cells(first, second)}')
            save()

# BiFormer-T's routed attention at its stage shapes (224 px, batch 64): gather + SDPA vs block-sparse
# FlexAttention, both compiled, AMP fp16
from zoo.models.biformer import BiLevelRoutingAttention, _gpu_tiles
rows += ['', '| op | stage (dim, heads, map, top-k) | dtype | pass | gather + SDPA (ms) | block-sparse flex (ms) | speed-up '
         '| gather + SDPA, graphed (ms) | block-sparse flex, graphed (ms) | speed-up, graphed |',
         '|---|---|---|---|---|---|---|---|---|---|']
for dim, heads, size, topk in ((64, 2, 56, 1), (128, 4, 28, 4), (256, 8, 14, 16)):
    x = torch.randn(64, size, size, dim, device='cuda')
    times = []
    for impl in ('gather', 'block-sparse'):
        if impl == 'block-sparse':
            try:  # what a GPU refuses, known before compiling
                _gpu_tiles((size // 7) ** 2)
            except ValueError:
                times.append(('n/a: regions of fewer than 16 tokens', 'n/a'))
                continue
        torch.manual_seed(0)
        m = torch.compile(BiLevelRoutingAttention(dim, heads, 7, topk, routing_impl=impl).cuda().eval())
        try:
            with torch.no_grad(), torch.autocast('cuda', dtype=torch.float16):
                m(x)
                times.append(timed(lambda: m(x), f'BRA {impl} at {size}px'))
        except Exception as e:  # say why, keep going
            times.append((f'fails: {type(e).__name__}', ''))
            print(f'{impl} at {size}px: {type(e).__name__}: {str(e).splitlines()[0][:200]}', file=sys.stderr)
    rows.append(f'| BRA | {dim}, {heads}, {size}, {topk} | fp16 | forward | {cells(*times)}')
    save()
save(last=True)
EOF

# each family's smallest first, then the middle ones: a step cut at its limit loses middle variants, not families
MODELS="convnext_atto inceptionnext_atto unireplknet_a lsnet_t shvit_s1 fasternet_t0 litv2_s biformer_t
        convnext_tiny inceptionnext_tiny unireplknet_n lsnet_s shvit_s3 fasternet_s litv2_m biformer_s"
step 150 "inference (eager) and a training step vs timm" "$PY" tools/benchmark.py $MODELS --device cuda --forms deploy \
    --timm-peers --channels-last --train-step --no-memory --warmup 3 --repeats 10 \
    --csv "$OUT_DIR/benchmark-gpu.csv" --markdown "$OUT_DIR/benchmark-gpu.md"
step 70 "compiled inference vs timm compiled" "$PY" tools/benchmark.py shvit_s1 lsnet_t \
    --device cuda --forms deploy --runtimes compiled --timm-peers --channels-last --no-memory --warmup 3 --repeats 10 \
    --csv "$OUT_DIR/benchmark-gpu-compiled.csv" --markdown "$OUT_DIR/benchmark-gpu-compiled.md"
echo "=== done $(date -u +%T), status $status"
exit $status
