"""Classification training (tools/train.py) and evaluation (tools/validate.py) on a real, small dataset:
scikit-learn's handwritten digits written as an image folder (shipped with the package, never downloaded)."""
import csv
import errno
import importlib
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
import yaml

import zoo
from zoo.train import (ConfigError, DatasetError, OutputFolderError, load_config, load_training_checkpoint,
                       make_digits_imagefolder, parse_train_args, predict, save_training_checkpoint, train,
                       validate)
from zoo.train.engine import _output_lock

ROOT = Path(__file__).resolve().parents[1]
DIGITS_RECIPE = ROOT / 'configs' / 'digits' / 'lsnet_t.yaml'


@pytest.fixture(scope='module')
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp('digits')
    make_digits_imagefolder(root, size=32)
    return root


def _args(digits, output, *extra):
    return parse_train_args(['--config', str(DIGITS_RECIPE), '--data-dir', str(digits), '--output', str(output),
                             '--no-progress', '--workers', '0', *extra])


def _run(cmd, env_extra=None, **kw):
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1', **(env_extra or {}))
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, **kw)


@pytest.fixture(scope='module')
def small_digits(tmp_path_factory):
    """The digits at 16 px, 16 training and 5 validation images per class: an epoch takes a few seconds."""
    root = tmp_path_factory.mktemp('small_digits')
    make_digits_imagefolder(root, size=16)
    for split, keep in (('train', 16), ('val', 5)):
        for folder in (root / split).iterdir():
            for path in sorted(folder.iterdir())[keep:]:
                path.unlink()
    return root


def _small_args(data, output, *extra):
    return _args(data, output, '--epochs', '1', '--img-size', '16', '--batch-size', '32', *extra)


@pytest.fixture(scope='module')
def small_run(small_digits, tmp_path_factory):
    """The output folder of a finished one-epoch run on ``small_digits`` (copy it before changing it)."""
    output = tmp_path_factory.mktemp('small_run')
    train(_small_args(small_digits, output))
    return output


def _copy(src, dst):
    shutil.copytree(src, dst)
    return dst


# ------------------------------------------------------------------------------------------ data and recipes

def test_digits_imagefolder(tmp_path):
    counts = make_digits_imagefolder(tmp_path, size=24)
    assert counts == {'train': 1347, 'val': 450}  # all 1797 images, a stratified quarter held out
    for split, n in counts.items():
        classes = sorted(p.name for p in (tmp_path / split).iterdir())
        assert classes == [str(d) for d in range(10)]
        files = list((tmp_path / split).glob('*/*.png'))
        assert len(files) == n
        per_class = [len(list((tmp_path / split / c).iterdir())) for c in classes]
        assert max(per_class) - min(per_class) <= (3 if split == 'val' else 8)
    from PIL import Image
    img = Image.open(next((tmp_path / 'train' / '3').iterdir()))
    assert img.size == (24, 24) and img.mode == 'RGB'
    train_names = {p.name for p in (tmp_path / 'train').glob('*/*.png')}
    assert not train_names & {p.name for p in (tmp_path / 'val').glob('*/*.png')}
    assert make_digits_imagefolder(tmp_path, size=24) == counts  # idempotent


def test_recipe_bases_and_overrides(tmp_path):
    (tmp_path / '_base_').mkdir()
    (tmp_path / '_base_' / 'family.yaml').write_text('lr_base: 0.004\nlr_base_size: 4096\nepochs: 300\n'
                                                     'weight_decay: 0.05\n')
    (tmp_path / 'm.yaml').write_text('_base_: _base_/family.yaml\nmodel: convnext_tiny\ndrop_path: 0.1\n'
                                     'epochs: 100\n')
    assert load_config(tmp_path / 'm.yaml') == {'lr_base': 0.004, 'lr_base_size': 4096, 'epochs': 100,
                                                'weight_decay': 0.05, 'model': 'convnext_tiny', 'drop_path': 0.1}
    args = parse_train_args(['--config', str(tmp_path / 'm.yaml'), '--epochs', '7'])
    assert (args.model, args.epochs, args.drop_path, args.lr_base) == ('convnext_tiny', 7, 0.1, 0.004)


def test_recipe_errors(tmp_path):
    (tmp_path / 'bad.yaml').write_text('model: lsnet_t\nlearning_rate: 0.1\n')
    with pytest.raises(ConfigError, match='unknown options: learning_rate'):
        parse_train_args(['--config', str(tmp_path / 'bad.yaml')])
    (tmp_path / 'a.yaml').write_text('_base_: b.yaml\n')
    (tmp_path / 'b.yaml').write_text('_base_: a.yaml\n')
    with pytest.raises(ConfigError, match='includes itself'):
        load_config(tmp_path / 'a.yaml')
    with pytest.raises(ConfigError, match='not found'):
        load_config(tmp_path / 'missing.yaml')


def test_every_model_has_an_imagenet_recipe():
    folder = ROOT / 'configs' / 'imagenet'
    recipes = {p.stem: p for p in folder.glob('*.yaml')}
    assert set(zoo.list_models()) <= set(recipes), sorted(set(zoo.list_models()) - set(recipes))
    for name, path in recipes.items():
        args = parse_train_args(['--config', str(path)])  # only known options
        name = name.removesuffix('_distill')  # a distilled model's recipe: the model's, plus a teacher
        assert args.model == name and zoo.list_models(name) == [name]
        assert args.epochs > 0 and args.lr_base > 0 and args.batch_size > 0 and args.img_size in (224, 256, 384)
    # recipes state the authors' values: e.g. LSNet-T 1e-3 per 512 images at a global batch of 2048 (AGC 0.02,
    # EMA 0.99996, repeated augmentation); LITv2's warmup/min lr scaled as its code does at batch 1024
    lsnet = parse_train_args(['--config', str(folder / 'lsnet_t.yaml')])
    assert (lsnet.lr_base, lsnet.lr_base_size, lsnet.batch_size * 8, lsnet.weight_decay) == (1e-3, 512, 2048, 0.025)
    assert (lsnet.clip_grad, lsnet.clip_mode, lsnet.model_ema_decay, lsnet.aug_repeats) == (0.02, 'agc', 0.99996, 3)
    litv2 = parse_train_args(['--config', str(folder / 'litv2_s.yaml')])
    assert (litv2.warmup_lr, litv2.min_lr, litv2.drop_path) == pytest.approx((1e-6, 1e-5, 0.2))
    # the distilled LSNets: DeiT's hard distillation from its RegNetY-16GF, alpha 0.5, on the plain recipe
    assert {p.stem for p in folder.glob('*_distill.yaml')} == {'lsnet_t_distill', 'lsnet_s_distill', 'lsnet_b_distill'}
    for size in 'tsb':
        plain, distilled = (vars(parse_train_args(['--config', str(folder / f'lsnet_{size}{tail}.yaml')]))
                            for tail in ('', '_distill'))
        teacher = {k: v for k, v in distilled.items() if plain[k] != v}
        assert teacher == {'distill_model': 'regnety_160.deit_in1k', 'distill_type': 'token', 'distill_target': 'hard',
                           'task_loss_weight': 0.5, 'config': distilled['config']}


def test_initial_checkpoint_with_another_class_count(tmp_path):
    from zoo.train.engine import load_initial_checkpoint
    source = zoo.create_model('fasternet_t0', num_classes=1000)
    torch.save(source.state_dict(), tmp_path / 'in1k.pth')
    model = zoo.create_model('fasternet_t0', num_classes=10)
    head_before = model.head.fc.weight.clone() if hasattr(model.head, 'fc') else None
    load_initial_checkpoint(model, str(tmp_path / 'in1k.pth'))
    sd, src = model.state_dict(), source.state_dict()
    kept = [k for k in sd if sd[k].shape == src[k].shape]
    assert all(torch.equal(sd[k], src[k]) for k in kept)
    assert len(kept) == len(sd) - 2  # all but the classifier weight and bias
    if head_before is not None:
        assert torch.equal(model.head.fc.weight, head_before)
    other = zoo.create_model('lsnet_t', num_classes=10)
    with pytest.raises(zoo.CheckpointMismatchError, match='nothing was loaded'):
        load_initial_checkpoint(other, str(tmp_path / 'in1k.pth'))


# ------------------------------------------------------------------------------------------ training

@pytest.mark.slow
def test_lsnet_t_learns_digits(digits, tmp_path):
    """The acceptance run: lsnet_t from scratch to >= 90% top-1 on the held-out digits."""
    result = train(_args(digits, tmp_path))
    assert result['eval']['images'] == 450
    assert result['best']['metric'] >= 90.0, result
    rows = list(csv.DictReader(open(tmp_path / 'summary.csv')))
    assert len(rows) == load_config(DIGITS_RECIPE)['epochs']
    assert all(math.isfinite(float(r['train_loss'])) for r in rows)
    assert float(rows[-1]['train_loss']) < float(rows[0]['train_loss'])
    state = load_training_checkpoint(str(tmp_path / 'model_best.pth'))
    assert state['metrics']['top1'] == result['best']['metric']
    # validate.py: identical accuracy in train and deploy form, from the training checkpoint
    train_form = validate(str(digits), checkpoint=str(tmp_path / 'model_best.pth'), workers=0)
    deploy_form = validate(str(digits), checkpoint=str(tmp_path / 'model_best.pth'), workers=0, deploy=True)
    assert train_form['top1'] == deploy_form['top1'] == pytest.approx(result['best']['metric'])
    assert train_form['top5'] == deploy_form['top5']
    assert abs(train_form['loss'] - deploy_form['loss']) < 1e-4
    # predict.py names each image's class by the checkpoint's class names: over the folder, validate's top-1
    results = predict([str(digits / 'val')], checkpoint=str(tmp_path / 'model_best.pth'), topk=1, batch_size=64)
    hits = sum(r['top'][0]['label'] == Path(r['image']).parent.name for r in results)
    assert len(results) == 450 and 100 * hits / len(results) == pytest.approx(train_form['top1'])
    # the same weights as a plain zoo file and in the authors' layout give the same accuracy
    model = zoo.create_model('lsnet_t', num_classes=10)
    zoo.load_checkpoint(model, state['state_dict'])
    torch.save(model.state_dict(), tmp_path / 'plain.pth')
    plain = validate(str(digits), 'lsnet_t', str(tmp_path / 'plain.pth'), num_classes=10, img_size=32,
                     crop_pct=1.0, workers=0)
    assert plain['top1'] == train_form['top1']


@pytest.mark.slow
def test_training_options_run(small_digits, tmp_path):
    """bf16 autocast, gradient checkpointing, accumulation, mixup/cutmix, EMA, repeated augmentation, AGC
    clipping and TensorBoard logs together for one epoch; then channels-last storage (in fp32: with bf16 on CPU
    it gave exploding gradients, docs/training.md). Three training images a class (bf16 on a CPU without bf16
    instructions is ~20x slower than fp32): what is checked is that the options run together and count their
    updates, not what they learn."""
    few = tmp_path / 'few'
    for split, keep in (('train', 3), ('val', 1)):
        for folder in sorted((small_digits / split).iterdir()):
            (few / split / folder.name).mkdir(parents=True)
            for path in sorted(folder.iterdir())[:keep]:
                shutil.copy(path, few / split / folder.name / path.name)
    result = train(_args(few, tmp_path / 'a', '--epochs', '1', '--warmup-epochs', '0', '--amp',
                         '--img-size', '16', '--grad-checkpointing', '--grad-accum-steps', '2', '--batch-size', '8',
                         '--mixup', '0.8',
                         '--cutmix', '1.0', '--model-ema', '--model-ema-decay', '0.9', '--aug-repeats', '2',
                         '--clip-grad', '0.02', '--clip-mode', 'agc', '--log-tensorboard'))
    rows = list(csv.DictReader(open(tmp_path / 'a' / 'summary.csv')))
    assert len(rows) == 1 and math.isfinite(float(rows[0]['train_loss']))
    assert {'eval_top1', 'eval_raw_top1'} <= set(rows[0])  # the EMA is evaluated, the raw model logged
    state = load_training_checkpoint(str(tmp_path / 'a' / 'last.pth'))
    from timm.data.distributed_sampler import RepeatAugSampler
    n_batches = len(RepeatAugSampler(range(30), num_replicas=1, rank=0, num_repeats=2)) // 8
    assert state['num_updates'] == math.ceil(n_batches / 2)  # every 2 batches one update, a last partial one
    assert not any(torch.equal(state['state_dict'][k], state['state_dict_ema'][k])
                   for k in state['state_dict'] if k.endswith('.weight') and 'bn' not in k)
    assert list((tmp_path / 'a' / 'tensorboard').glob('events.out.tfevents.*'))
    assert result['eval']['images'] == 10
    result = train(_small_args(few, tmp_path / 'b', '--channels-last', '--batch-size', '8'))
    assert math.isfinite(result['eval']['loss'])


def _kill_mid_epoch(cmd, epoch, batch):
    """Start ``cmd`` and SIGKILL it once it has logged ``epoch <epoch> batch <batch>/``."""
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONUNBUFFERED='1')
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if line.startswith(f'epoch {epoch} batch {batch}/'):
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, ''.join(seen[-20:])


@pytest.mark.slow
def test_resume_after_kill_gives_the_same_weights(small_digits, small_run, tmp_path):
    """A run killed in its second epoch and resumed ends with the weights, EMA weights, optimizer state and
    metrics of an uninterrupted run (small digits: five batches an epoch, one worker process). The run distils
    from a teacher (DeiT-style hard token distillation, as the distilled LSNets): the distillation head is saved
    and resumed with the rest, and a resume with other teacher weights is refused."""
    teacher = str(small_run / 'last.pth')
    options = ['--config', str(DIGITS_RECIPE), '--data-dir', str(small_digits), '--epochs', '2', '--img-size', '16',
               '--batch-size', '32', '--model-ema', '--workers', '1', '--no-progress', '--log-interval', '1',
               '--distill-model', 'lsnet_t', '--distill-checkpoint', teacher, '--distill-type', 'token',
               '--distill-target', 'hard', '--task-loss-weight', '0.5']
    common = [sys.executable, 'tools/train.py'] + options
    straight = _run(common + ['--output', str(tmp_path / 'a')], timeout=900)
    assert straight.returncode == 0, straight.stderr[-3000:]
    _kill_mid_epoch(common + ['--output', str(tmp_path / 'b')], epoch=1, batch=3)
    assert load_training_checkpoint(str(tmp_path / 'b' / 'last.pth'))['epoch'] == 0
    resumed = _run(common + ['--output', str(tmp_path / 'b'), '--resume', 'auto'], timeout=900)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert 'resumed from' in resumed.stdout + resumed.stderr
    a = load_training_checkpoint(str(tmp_path / 'a' / 'last.pth'))
    b = load_training_checkpoint(str(tmp_path / 'b' / 'last.pth'))
    assert a['epoch'] == b['epoch'] == 1 and a['num_updates'] == b['num_updates']
    assert 'head_dist.fc.weight' in a['state_dict'] and 'head_dist.fc.weight' in a['state_dict_ema']
    assert a['teacher'] == b['teacher'] == {'model': 'lsnet_t', 'checkpoint': teacher,
                                            'sha256': zoo.weights.sha256_of(teacher)}
    for key in ('state_dict', 'state_dict_ema'):
        for k, v in a[key].items():
            assert torch.equal(v, b[key][k]), f'{key}.{k} differs after resume'
    for sa, sb in zip(a['optimizer']['state'].values(), b['optimizer']['state'].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a['metrics'] == b['metrics']
    rows = list(csv.DictReader(open(tmp_path / 'b' / 'summary.csv')))
    assert all(math.isfinite(float(r['train_distill_loss'])) for r in rows)
    # the run's weights load, merged, into the model without a distillation head: what validate evaluates
    assert validate(str(small_digits), checkpoint=str(tmp_path / 'b' / 'last.pth'), img_size=16, workers=0,
                    use_ema=True)['top1'] == pytest.approx(b['metrics']['top1'])
    other = dict(load_training_checkpoint(teacher))
    other['state_dict'] = {k: v + 1 if v.is_floating_point() else v for k, v in other['state_dict'].items()}
    save_training_checkpoint(str(tmp_path / 'other.pth'), other)
    with pytest.raises(ValueError, match=r'--resume .*: the run distils from the teacher weights .*last.pth '
                                         r'\(SHA-256 [0-9a-f]{64}\), not from --distill-checkpoint .*other.pth'):
        train(parse_train_args(options + ['--output', str(tmp_path / 'b'), '--resume', 'auto',
                                          '--distill-checkpoint', str(tmp_path / 'other.pth')]))


@pytest.mark.slow
@pytest.mark.xdist_group('runs')
def test_two_process_torchrun(small_digits, small_run, tmp_path):
    """Two processes with half the batch each (the small digits, two epochs), distilling from a teacher (logit
    distillation; the teacher is not wrapped in DDP): each keeps its own RNG state, the two validation shards cover
    the split once, the losses are finite. (The accuracy bar is the
    single-process acceptance run's, test_lsnet_t_learns_digits.) The same command again, into the folder
    that now holds a run: only the main process locks and checks the output folder, and its refusal stops
    every process (no hang in the next collective)."""
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_port', '29631',
           'tools/train.py', '--config', str(DIGITS_RECIPE), '--data-dir', str(small_digits), '--output',
           str(tmp_path), '--workers', '0', '--no-progress', '--epochs', '2', '--img-size', '16', '--batch-size', '16',
           '--distill-model', 'lsnet_t', '--distill-checkpoint', str(small_run / 'last.pth')]
    out = _run(cmd, timeout=1800)
    assert out.returncode == 0, out.stderr[-3000:]
    rows = list(csv.DictReader(open(tmp_path / 'summary.csv')))
    assert rows and all(math.isfinite(float(r['train_loss'])) and math.isfinite(float(r['train_kd_loss']))
                        for r in rows)
    state = load_training_checkpoint(str(tmp_path / 'last.pth'))
    assert state['teacher']['model'] == 'lsnet_t'
    assert len(state['rng']) == 2  # both processes' RNG states are kept
    assert not torch.equal(state['rng'][0]['torch'], state['rng'][1]['torch'])
    assert state['metrics']['images'] == 50  # the two shards cover the split once
    assert '2 process(es)' in out.stdout + out.stderr
    assert state['world_size'] == 2
    again = _run(cmd, timeout=600)
    assert again.returncode != 0
    # the other process gets the main one's refusal (without it, it would wait in DDP's first collective)
    assert f'[rank1]: zoo.train.engine.OutputFolderError: output folder {tmp_path} holds a run' in again.stderr


def test_ddp_is_freed_while_the_process_group_lives(tmp_path):
    """A run takes DDP off its task and frees it before destroying the process group. Freed after, its reducer
    tore the group down with the GIL held, while Gloo's worker waited for the GIL: a finished two-process
    run hung at exit (seen once, in test_two_process_torchrun)."""
    import weakref
    import torch.distributed as dist
    from timm.task import ClassificationTask
    from zoo.train.engine import free_ddp
    dist.init_process_group('gloo', init_method=f'file://{tmp_path / "group"}', rank=0, world_size=1)
    try:
        model = torch.nn.Linear(4, 2)
        task = ClassificationTask(model, verbose=False).prepare_distributed()
        ddp = weakref.ref(task.trainable_module)
        assert isinstance(ddp(), torch.nn.parallel.DistributedDataParallel)
        free_ddp(task, 'trainable_module')
        assert task.trainable_module is model and ddp() is None
        free_ddp(task, 'trainable_module')  # a task not wrapped: unchanged
        assert task.trainable_module is model
    finally:
        dist.destroy_process_group()


# ------------------------------------------------------------------------------------------ bad input

def test_bad_resume_and_validate_inputs(digits, tmp_path):
    model = zoo.create_model('lsnet_t', num_classes=10)
    torch.save(model.state_dict(), tmp_path / 'weights.pth')
    with pytest.raises(ValueError, match='not a training checkpoint'):
        train(_args(digits, tmp_path / 'o', '--resume', str(tmp_path / 'weights.pth')))
    with pytest.raises(FileNotFoundError, match='not found'):
        train(_args(digits, tmp_path / 'o', '--resume', str(tmp_path / 'nope.pth')))
    with pytest.raises(zoo.CheckpointMismatchError, match='does not fit'):
        validate(str(digits), 'shvit_s1', str(tmp_path / 'weights.pth'), num_classes=10, workers=0)
    with pytest.raises(zoo.UnknownModelError):
        validate(str(digits), 'lsnet_xxl', workers=0)
    with pytest.raises(ValueError, match='name the model'):
        validate(str(digits), workers=0)


def test_bad_data_and_checkpoint_files(small_digits, small_run, tmp_path):
    """Missing data folders, truncated checkpoints and unreadable images are errors that name the argument
    and the file, raised before any work (nothing is written for a missing folder)."""
    with pytest.raises(DatasetError, match=rf'--data-dir {tmp_path / "nope"}: no such folder'):
        train(_small_args(tmp_path / 'nope', tmp_path / 'a'))
    with pytest.raises(DatasetError, match=r'--val-split nope: no folder .*nope \(--data-dir .* holds train, val\)'):
        train(_small_args(small_digits, tmp_path / 'a', '--val-split', 'nope'))
    assert not (tmp_path / 'a').exists()
    with pytest.raises(DatasetError, match=rf'--data-dir {tmp_path / "nope"}: no such folder'):
        validate(str(tmp_path / 'nope'), checkpoint=str(small_run / 'last.pth'), workers=0)
    truncated = tmp_path / 'truncated.pth'
    truncated.write_bytes((small_run / 'last.pth').read_bytes()[:4096])
    with pytest.raises(zoo.CheckpointError, match=rf'--resume {truncated}: .*truncated or corrupt'):
        train(_small_args(small_digits, tmp_path / 'b', '--resume', str(truncated)))
    with pytest.raises(zoo.CheckpointError, match=rf'--checkpoint {truncated}: .*corrupt or truncated'):
        validate(str(small_digits), checkpoint=str(truncated), workers=0)
    data = _copy(small_digits, tmp_path / 'data')
    (data / 'val' / '4' / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n not an image')
    with pytest.raises(DatasetError, match=r'val/4/broken.png: cannot be read as an image'):
        validate(str(data), checkpoint=str(small_run / 'last.pth'), workers=0)
    for bad in (['--epochs', '0'], ['--batch-size', '-1'], ['--resume-changed']):
        with pytest.raises(SystemExit):
            _small_args(small_digits, tmp_path / 'c', *bad)


# ------------------------------------------------------------------------------------------ one run per folder

def test_finished_run_is_not_overwritten(small_digits, small_run, tmp_path):
    """A second run into a folder that holds one is refused and leaves its files as they were; --overwrite
    starts over (one header in summary.csv, one run in the log)."""
    output = _copy(small_run, tmp_path / 'run')
    before = {name: (output / name).read_bytes() for name in ('last.pth', 'model_best.pth', 'summary.csv')}
    with pytest.raises(OutputFolderError, match=rf'{output} holds a run already .*--resume auto.*--overwrite'):
        train(_small_args(small_digits, output))
    assert before == {name: (output / name).read_bytes() for name in before}
    train(_small_args(small_digits, output, '--overwrite', '--seed', '1'))
    rows = list(csv.reader(open(output / 'summary.csv')))
    assert len(rows) == 2 and rows[0][0] == 'epoch'
    assert (output / 'log.txt').read_text().count('1 process(es)') == 1
    assert (output / 'last.pth').read_bytes() != before['last.pth']
    with pytest.raises(SystemExit):
        _small_args(small_digits, output, '--overwrite', '--resume', 'auto')


def test_output_folder_is_locked(small_digits, tmp_path):
    """A run into a folder that another process is training into stops at once, naming the folder and the
    other process; nothing is written."""
    output = tmp_path / 'run'
    output.mkdir()
    holder = subprocess.Popen(
        [sys.executable, '-c', 'import fcntl, os, sys, time; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT); '
         'fcntl.lockf(fd, fcntl.LOCK_EX); os.write(fd, b"%d" % os.getpid()); print("locked", flush=True); '
         'time.sleep(60)', str(output / 'train.lock')], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == 'locked'
        with pytest.raises(OutputFolderError, match=rf'{output} is in use by another training run \(pid {holder.pid}'):
            train(_small_args(small_digits, output))
    finally:
        holder.kill()
        holder.wait()
    assert sorted(p.name for p in output.iterdir()) == ['train.lock']


def test_lock_ends_with_its_run_not_with_the_run_s_children(tmp_path):
    """A run killed while a data-loader worker it forked still lives (the worker inherits the run's open lock
    file, and outlives a SIGKILL by a moment) leaves its folder free at once: the lock is the process's."""
    read_end, write_end = os.pipe()
    run = os.fork()
    if run == 0:  # the run: takes the lock, forks a worker that outlives it, and is killed
        try:
            with _output_lock(str(tmp_path)):
                worker = os.fork()
                if worker == 0:
                    time.sleep(30)
                    os._exit(0)
                os.write(write_end, b'%d' % worker)
                os.kill(os.getpid(), signal.SIGKILL)
        finally:
            os._exit(1)
    worker = int(os.read(read_end, 32))
    os.waitpid(run, 0)
    try:
        os.kill(worker, 0)  # alive, and holding the lock file open
        with _output_lock(str(tmp_path)):
            pass
    finally:
        os.kill(worker, signal.SIGKILL)


def test_checkpoint_saves_are_atomic_and_private(tmp_path, monkeypatch):
    """Two writers of one checkpoint both succeed (each renames its own temporary file); a save that fails
    (a full disk) or is interrupted leaves the previous file intact and no temporary file, and the error
    names the path."""
    path = tmp_path / 'last.pth'
    save_training_checkpoint(str(path), {'epoch': 0})
    real_save = torch.save
    both_written = threading.Barrier(2, timeout=10)

    def save_then_wait(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        both_written.wait()

    monkeypatch.setattr(torch, 'save', save_then_wait)
    errors = []

    def writer(epoch):
        try:
            save_training_checkpoint(str(path), {'epoch': epoch})
        except Exception as e:
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(epoch,)) for epoch in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert torch.load(path, weights_only=True)['epoch'] in (1, 2)

    def fail(exc):
        def save(obj, f, *args, **kwargs):
            f.write(b'PK\x03\x04 part of a checkpoint')
            raise exc
        return save

    intact = path.read_bytes()
    monkeypatch.setattr(torch, 'save', fail(OSError(errno.ENOSPC, 'No space left on device')))
    with pytest.raises(OSError, match=rf'{path} \(No space left on device\)') as info:
        save_training_checkpoint(str(path), {'epoch': 3})
    assert info.value.errno == errno.ENOSPC
    monkeypatch.setattr(torch, 'save', fail(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        save_training_checkpoint(str(path), {'epoch': 3})
    assert path.read_bytes() == intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ['last.pth']


# ------------------------------------------------------------------------------------------ class maps

def test_class_map_labels_by_name(small_digits, small_run, tmp_path, monkeypatch, caplog):
    """The checkpoint keeps the class names; a validation split without class 3 keeps every other label (no
    shift) and a warning names the class left out; one with a class the model does not know is refused, naming
    it."""
    state = load_training_checkpoint(str(small_run / 'last.pth'))
    assert state['class_names'] == [str(d) for d in range(10)]
    data = _copy(small_digits, tmp_path / 'data')
    shutil.rmtree(data / 'val' / '3')
    validate_module = importlib.import_module('zoo.train.validate')  # the attribute zoo.train.validate is the function
    seen = []
    real_evaluate = validate_module.evaluate

    def evaluate(model, loader, *args, **kwargs):
        seen.extend(loader.dataset.reader.samples)
        return real_evaluate(model, loader, *args, **kwargs)

    monkeypatch.setattr(validate_module, 'evaluate', evaluate)
    with caplog.at_level('WARNING', logger='zoo.train'):
        result = validate(str(data), checkpoint=str(small_run / 'last.pth'), workers=0)
    assert result['images'] == 45 and len(seen) == 45
    assert '--split val has no images of class(es) 3: they are not evaluated' in caplog.text
    assert all(target == int(Path(path).parent.name) for path, target in seen)
    (data / 'val' / 'x').mkdir()
    shutil.copy(next((data / 'val' / '0').iterdir()), data / 'val' / 'x' / 'a.png')
    with pytest.raises(DatasetError, match=r'class\(es\) x, which are not among the 10 classes of --checkpoint'):
        validate(str(data), checkpoint=str(small_run / 'last.pth'), workers=0)


def test_empty_or_changed_training_classes(small_digits, small_run, tmp_path):
    """An empty class folder stops the run before its first step, naming it; resuming on other classes is
    refused, naming them."""
    data = _copy(small_digits, tmp_path / 'data')
    for path in (data / 'train' / '3').iterdir():
        path.unlink()
    with pytest.raises(DatasetError, match=r'--train-split train: class folder\(s\) 3 of .* hold no images'):
        train(_small_args(data, tmp_path / 'a'))
    assert not (tmp_path / 'a' / 'last.pth').exists()
    (data / 'train' / '3').rmdir()
    (data / 'train' / '9').rename(data / 'train' / 'nine')
    output = _copy(small_run, tmp_path / 'run')
    with pytest.raises(ValueError, match='not in the checkpoint: nine; missing from the data: 3, 9'):
        train(_small_args(data, output, '--resume', 'auto'))


# ------------------------------------------------------------------------------------------ resume settings

def test_resume_with_another_schedule(small_digits, small_run, tmp_path):
    """Changed schedule settings are refused and listed; with --resume-changed the schedule is rebuilt for
    them at the resumed update; the global batch never changes within a run."""
    from timm.scheduler import create_scheduler_v2
    output = _copy(small_run, tmp_path / 'run')
    with pytest.raises(ValueError, match=r'epochs: 1 -> 3; lr: 0.001 -> 0.01\).*--resume-changed'):
        train(_small_args(small_digits, output, '--resume', 'auto', '--epochs', '3', '--lr', '0.01'))
    with pytest.raises(ValueError, match='global_batch: 32 -> 16'):
        train(_small_args(small_digits, output, '--resume', 'auto', '--batch-size', '16', '--resume-changed'))
    train(_small_args(small_digits, output, '--resume', 'auto', '--epochs', '3', '--lr', '0.01',
                      '--resume-changed'))
    state = load_training_checkpoint(str(output / 'last.pth'))
    assert state['epoch'] == 2 and state['num_updates'] == 15
    # the lr of a 3-epoch schedule from 0.01 after each epoch's last update (the recipe's warmup and min lr)
    recipe = load_config(DIGITS_RECIPE)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.01)
    scheduler, _ = create_scheduler_v2(optimizer, sched='cosine', num_epochs=3, warmup_epochs=recipe['warmup_epochs'],
                                       warmup_lr=recipe['warmup_lr'], min_lr=recipe['min_lr'], step_on_epochs=False,
                                       updates_per_epoch=5)
    expected = []
    for updates in (10, 15):
        scheduler.step_update(updates)
        expected.append(optimizer.param_groups[0]['lr'])
    rows = list(csv.DictReader(open(output / 'summary.csv')))
    assert [float(r['lr']) for r in rows[1:]] == pytest.approx(expected)
    assert expected[0] > 10 * recipe['min_lr']
