"""The measuring tool counts what it claims and writes its tables."""
import csv
import importlib
import io
import math
import os
import sys
import time

import pytest
import timm
import torch
import torch.nn as nn
import torch.nn.functional as F

import zoo
from conftest import SMALLEST, randomize_norms
from zoo.measure import (PEERS, BenchmarkRow, ChannelsLast, Unfused, benchmark, build_in_form, count_flops, cpu_name, from_csv,
                         gemm_peak, peak_memory, to_csv, to_markdown)
from zoo.layers import naive_attention, onednn_available
from zoo.measure import timing
from zoo.models.lsnet import SKA
from zoo.models.shvit import SingleHeadAttention

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'tools'))


def test_flops_are_two_per_multiply_add():
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.Flatten(), nn.Linear(8 * 16, 5))
    x = torch.randn(1, 3, 4, 4)
    assert count_flops(model, x) == 2 * (8 * 16 * 27) + 2 * (8 * 16 * 5)


def test_cpu_fused_attention_is_counted():
    """SDPA on the CPU runs an op FlopCounterMode (torch 2.9) has no formula for: counted as QK^T and AV."""
    class Attend(nn.Module):
        def forward(self, q):
            return F.scaled_dot_product_attention(q, q, q)
    q = torch.randn(2, 3, 10, 8)  # (batch, heads, tokens, width)
    assert count_flops(Attend(), q) == 2 * (2 * 2 * 3 * 10 * 10 * 8)


def test_small_kernel_aggregation_is_counted():
    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.ska = SKA()

        def forward(self, x):
            return self.ska(x, torch.ones(1, 2, 9, 5, 5))
    assert count_flops(Wrap(), torch.randn(1, 8, 5, 5)) == 2 * 8 * 25 * 9


def test_lsnet_t_flops_match_the_papers_count():
    # the paper reports 0.3G multiply-adds for LSNet-T at 224 px
    flops = count_flops(zoo.create_model('lsnet_t').eval(), torch.randn(1, 3, 224, 224))
    assert 0.28e9 <= flops / 2 <= 0.33e9


@pytest.mark.usefixtures('ratios_of_medians')
def test_benchmark_rows_and_tables():
    rows = benchmark(['lsnet_t'], compare=['resnet10t'], img_size=64, batch_size=2, threads=1, warmup=1,
                     repeats=2)
    assert [(r.model, r.form) for r in rows] == [('lsnet_t', 'train'), ('lsnet_t', 'deploy'), ('resnet10t', 'timm')]
    train, deploy, peer = rows
    assert deploy.params < train.params and deploy.latency_ratio == train.latency_ms / deploy.latency_ms
    assert peer.latency_ratio == peer.latency_ms / deploy.latency_ms
    assert all(r.latency_ms > 0 and r.throughput > 0 and r.gflops > 0 for r in rows)
    md = to_markdown(rows)
    assert md.count('\n') == 4 and '| lsnet_t | deploy |' in md
    parsed = list(csv.DictReader(io.StringIO(to_csv(rows))))
    assert [r['form'] for r in parsed] == ['train', 'deploy', 'timm']


@pytest.mark.usefixtures('ratios_of_medians')
def test_timm_peers_are_paired_with_their_zoo_model():
    rows = benchmark(['inceptionnext_atto', 'fasternet_t0'], forms=['deploy'], timm_peers=True, img_size=64,
                     batch_size=2, threads=1, warmup=1, repeats=2)
    assert [(r.model, r.form) for r in rows] == [
        ('inceptionnext_atto', 'deploy'), ('inception_next_atto', 'timm'),
        ('fasternet_t0', 'deploy'), ('fasternet_t0', 'timm')]
    for zoo_row, peer in (rows[:2], rows[2:]):
        assert peer.latency_ratio == peer.latency_ms / zoo_row.latency_ms
        assert peer.throughput_ratio == pytest.approx(zoo_row.throughput / peer.throughput, rel=1e-12)
        assert peer.params > zoo_row.params  # the deploy form has folded its norms away
    # the fused kernels are invisible to a FLOP counter, so the deploy form falls back to counted ops
    assert abs(rows[2].gflops - rows[3].gflops) / rows[3].gflops < 0.02


@pytest.mark.usefixtures('ratios_of_medians')
def test_unfused_form_and_timm_peer_in_its_deploy_form():
    rows = benchmark(['shvit_s1'], forms=['unfused', 'deploy'], timm_peers=True, img_size=64, batch_size=2,
                     threads=1, warmup=1, repeats=2)
    assert [(r.model, r.form) for r in rows] == [('shvit_s1', 'unfused'), ('shvit_s1', 'deploy'), ('shvit_s1', 'timm')]
    unfused, deploy, peer = rows
    assert deploy.latency_ratio == unfused.latency_ms / deploy.latency_ms
    # timm's SHViT, fused by timm, keeps the group norms' affine maps that the zoo folds into the qkv convs; the
    # zoo's deploy qkv holds q and k zero-padded from qk_dim to pdim (weight rows and biases)
    model = zoo.create_model('shvit_s1')
    norm_affine = sum(m.weight.numel() * 2 for m in model.modules() if isinstance(m, torch.nn.GroupNorm))
    padding = sum(2 * (m.pdim - m.qk_dim) * (m.pdim + 1) for m in model.modules()
                  if isinstance(m, SingleHeadAttention))
    assert norm_affine > 0 and padding > 0
    assert deploy.params - peer.params == padding - norm_affine


@pytest.mark.usefixtures('ratios_of_medians')
def test_channels_last_peer_form_is_paired_and_computes_the_same_outputs():
    rows = benchmark(['shvit_s1'], forms=['deploy'], timm_peers=True, peer_forms=('timm', 'timm-cl'), img_size=64,
                     batch_size=2, threads=1, warmup=1, repeats=2, memory=False)
    assert [(r.model, r.form) for r in rows] == [('shvit_s1', 'deploy'), ('shvit_s1', 'timm'), ('shvit_s1', 'timm-cl')]
    deploy, _, peer = rows
    assert peer.latency_ratio == peer.latency_ms / deploy.latency_ms
    assert peer.reference == 'shvit_s1 [deploy, eager] vs this'
    model = randomize_norms(timm.create_model('shvit_s1')).eval()
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        want = model(x)
        wrapped = ChannelsLast(model)
        assert all(p.is_contiguous(memory_format=torch.channels_last) for p in wrapped.parameters() if p.ndim == 4)
        torch.testing.assert_close(wrapped(x), want, rtol=0, atol=1e-5)


def test_unfused_computes_the_same_outputs():
    model = zoo.reparameterize(randomize_norms(zoo.create_model('biformer_t')))
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        torch.testing.assert_close(Unfused(model)(x), model(x), rtol=0, atol=1e-4)
    assert torch.nn.functional.scaled_dot_product_attention is not naive_attention  # restored


def test_unchecked_form_is_the_deploy_form_without_nan_propagation():
    """The benchmark's peer for the cost of keeping NaN: on a clean input it computes what the deploy form
    does; inside it, SHViT's fused ReLU turns a NaN input into a number, which the deploy form never does."""
    deploy = zoo.reparameterize(randomize_norms(zoo.create_model('shvit_s1')).eval())
    unchecked = build_in_form('shvit_s1', 'unchecked')
    unchecked.model.load_state_dict(deploy.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(unchecked(x), deploy(x), rtol=1e-5, atol=1e-5)
        x[0] = float('nan')
        assert torch.isfinite(unchecked(x)[0]).all()  # what the check prevents
        assert not torch.isfinite(deploy(x)[0]).any()  # and, outside the form, prevents again


@pytest.mark.usefixtures('ratios_of_medians')
def test_runtimes_onnx_rows_and_peer_ratios_within_a_runtime():
    rows = benchmark(['shvit_s1'], compare=['resnet10t'], forms=['deploy'], runtimes=['eager', 'onnx'], img_size=64,
                     batch_size=2, threads=1, warmup=1, repeats=2)
    assert [(r.model, r.form, r.runtime) for r in rows] == [
        ('shvit_s1', 'deploy', 'eager'), ('shvit_s1', 'deploy', 'onnx'),
        ('resnet10t', 'timm', 'eager'), ('resnet10t', 'timm', 'onnx')]
    eager, onnx, peer_eager, peer_onnx = rows
    assert onnx.params == eager.params and onnx.gflops == eager.gflops
    assert onnx.latency_ratio == eager.latency_ms / onnx.latency_ms
    # a peer is put against the zoo deploy form in its own runtime
    assert peer_onnx.latency_ratio == peer_onnx.latency_ms / onnx.latency_ms
    assert peer_eager.latency_ratio == peer_eager.latency_ms / eager.latency_ms
    # peak memory is counted for eager PyTorch only; achieved GFLOP/s is FLOPs x throughput, against the peak
    assert eager.peak_mem_mb > 0 and onnx.peak_mem_mb is None
    for r in rows:
        assert abs(r.gflops_per_s - r.gflops * r.throughput) < 1e-9 * r.gflops_per_s
        assert 0 < r.peak_fraction and abs(r.gflops_per_s / r.peak_fraction - gemm_peak('cpu', threads=1)) < 1e-6
    assert to_markdown(rows).count('| onnx |') == 2


@pytest.mark.usefixtures('ratios_of_medians')
def test_a_runtime_that_fails_one_model_costs_that_row_only(monkeypatch, capsys):
    """A runtime failing a model (here bf16 refusing shvit_s1) gives a row that names the error, with no figures
    and no ratios; the other rows are measured and keep their ratios. A zoo form failing in eager stops the run."""
    bench = sys.modules['zoo.measure.benchmark']  # (zoo.measure.benchmark is also the function's name)
    real = bench.in_runtime

    failing = ['bf16']

    def in_runtime(model, runtime, *args):
        fn = real(model, runtime, *args)
        if runtime not in failing or type(model).__name__ != 'SHViT':
            return fn

        def refuse(x):
            raise RuntimeError('no bf16 kernel for this op\nsecond line')
        return refuse
    monkeypatch.setattr(bench, 'in_runtime', in_runtime)
    rows = benchmark(['shvit_s1'], compare=['resnet10t'], forms=['deploy'], runtimes=['eager', 'bf16'],
                     img_size=64, batch_size=2, threads=1, warmup=1, repeats=2, memory=False)
    assert [(r.model, r.runtime, r.error) for r in rows] == [
        ('shvit_s1', 'eager', ''), ('shvit_s1', 'bf16', 'RuntimeError: no bf16 kernel for this op'),
        ('resnet10t', 'eager', ''), ('resnet10t', 'bf16', '')]
    eager, failed, peer_eager, peer_bf16 = rows
    assert math.isnan(failed.latency_ms) and math.isnan(failed.throughput) and failed.latency_ratio is None
    assert failed.params == eager.params and failed.gflops == eager.gflops
    assert peer_eager.latency_ratio == peer_eager.latency_ms / eager.latency_ms
    assert peer_bf16.latency_ratio is None  # its zoo reference was not measured
    assert 'shvit_s1 [deploy, bf16] could not be measured: RuntimeError' in capsys.readouterr().err
    assert '| not measured: RuntimeError: no bf16 kernel for this op |' in to_markdown(rows)
    assert math.isnan(failed.gflops_per_s) and math.isnan(failed.peak_fraction)
    back = from_csv(to_csv(rows))
    assert [r.error for r in back] == [r.error for r in rows] and math.isnan(back[1].latency_ms)
    assert back[0].latency_ms == eager.latency_ms
    failing[:] = ['eager']  # the zoo's own form failing in eager PyTorch is a bug to see: the run stops
    with pytest.raises(RuntimeError, match='no bf16 kernel'):
        benchmark(['shvit_s1'], forms=['deploy'], img_size=64, batch_size=2, threads=1, warmup=1, repeats=2,
                  memory=False)


def test_csv_round_trip_keeps_types():
    rows = [BenchmarkRow('a', 'deploy', 10, 0.5, 64, 1.5, 100.0, 4, runtime='onnx', peak_mem_mb=None,
                         latency_ratio=2.0, reference='x'),
            BenchmarkRow('b', 'timm', 11, 0.25, 64, 2.5, 50.0, 4, peak_mem_mb=3.5, paired_with='a')]
    assert from_csv(to_csv(rows)) == rows


def test_peak_memory_counts_live_activations():
    x = torch.randn(256, 1024)  # 1 MiB

    def fn(t):
        a = t * 2  # 1 MiB live
        b = a + 1  # 2 MiB live
        del a
        c = b.view(-1)  # a view holds no new memory
        d = torch.cat([b, c.view_as(b)])  # 2 MiB more: 3 MiB live at the peak
        del b, c
        return d.relu_()  # in place
    assert peak_memory(fn, x) == 3 * 2 ** 20


def test_gemm_peak_is_a_plausible_rate():
    peak = gemm_peak('cpu', threads=1, n=256)
    assert 0.1 < peak < 1e4  # GFLOP/s


def test_gemm_peak_takes_the_fastest_library(monkeypatch):
    """Each library's product is a @ b, and the peak is the faster one's rate: on a CPU where oneDNN's GEMM
    doubles MKL's, a peak from torch.mm alone let the deploy forms reach 140% of it."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(96, 96, generator=g), torch.randn(96, 96, generator=g)
    products = timing.gemm_products(a, b)
    assert list(products) == (['torch.mm', 'onednn'] if onednn_available() else ['torch.mm'])
    for product in products.values():
        torch.testing.assert_close(product(), a @ b, rtol=1e-5, atol=1e-4)
    # two stand-ins, 40 ms and 1 ms a product: the peak is the fast one's (2 n^3 FLOPs in at least 1 ms)
    monkeypatch.setattr(timing, 'gemm_products', lambda a, b: {'slow': lambda: time.sleep(0.04),
                                                               'fast': lambda: time.sleep(0.001)})
    peak = gemm_peak('cpu', threads=1, n=97, repeats=1)
    assert 2 * 97 ** 3 / 0.04 / 1e9 * 5 < peak <= 2 * 97 ** 3 / 0.001 / 1e9


def test_benchmark_rejects_what_it_cannot_measure():
    with pytest.raises(ValueError, match='unknown forms / runtimes'):
        benchmark(['lsnet_t'], runtimes=['tensorrt'])
    with pytest.raises(ValueError, match='unknown forms / runtimes'):
        benchmark(['lsnet_t'], peer_forms=['timm-nhwc'])
    with pytest.raises(ValueError, match='amp is for a GPU'):
        benchmark(['lsnet_t'], amp=torch.float16)
    with pytest.raises(ValueError, match=r"runtimes \['onnx'\] are measured on the CPU only"):
        benchmark(['lsnet_t'], runtimes=['onnx'], device='cuda')


def test_cli_bare_compare_means_the_default_peers_and_markdown_has_the_command(tmp_path, monkeypatch):
    import benchmark as cli  # tools/benchmark.py
    assert cli.parse_args(['lsnet_t', '--compare']).compare == []
    seen = {}

    def fake(models, compare, **kwargs):
        seen.update(models=models, compare=compare, **kwargs)
        return [BenchmarkRow('lsnet_t', 'deploy', 1, 0.1, 64, 1.0, 10.0, 2)]
    monkeypatch.setattr(cli, 'benchmark', fake)
    out = tmp_path / 'b.md'
    monkeypatch.setattr(sys, 'argv', ['tools/benchmark.py', 'lsnet_*', '--compare', '--markdown', str(out)])
    cli.main(sys.argv[1:] + [])
    assert sorted(seen['models']) == ['lsnet_b', 'lsnet_s', 'lsnet_t'] and tuple(seen['compare']) == PEERS
    assert seen['batch_size'] == 16 and seen['amp'] is None and seen['progress'] is True
    text = out.read_text()
    assert text.startswith("Command: `python tools/benchmark.py 'lsnet_*' --compare --markdown ")
    assert '| lsnet_t | deploy | eager |' in text
    assert f'CPU ({cpu_name()}), 2 threads, fp32' in text and 'the faster of torch.mm and oneDNN' in text
    # a run with another allocator setting says so in its header
    monkeypatch.setenv('GLIBC_TUNABLES', 'glibc.malloc.mmap_threshold=4294967295')
    monkeypatch.delenv('LD_PRELOAD', raising=False)
    cli.main(sys.argv[1:])
    assert f'CPU ({cpu_name()}), 2 threads, GLIBC_TUNABLES=glibc.malloc.mmap_threshold=4294967295, fp32' \
        in out.read_text()


def test_paired_ratio_is_the_median_of_per_round_ratios():
    assert timing.paired_ratio([1, 2, 10], [2, 20, 5]) == 0.5  # the ratio of the medians: 2 / 5
    with pytest.raises(ValueError, match='same rounds, got 3 and 2'):
        timing.paired_ratio([1, 2, 3], [1, 2])


def test_speed_ups_are_paired_within_each_round(monkeypatch):
    """A machine that slows down part-way (other work on it) moves both rows of a round alike: the speed-up is
    the median of the rounds' ratios, not the ratio of two medians taken from different rounds."""
    bench = importlib.import_module('zoo.measure.benchmark')  # the module: zoo.measure.benchmark is its function
    train = [2.0, 2.0, 2.0, 10.0, 10.0]  # the train form takes twice the deploy form's time in every round but
    deploy = [1.0, 1.0, 5.0, 5.0, 5.0]   # the third, where the slow spell began between the two calls

    def times(fns, x, warmup, repeats):
        assert len(fns) == 2
        return [train[:repeats], deploy[:repeats]]
    monkeypatch.setattr(bench, 'interleaved_times', times)
    rows = benchmark(['fasternet_t0'], forms=['train', 'deploy'], img_size=32, batch_size=2, threads=1, warmup=0,
                     repeats=5, memory=False)
    assert [(r.form, r.latency_ms) for r in rows] == [('train', 2e3), ('deploy', 5e3)]  # medians: 0.4x apart
    assert rows[1].latency_ratio == 2.0 and rows[1].throughput_ratio == 2.0


def test_only_rows_timed_in_the_same_rounds_are_paired(monkeypatch):
    """A --compare model is timed in a group of its own: set against the first zoo model by the ratio of the
    medians, not round by round against rounds it did not share (nor do two rows of one name and form in two
    groups share their times)."""
    bench = importlib.import_module('zoo.measure.benchmark')
    groups = iter([[[1.0, 1.0, 4.0], [2.0, 2.0, 8.0]], [[1.0, 1.0, 4.0], [2.0, 2.0, 8.0]],  # zoo deploy, timm
                   [[9.0, 3.0, 3.0]], [[9.0, 3.0, 3.0]]])  # the same timm model, --compare: its own group

    def times(fns, x, warmup, repeats):
        got = next(groups)
        assert len(got) == len(fns)
        return [t[:repeats] for t in got]
    monkeypatch.setattr(bench, 'interleaved_times', times)
    rows = benchmark(['shvit_s1'], compare=['shvit_s1'], forms=['deploy'], timm_peers=True, img_size=32,
                     batch_size=2, threads=1, warmup=0, repeats=3, memory=False)
    deploy, peer, compared = rows
    assert (peer.form, compared.form, peer.paired_with, compared.paired_with) == ('timm', 'timm', 'shvit_s1', 'shvit_s1')
    assert peer.latency_ratio == 2.0  # its own rounds, paired
    assert compared.latency_ratio == 3.0 / 1.0  # medians: 3 ms against 1 ms


def test_a_run_stopped_part_way_keeps_the_rows_measured(tmp_path, monkeypatch):
    """A run killed at a time limit (tools/gpu_check.sh's steps) wrote nothing: its files came only at the end."""
    import benchmark as cli  # tools/benchmark.py

    def stopped(models, compare, on_group, **kwargs):
        on_group([BenchmarkRow('lsnet_t', 'deploy', 1, 0.1, 64, 1.0, 10.0, 2)])
        raise KeyboardInterrupt  # the run stops before the second model
    monkeypatch.setattr(cli, 'benchmark', stopped)
    md, out = tmp_path / 'b.md', tmp_path / 'b.csv'
    with pytest.raises(KeyboardInterrupt):
        cli.main(['lsnet_t', 'shvit_s1', '--markdown', str(md), '--csv', str(out)])
    assert '| lsnet_t | deploy | eager |' in md.read_text()
    assert '**Unfinished**: the rows of 1 of 2 models' in md.read_text()
    assert [(r.model, r.form) for r in from_csv(out.read_text())] == [('lsnet_t', 'deploy')]


def test_each_finished_group_is_handed_over_with_its_ratios():
    seen = []
    rows = benchmark(['fasternet_t0', 'shvit_s1'], forms=['train', 'deploy'], img_size=32, batch_size=2, threads=1,
                     warmup=0, repeats=1, memory=False, on_group=seen.append)
    assert [[(r.model, r.form) for r in group] for group in seen] == [
        [('fasternet_t0', 'train'), ('fasternet_t0', 'deploy')],
        [('fasternet_t0', 'train'), ('fasternet_t0', 'deploy'), ('shvit_s1', 'train'), ('shvit_s1', 'deploy')]]
    assert seen[0][1].latency_ratio == rows[1].latency_ratio is not None
    assert seen[-1] == rows and seen[-1] is not rows


@pytest.mark.parametrize('arg,value', [('--repeats', '0'), ('--batch-size', '0'), ('--img-size', '-1'),
                                       ('--threads', '0'), ('--warmup', '-1')])
def test_cli_refuses_counts_that_time_nothing(arg, value, capsys):
    """--repeats 0 gave a StatisticsError after the models were built, --batch-size 0 silently became 16."""
    import benchmark as cli  # tools/benchmark.py
    with pytest.raises(SystemExit):
        cli.parse_args(['lsnet_t', arg, value])
    assert f'{arg} must be >=' in capsys.readouterr().err


@pytest.mark.usefixtures('ratios_of_medians')
def test_training_step_rows_pair_zoo_train_form_with_the_timm_peer():
    rows = benchmark(['fasternet_t0'], forms=['deploy'], timm_peers=True, img_size=32, batch_size=4, threads=1,
                     warmup=1, repeats=2, memory=False, channels_last=True, train_step=True)
    steps = [r for r in rows if r.runtime == 'train-step']
    assert [(r.model, r.form) for r in steps] == [('fasternet_t0', 'train'), ('fasternet_t0', 'timm')]
    zoo_row, peer = steps
    assert zoo_row.throughput == 4 / (zoo_row.latency_ms / 1e3) and zoo_row.batch_size == 4
    assert zoo_row.params == peer.params  # the same architecture, both unfolded for training
    assert peer.throughput_ratio == pytest.approx(zoo_row.throughput / peer.throughput, rel=1e-12) and peer.paired_with == 'fasternet_t0'
    assert zoo_row.latency_ratio is None  # not put against the inference rows
    assert '(b4, training)' in to_markdown(rows)


def test_training_step_updates_the_weights():
    from zoo.measure.timing import TrainingStep
    torch.manual_seed(0)
    model = zoo.create_model('fasternet_t0', num_classes=5)
    x = torch.randn(2, 3, 32, 32)
    before = [p.detach().clone() for p in model.parameters()]
    step = TrainingStep(model, x)
    loss = step(x)
    assert model.training and torch.isfinite(loss) and loss.requires_grad is False
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_gpu_check_script_measures_two_variants_of_every_family_with_valid_commands():
    """tools/gpu_check.sh runs only on a GPU machine: its benchmark commands are checked here (the flags
    parse, every model exists, each family's smallest and one more variant are measured)."""
    import re
    import shlex
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'tools'))
    import benchmark as tool
    text = open(os.path.join(os.path.dirname(__file__), '..', 'tools', 'gpu_check.sh')).read().replace('\\\n', ' ')
    models = re.search(r'MODELS="([^"]+)"', text).group(1).split()
    commands = [line.split('tools/benchmark.py', 1)[1] for line in text.splitlines() if 'tools/benchmark.py' in line]
    assert len(commands) == 2
    for command in commands:
        args = tool.parse_args(shlex.split(command.replace('$MODELS', ' '.join(models)).replace('$OUT_DIR', '/tmp')))
        assert args.device == 'cuda' and args.timm_peers and args.channels_last
        assert tool.expand(args.models) == args.models
    for family in zoo.families():
        mine = [m for m in models if zoo.family_of(m) is family]
        assert len(mine) == 2 and mine[0] in SMALLEST, (family.display, mine)
