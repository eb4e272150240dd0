"""Benchmarks: every model of a group measured in turns (train against deploy form, eager against
``torch.compile`` and ONNX Runtime, against timm peers), so that ratios are fair; Markdown and CSV tables."""
import contextlib
import copy
import csv
import io
import math
import statistics
import sys
import tempfile
from dataclasses import asdict, dataclass, fields
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import torch
from tqdm import tqdm

from .authors import AUTHORS, authors_model, authors_modules, check_checkout
from .counting import count_flops, count_params, peak_memory
from ..deploy.runtimes import PRECISION
from .forms import FORMS, PEER_FORMS, RUNTIMES, build_in_form, in_runtime, timm_equivalent
from ..models import family_of
from .timing import gemm_peak, interleaved_times, paired_ratio, TrainingStep, with_autocast

__all__ = ['BenchmarkRow', 'benchmark', 'markdown_table', 'to_markdown', 'to_csv', 'from_csv']


@dataclass
class BenchmarkRow:
    model: str
    # 'train' (eval mode, unfolded), 'deploy' (zoo.reparameterize), 'unfused' (the deploy form with every
    # attention computed as the materialized softmax(QK^T)V instead of SDPA), 'unchecked' (the deploy form with every
    # activation fused and no non-finite check: what keeping NaN costs), 'timm' (timm's model in timm's
    # deploy form, timm.utils.reparameterize_model, where it has one), 'timm-cl' (that, on channels-last weights
    # and inputs), 'authors' (the authors' own code in their deploy form: zoo.measure.authors)
    form: str
    params: int  # None (and gflops too) in the row of an authors' model that could not be built
    gflops: float  # per image at img_size
    img_size: int
    latency_ms: float  # batch 1, median (a 'train-step' row: one training step at batch_size)
    throughput: float  # images/s at batch_size, median
    batch_size: int
    # 'eager', 'compiled' (torch.compile, inductor), 'onnx' (ONNX Runtime), or one of zoo.deploy.runtimes' others:
    # 'bf16', 'int8-inductor', 'int8-ort', 'openvino', 'openvino-int8', 'executorch', 'executorch-int8'; or
    # 'train-step': a training step (benchmark(train_step=True))
    runtime: str = 'eager'
    device: str = 'cpu'
    dtype: str = 'fp32'  # 'fp16' / 'bf16': autocast (AMP) on a GPU; on the CPU the runtime's precision (bf16, int8)
    gflops_per_s: float = 0.  # achieved at batch_size: gflops x throughput
    peak_fraction: float = 0.  # gflops_per_s / the measured GEMM peak
    peak_mem_mb: Optional[float] = None  # activations at batch_size (eager on CPU; any PyTorch runtime on GPU)
    latency_ratio: Optional[float] = None  # reference latency / this latency (> 1: faster than reference)
    throughput_ratio: Optional[float] = None  # this throughput / reference throughput
    reference: str = ''
    paired_with: str = ''  # for a timm row: the zoo model it is compared with
    # an 'authors' row: the largest absolute difference of its batch-1 logits from the zoo deploy form's, the two
    # holding the same weights
    max_abs_error: Optional[float] = None
    # why this (model, form, runtime) could not be measured (its latency and throughput are then NaN): the
    # runtime refused or failed the model; the rest of the run goes on
    error: str = ''


_DTYPE_NAMES = {None: 'fp32', torch.float16: 'fp16', torch.bfloat16: 'bf16'}
# rows a zoo model's deploy form is compared with
_PEER_ROWS = PEER_FORMS + ('authors',)


def benchmark(
        models: Sequence[str],
        compare: Sequence[str] = (),
        forms: Sequence[str] = ('train', 'deploy'),
        runtimes: Sequence[str] = ('eager',),
        timm_peers: bool = False,
        peer_forms: Sequence[str] = ('timm',),
        img_size: int = 224,
        batch_size: int = 16,
        threads: int = 2,
        warmup: int = 3,
        repeats: int = 10,
        device: str = 'cpu',
        amp: Optional[torch.dtype] = None,
        memory: bool = True,
        channels_last: bool = False,
        train_step: bool = False,
        authors: Optional[Mapping[str, str]] = None,
        progress: bool = False,
        on_group: Optional[Callable[[List[BenchmarkRow]], None]] = None,
) -> List[BenchmarkRow]:
    """Measure every zoo model in each form and runtime, with ``timm_peers`` also timm's model of the same
    architecture, and every ``compare`` model (timm names) as is, each in every one of ``peer_forms``.

    Each zoo model and its peer are measured together, taking turns. Ratios of a zoo row are against the
    model's first row (its first form in its first runtime); a peer's ratio is "zoo deploy form vs this peer"
    in the same runtime (the model it was paired with, or for ``compare`` the first zoo model), so a ratio > 1
    means the zoo model is faster. ``amp`` (a GPU's autocast dtype) runs every model under autocast; ONNX
    Runtime runs on the CPU only. ``memory`` adds each PyTorch row's peak activation memory at ``batch_size``
    (one more batch forward; eager only on a CPU). ``channels_last`` puts every model's weights and the inputs
    in channels-last storage. ``train_step`` adds, per model, the time of a training step at ``batch_size``
    (runtime ``'train-step'``: forward, cross-entropy, backward, AdamW step, under ``amp`` with a gradient
    scaler for fp16; zoo models in the train form, peers as timm builds them for training), the models of a
    group taking turns. ``authors`` (family name -> a checkout of the authors' repository: ``AUTHORS``) adds,
    for each model of those families, the authors' own code in their deploy form (form ``'authors'``) on the
    same weights as the zoo model's forms, with the difference of their outputs (``max_abs_error``): in eager,
    and under torch.compile too where ``runtimes`` has ``'compiled'``, each row against the zoo deploy form in
    its own runtime. ``on_group``, if given, is called after each group with (a copy of) every row measured so
    far, ratios included: a caller can keep them where a run stopped part-way (a time limit, a crash) would
    otherwise lose them all."""
    authors = dict(authors or {})
    unwired = sorted(set(authors) - set(AUTHORS))
    if unwired:
        raise ValueError(f'authors: no authors\' code is wired for {unwired}; families with it: {sorted(AUTHORS)}')
    for family, checkout in authors.items():  # before any measuring: a wrong path is known at once
        check_checkout(family, checkout)
    unknown = sorted(set(forms) - set(FORMS)) + sorted(set(runtimes) - set(RUNTIMES)) \
        + sorted(set(peer_forms) - set(PEER_FORMS))
    if unknown:
        raise ValueError(f'unknown forms / runtimes {unknown}: forms are {FORMS}, runtimes {RUNTIMES}, '
                         f'peer forms {PEER_FORMS}')
    cpu_only = sorted(set(runtimes) - {'eager', 'compiled'})
    if device != 'cpu' and cpu_only:
        raise ValueError(f'runtimes {cpu_only} are measured on the CPU only')
    if amp is not None and device == 'cpu':
        raise ValueError('amp is for a GPU; on the CPU the tool measures fp32')
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    layout = torch.channels_last if channels_last else torch.contiguous_format
    x1 = torch.randn(1, 3, img_size, img_size, device=device).contiguous(memory_format=layout)
    xb = torch.randn(batch_size, 3, img_size, img_size, device=device).contiguous(memory_format=layout)
    peak = gemm_peak(device, amp or torch.float32, threads)
    groups = []
    for name in models:
        jobs = [(name, form, runtime, name) for form in forms for runtime in runtimes]
        if family_of(name).name in authors:
            # the authors' code as they run it, in eager PyTorch, and under torch.compile where the zoo forms are
            # compiled too (the same compiler on both: a compiled zoo form is never set against their eager
            # code alone); not in an exporter's runtime, which their code is not made for
            jobs.append((name, 'authors', 'eager', name))
            if 'compiled' in runtimes:
                jobs.append((name, 'authors', 'compiled', name))
        peer = timm_equivalent(name) if timm_peers else None
        if peer:
            jobs += [(peer, form, runtime, name) for form in peer_forms for runtime in runtimes]
        groups.append(jobs)
    first = models[0] if models else None
    groups += [[(name, form, runtime, first) for form in peer_forms for runtime in runtimes] for name in compare]
    rows: List[BenchmarkRow] = []
    # each measured row's rounds (its group, inference or training steps) and times in them (batch 1, batch N),
    # by its place in ``rows``: a ratio between two rows timed in the same rounds is the median of their
    # per-round ratios (timing.paired_ratio)
    rounds: Dict[int, Tuple[tuple, List[float], List[float]]] = {}
    bar = tqdm(groups, desc='benchmark', unit='model', file=sys.stderr, disable=not progress, dynamic_ncols=True)
    with tempfile.TemporaryDirectory() as workdir:
        for group, jobs in enumerate(bar):
            bar.set_postfix_str(', '.join(f'{name} [{form}, {runtime}]' for name, form, runtime, _ in jobs))
            theirs, unbuilt = _authors_models(jobs, authors)
            with contextlib.ExitStack() as imported:  # the authors' modules, while their models run
                for model, _ in theirs.values():
                    imported.enter_context(authors_modules(model))
                buildable = [job for job in jobs if job not in unbuilt]
                modules, counted, errors = _group_modules(buildable, theirs, x1, device, channels_last)
                built, failed = _built_in_runtimes(buildable, modules, x1, xb, img_size, threads, workdir, device, amp)
                failed.update(unbuilt)
                measured = [job for job in jobs if job in built]
                fns = [built[job] for job in measured]
                latency = dict(zip(measured, interleaved_times(fns, x1, warmup, repeats)))
                batch_time = dict(zip(measured, interleaved_times(fns, xb, max(1, warmup // 2),
                                                                  max(3, repeats // 2))))
                for job in jobs:  # in the order asked, a row not measured in its place
                    name, form, runtime, paired = job
                    params, gflops = counted.get((name, form), (None, None))  # an authors' model not built
                    dtype = _DTYPE_NAMES[amp] if amp else PRECISION[runtime]
                    if job in failed:
                        rows.append(BenchmarkRow(
                            model=name, form=form, params=params, gflops=gflops, img_size=img_size,
                            latency_ms=math.nan, throughput=math.nan, batch_size=batch_size, runtime=runtime,
                            device=device, dtype=dtype, gflops_per_s=math.nan, peak_fraction=math.nan,
                            paired_with=paired, error=failed[job]))
                        continue
                    fn, lat, bt = built[job], statistics.median(latency[job]), statistics.median(batch_time[job])
                    rounds[len(rows)] = (group, 'inference'), latency[job], batch_time[job]
                    mem = None
                    if memory and (runtime == 'eager' or (device != 'cpu' and runtime == 'compiled')):
                        mem = peak_memory(fn, xb) / 2 ** 20
                    rows.append(BenchmarkRow(
                        model=name, form=form, params=params, gflops=gflops, img_size=img_size, latency_ms=1e3 * lat,
                        throughput=batch_size / bt, batch_size=batch_size, runtime=runtime, device=device,
                        dtype=dtype, gflops_per_s=gflops * batch_size / bt,
                        peak_fraction=gflops * batch_size / bt / peak, peak_mem_mb=mem, paired_with=paired,
                        max_abs_error=errors.get(name) if form == 'authors' else None))
            del built, fns, modules, theirs
            if runtimes != ('eager',):
                torch._dynamo.reset()
            if train_step:
                for row, times in zip(*_train_step_rows(jobs, xb, amp, layout, warmup, repeats)):
                    rounds[len(rows)] = (group, 'train-step'), times, times
                    rows.append(row)
            if on_group is not None:
                so_far = copy.deepcopy(rows)
                _add_ratios(so_far, rounds)
                on_group(so_far)
    _add_ratios(rows, rounds)
    return rows


def _authors_models(jobs, authors: Mapping[str, str]):
    """The authors' models of a group's ``'authors'`` jobs: ``({name: (their deploy form, the zoo model on the
    same weights)}, {job: why it failed})``. Their code failing to build (a package it imports missing, a
    checkout of another version) costs their rows only, as their code failing to run does."""
    theirs, why_not = {}, {}
    for name, form, _, _ in jobs:
        if form == 'authors' and name not in theirs and name not in why_not:
            try:
                theirs[name] = authors_model(name, authors[family_of(name).name])
            except Exception as e:  # their code's imports or build
                why_not[name] = _why(e)
                print(f'benchmark: the authors\' code of {name} could not be built: {why_not[name]}', file=sys.stderr)
    unbuilt = {job: why_not[job[0]] for job in jobs if job[1] == 'authors' and job[0] in why_not}
    return theirs, unbuilt


def _why(e: Exception) -> str:
    """An exception as a row's error: its type and first line."""
    return f'{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ""}'[:300]


def _built_in_runtimes(jobs, modules, x1: torch.Tensor, xb: torch.Tensor, img_size: int, threads: int,
                       workdir: str, device: str, amp: Optional[torch.dtype]):
    """Each job's model in its runtime, called once at batch 1 and at the batch size (where a compiler or an
    exporter does its work): ``({job: callable}, {job: why it failed})``. A runtime that refuses or fails one
    model (or the authors' code that fails) costs that row only, named with the error, not the rows measured
    before and after it; a zoo form failing in eager PyTorch raises."""
    built, failed = {}, {}
    for job in jobs:
        name, form, runtime, _ = job
        try:
            fn = with_autocast(in_runtime(modules[name, form], runtime, img_size, threads, workdir), device, amp)
            with torch.no_grad():
                fn(x1)
                fn(xb)
        except Exception as e:  # a third-party runtime's or the authors' code's failure: in the row, on stderr
            if runtime == 'eager' and form != 'authors':
                raise  # the zoo's own form in eager PyTorch: a failure there is a bug to see, not a row
            why = _why(e)
            print(f'benchmark: {name} [{form}, {runtime}] could not be measured: {why}', file=sys.stderr)
            failed[job] = why
            continue
        built[job] = fn
    return built, failed


def _group_modules(jobs, theirs, x1: torch.Tensor, device: str, channels_last: bool):
    """Each (model, form) of a group built once: the modules, their (params, GFLOPs), and for the authors'
    models (``theirs``: name -> their deploy form, the zoo model with the same weights) the largest difference
    of their logits from the zoo deploy form's."""
    modules, counted, errors = {}, {}, {}
    for name, form, _, _ in jobs:
        if (name, form) in modules:
            continue
        gflops = None
        if form == 'authors':
            # the zoo deploy form's FLOPs: the same function (their own counters, as LITv2's flops(), would be
            # taken for the zoo's)
            module = theirs[name][0]
            ours = build_in_form(name, 'deploy', theirs[name][1])
            with torch.no_grad():
                errors[name] = (module(x1.cpu()) - ours(x1.cpu())).abs().max().item()
            gflops = count_flops(ours, x1.cpu()) / 1e9
        else:
            module = build_in_form(name, form, theirs[name][1] if name in theirs else None)
        module = module.to(device)
        if channels_last:
            module = module.to(memory_format=torch.channels_last)
        modules[name, form] = module
        counted[name, form] = (count_params(module), count_flops(module, x1) / 1e9 if gflops is None else gflops)
    return modules, counted, errors


def _train_step_rows(jobs, xb: torch.Tensor, amp: Optional[torch.dtype], layout, warmup: int,
                     repeats: int) -> Tuple[List[BenchmarkRow], List[List[float]]]:
    """One row per model of a group: seconds per training step, the models taking turns; and each row's
    times, round by round."""
    import timm
    names = list(dict.fromkeys((name, form in PEER_FORMS, paired) for name, form, _, paired in jobs
                               if form != 'authors'))
    steps = []
    for name, is_peer, _ in names:
        model = (timm.create_model(name) if is_peer else build_in_form(name, 'train')).to(xb.device)
        steps.append(TrainingStep(model.to(memory_format=layout) if layout == torch.channels_last else model, xb, amp))
    per_round = interleaved_times(steps, xb, max(1, warmup // 2), max(3, repeats // 2))
    rows = []
    for (name, is_peer, paired), step, ts in zip(names, steps, per_round):
        t = statistics.median(ts)
        rows.append(BenchmarkRow(
            model=name, form='timm' if is_peer else 'train', params=count_params(step.model), gflops=0.,
            img_size=xb.shape[-1], latency_ms=1e3 * t, throughput=len(xb) / t, batch_size=len(xb),
            runtime='train-step', device=xb.device.type, dtype=_DTYPE_NAMES[amp], paired_with=paired))
    return rows, per_round


def _time_ratios(a: BenchmarkRow, b: BenchmarkRow, rounds: Mapping) -> Tuple[float, float]:
    """``a``'s time over ``b``'s, at batch 1 and at batch N: the median of their per-round ratios where both were
    timed in the same rounds (:func:`timing.paired_ratio`; ``rounds``: a row's id -> its group and times), else
    the ratio of their medians (a ``compare`` model, measured in a group of its own)."""
    ta, tb = rounds.get(id(a)), rounds.get(id(b))
    if ta is None or tb is None or ta[0] != tb[0]:
        return a.latency_ms / b.latency_ms, b.throughput / a.throughput
    return paired_ratio(ta[1], tb[1]), paired_ratio(ta[2], tb[2])


def _add_ratios(rows: List[BenchmarkRow], rounds: Optional[Mapping] = None) -> None:
    """Each row's speed-ups against its reference row (see :func:`benchmark`), from ``rounds`` (the group and
    times of ``rows[i]``, round by round, under ``i``) where the two were timed in the same rounds."""
    rounds = {id(row): rounds[i] for i, row in enumerate(rows) if i in rounds} if rounds else {}
    first, deploy, first_by_runtime = {}, {}, {}
    rows = [row for row in rows if not row.error]  # a row not measured is no one's reference and has no ratio
    authors_rows = {(row.paired_with, row.runtime) for row in rows if row.form == 'authors'}
    for row in rows:
        if row.form not in _PEER_ROWS:
            first.setdefault(row.model, row)
            first_by_runtime.setdefault((row.model, row.runtime), row)
            if row.form == 'deploy':
                deploy.setdefault((row.model, row.runtime), row)
    for row in rows:
        if row.form in _PEER_ROWS:
            # a peer against the zoo model's deploy form; a training step against its train form's
            ref = deploy.get((row.paired_with, row.runtime))
            others = []
            if row.form == 'authors' and row.runtime == 'eager':
                # also against the deploy form in each runtime where the authors' code has no row of its own
                others = [r for (model, runtime), r in deploy.items()
                          if model == row.paired_with and (model, runtime) not in authors_rows]
                ref = ref or (others[0] if others else None)
            ref = ref or first_by_runtime.get((row.paired_with, row.runtime))
            if ref is None:
                continue
            row.latency_ratio, row.throughput_ratio = _time_ratios(row, ref, rounds)
            row.reference = f'{ref.model} [{ref.form}, {ref.runtime}] vs this'
            for other in others:
                if other is not ref:
                    b1, bn = _time_ratios(row, other, rounds)
                    row.reference += f'; [{other.form}, {other.runtime}] {b1:.2f}x / {bn:.2f}x'
            if row.max_abs_error is not None:
                row.reference += f'; same weights, outputs differ by {row.max_abs_error:.1e} at most'
        else:
            ref = first[row.model] if row.runtime != 'train-step' else None
            if ref is None or ref is row:
                continue
            row.latency_ratio, row.throughput_ratio = _time_ratios(ref, row, rounds)
            row.reference = f'this vs {ref.model} [{ref.form}, {ref.runtime}]'


_HEADERS = ('model', 'form', 'runtime', 'params (M)', 'GFLOPs', 'latency b1 (ms)', 'throughput (img/s)',
            'GFLOP/s (% of peak)', 'peak act. mem (MB)', 'speed-up b1', 'speed-up bN', 'ratio')


def _cells(row: BenchmarkRow) -> Iterable[str]:
    ratio = lambda v: '' if v is None else f'{v:.2f}x'
    if row.runtime == 'train-step':  # a training step at batch_size: its throughput, against the peer's
        return (row.model, row.form, row.runtime, f'{row.params / 1e6:.2f}', '', '',
                f'{row.throughput:.1f} (b{row.batch_size}, training)', '', '', '', ratio(row.throughput_ratio),
                row.reference)
    if row.error:  # an authors' model that could not be built has no parameters or FLOPs counted
        return (row.model, row.form, row.runtime, '' if row.params is None else f'{row.params / 1e6:.2f}',
                '' if row.gflops is None else f'{row.gflops:.3f}', '', '', '', '',
                '', '', f'not measured: {row.error}'.replace('|', '/'))
    return (row.model, row.form, row.runtime, f'{row.params / 1e6:.2f}', f'{row.gflops:.3f}',
            f'{row.latency_ms:.1f}', f'{row.throughput:.1f} (b{row.batch_size})',
            f'{row.gflops_per_s:.1f} ({100 * row.peak_fraction:.0f}%)',
            '' if row.peak_mem_mb is None else f'{row.peak_mem_mb:.0f}',
            ratio(row.latency_ratio), ratio(row.throughput_ratio), row.reference)


def markdown_table(header: Sequence[str], body: Iterable[Iterable[str]]) -> str:
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    return '\n'.join(lines + ['| ' + ' | '.join(cells) + ' |' for cells in body])


def to_markdown(rows: Sequence[BenchmarkRow]) -> str:
    return markdown_table(_HEADERS, (_cells(r) for r in rows))


def to_csv(rows: Sequence[BenchmarkRow]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=[f.name for f in fields(BenchmarkRow)])
    writer.writeheader()
    for row in rows:
        writer.writerow(asdict(row))
    return buf.getvalue()


def from_csv(text: str) -> List[BenchmarkRow]:
    """Rows written by :func:`to_csv`, typed again."""
    def parse(kind, value: str):
        if kind is str:
            return value
        if value == '':
            return None
        return int(value) if kind is int else float(value)
    kinds = {f.name: f.type for f in fields(BenchmarkRow)}
    return [BenchmarkRow(**{k: parse(kinds[k], v) for k, v in raw.items()}) for raw in csv.DictReader(io.StringIO(text))]
