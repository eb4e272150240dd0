"""The classification training loop behind ``tools/train.py``, and evaluation.

Everything with a well-kept implementation in timm comes from timm: datasets and transforms, Mixup/CutMix,
the training step's forward pass and losses, distillation and the weight EMA (its training tasks, set up in
:mod:`zoo.train.tasks`), optimizers (with layer-wise decay), schedulers, accuracy and the summary CSV.
Distribution is torch's: ``torchrun`` starts the processes, ``torch.distributed`` (gloo on CPU, nccl on
GPU) connects them and ``DistributedDataParallel`` averages the gradients.

Exact resume. Each epoch starts by seeding python, numpy and torch from (seed, epoch, rank) and the
training sampler from (seed, epoch), so an epoch's shuffling, augmentations, mixup draws and stochastic
depth depend only on those numbers and the state at its start. Checkpoints are written at the end of every
epoch with the whole state (model, optimizer, scheduler, EMA, gradient scaler, epoch, update count, best
metric, RNG states), so a run that is killed and resumed from its last checkpoint repeats the interrupted
epoch exactly as the uninterrupted run did.

One output folder, one run. The main process holds a lock on ``<output>/train.lock`` for the run's life (a
second run into the folder stops at once, naming the holder's pid), and a folder that holds a run's files is
only written by ``--resume`` (continue it) or ``--overwrite`` (delete them and start over). Resuming checks the
checkpoint against the run: the class map (class names in index order, saved with the weights), the settings
that cannot change within a run (optimizer, layer decay, global batch) and those of the schedule (epochs, lr,
warmup, ...); a changed schedule is refused unless ``--resume-changed`` asks for it, and then the schedule is
rebuilt for the new settings at the resumed position.
"""
import argparse
import contextlib
import errno
import gc
import glob
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

try:
    import fcntl
except ImportError:  # not POSIX: no lock on the output folder
    fcntl = None

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn
from timm.data import Mixup, create_transform, resolve_data_config
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2
from timm.task import TrainingTask
from timm.utils import accuracy, dispatch_clip_grad, unwrap_model, update_summary

from ..models import create_model, family_of
from ..weights import check_state_dict, read_checkpoint
from .checkpoint import load_training_checkpoint, save_training_checkpoint
from .data import apply_class_map, build_dataset, build_loader, class_names_of, is_image_folder, split_folder
from .tasks import build_task, build_teacher, check_token_student, teacher_record

__all__ = ['train', 'evaluate', 'eval_transform', 'amp_dtype_for', 'load_initial_checkpoint', 'setup_distributed',
           'OutputFolderError']

_logger = logging.getLogger('zoo.train')


# ----------------------------------------------------------------------------------------------- processes

def setup_distributed(device: str = '') -> Tuple[torch.device, int, int, int]:
    """(device, world size, rank, local rank). Under ``torchrun`` (WORLD_SIZE > 1) the default process group
    is created: nccl on CUDA, gloo on CPU."""
    if not device:
        device = 'cuda' if torch.cuda.is_available() else 'cpu'
    world_size = int(os.environ.get('WORLD_SIZE', 1))
    rank = int(os.environ.get('RANK', 0))
    local_rank = int(os.environ.get('LOCAL_RANK', 0))
    if device.startswith('cuda'):
        if not torch.cuda.is_available():
            raise RuntimeError('--device cuda was asked for, but torch sees no CUDA device')
        device = f'cuda:{local_rank}' if device == 'cuda' else device
        torch.cuda.set_device(device)
    if world_size > 1 and not dist.is_initialized():
        dist.init_process_group(backend='nccl' if device.startswith('cuda') else 'gloo')
    return torch.device(device), world_size, rank, local_rank


def _seed_epoch(seed: int, epoch: int, rank: int) -> None:
    s = (seed + 1_000_003 * epoch + 7919 * rank) % 2 ** 31
    random.seed(s)
    np.random.seed(s)
    torch.manual_seed(s)


def _rng_state() -> Dict[str, Any]:
    """The RNG states in a form ``torch.load(weights_only=True)`` reads."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {'python': random.getstate(), 'torch': torch.get_rng_state(),
             'numpy': (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached)}
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Dict[str, Any]) -> None:
    random.setstate(tuple(x if not isinstance(x, list) else tuple(x) for x in state['python']))
    name, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


# ----------------------------------------------------------------------------------------------- output folder

class OutputFolderError(RuntimeError):
    """An output folder that another run is writing, or that holds a run and was not given to resume it."""


_LOCK_FILE = 'train.lock'
# what a run writes into its output folder
_RUN_FILES = ('last.pth', 'model_best.pth', 'summary.csv')


@contextlib.contextmanager
def _output_lock(output: str):
    """Hold an exclusive lock on ``<output>/train.lock`` (with this process's pid in it) until the block ends;
    the system releases it too when the process dies, however it dies. A POSIX record lock (``lockf``), not a
    ``flock``: it belongs to this process, so the data-loader workers it forks (which inherit its open files,
    and outlive a SIGKILL by a moment) do not keep the folder locked after the run is gone."""
    if fcntl is None:
        yield
        return
    fd = os.open(os.path.join(output, _LOCK_FILE), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EAGAIN):
                raise
            owner = os.pread(fd, 32, 0).decode(errors='replace').strip() or 'unknown'
            raise OutputFolderError(
                f'output folder {output} is in use by another training run (pid {owner}, holding '
                f'{os.path.join(output, _LOCK_FILE)}): wait for it to end, or choose another --output / '
                '--experiment') from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f'{os.getpid()}\n'.encode(), 0)
        yield
        os.ftruncate(fd, 0)
    finally:
        os.close(fd)


def _claim_output(output: str, args: argparse.Namespace) -> None:
    """Make ``output`` this run's (under its lock): a folder holding a run is refused unless the run is resumed
    or ``--overwrite`` is given; a new run deletes what an earlier one left (with ``--overwrite``: its
    checkpoints, summary, log and TensorBoard events), so nothing of two runs mixes."""
    present = [name for name in _RUN_FILES if os.path.exists(os.path.join(output, name))]
    resuming = bool(args.resume) and (args.resume != 'auto' or 'last.pth' in present)
    if present and not resuming and not args.overwrite:
        how = '--resume <checkpoint>' if args.resume else '--resume auto'
        raise OutputFolderError(
            f'output folder {output} holds a run already ({", ".join(present)}): continue it with {how}, delete it '
            'and start over with --overwrite, or choose another --output / --experiment')
    # temporary files of saves that a killed process left: no other process writes here while the lock is held
    for stale in glob.glob(os.path.join(glob.escape(output), '*.pth.*.tmp')):
        os.remove(stale)
    if not resuming:
        for name in _RUN_FILES + ('log.txt',):
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(output, name))
        shutil.rmtree(os.path.join(output, 'tensorboard'), ignore_errors=True)


# ----------------------------------------------------------------------------------------------- evaluation

@torch.no_grad()
def evaluate(model: nn.Module, loader, device: torch.device, amp_dtype: Optional[torch.dtype] = None,
             channels_last: bool = False, world_size: int = 1, progress: bool = False) -> Dict[str, float]:
    """Top-1 / top-5 accuracy (%) and cross-entropy over every image of ``loader``, summed over all processes
    (each evaluates its shard)."""
    model.eval()
    sums = torch.zeros(4, dtype=torch.float64)  # images, top-1 hits, top-5 hits, loss sum
    criterion = nn.CrossEntropyLoss(reduction='sum')
    batches = loader
    if progress:
        from tqdm import tqdm
        batches = tqdm(loader, desc='eval', leave=False)
    for images, target in batches:
        images, target = images.to(device), target.to(device)
        if channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with _autocast(device, amp_dtype):
            logits = model(images)
        logits = logits.float()
        top1, top5 = accuracy(logits, target, topk=(1, min(5, logits.shape[1])))
        n = images.shape[0]
        sums += torch.tensor([n, top1.item() * n / 100, top5.item() * n / 100,
                              criterion(logits, target).item()], dtype=torch.float64)
    if world_size > 1:
        sums = sums.to(device)
        dist.all_reduce(sums)
        sums = sums.cpu()
    n = max(sums[0].item(), 1)
    return {'loss': sums[3].item() / n, 'top1': 100 * sums[1].item() / n, 'top5': 100 * sums[2].item() / n,
            'images': int(sums[0].item())}


def amp_dtype_for(device: torch.device, name: Optional[str] = None) -> torch.dtype:
    """The autocast dtype: ``name`` if given, else float16 on GPU (with a gradient scaler), bfloat16 on CPU."""
    return getattr(torch, name or ('float16' if device.type == 'cuda' else 'bfloat16'))


def _autocast(device: torch.device, dtype: Optional[torch.dtype]):
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


# ----------------------------------------------------------------------------------------------- training

def _learning_rate(args, world_size: int) -> float:
    if args.lr is not None:
        return args.lr
    images_per_update = args.batch_size * args.grad_accum_steps * world_size
    ratio = images_per_update / args.lr_base_size
    return args.lr_base * (ratio if args.lr_base_scale == 'linear' else math.sqrt(ratio))


def _build_model(args, num_classes: int) -> nn.Module:
    kwargs = {'num_classes': num_classes}
    if args.distill_model and args.distill_type == 'token':
        check_token_student(args.model)
        kwargs['distillation'] = True  # the second head, which learns from the teacher
    if args.drop_path is not None:
        kwargs['drop_path_rate'] = args.drop_path
    if args.drop is not None:
        kwargs['drop_rate'] = args.drop
    model = create_model(args.model, pretrained=args.pretrained, **kwargs)
    if args.initial_checkpoint:
        load_initial_checkpoint(model, args.initial_checkpoint)
    if args.grad_checkpointing:
        model.set_grad_checkpointing(True)
    return model


def load_initial_checkpoint(model: nn.Module, path: str) -> None:
    """Start from a zoo or official checkpoint. A classifier of another class count (ImageNet-22k weights,
    fine-tuning to a new dataset) is left at its initialization, as timm does for ``pretrained`` with another
    ``num_classes``; every other tensor must fit, or nothing is loaded."""
    state_dict = family_of(model).checkpoint_filter(read_checkpoint(path), model)
    head = model.pretrained_cfg.get('classifier') or 'head'
    heads = (head,) if isinstance(head, str) else tuple(head)
    expected = model.state_dict()
    replaced = [k for k, v in state_dict.items() if k.startswith(heads) and k in expected
                and v.shape != expected[k].shape]
    if replaced:
        state_dict = {k: v for k, v in state_dict.items() if not k.startswith(heads)}
    check_state_dict(state_dict, model, ignore=heads if replaced else (), source=path)
    model.load_state_dict(state_dict, strict=not replaced)
    if replaced:
        _logger.info(f'{path}: classifier {", ".join(replaced)} has another class count; left at its '
                     'initialization')


def _set_transforms(args, train_set, val_set, data_config: Dict[str, Any]) -> None:
    train_set.transform = create_transform(
        data_config['input_size'], is_training=True, no_aug=args.no_aug, scale=tuple(args.scale),
        ratio=tuple(args.ratio), hflip=args.hflip, vflip=args.vflip, color_jitter=args.color_jitter,
        auto_augment=args.aa, interpolation=args.train_interpolation, mean=data_config['mean'],
        std=data_config['std'], re_prob=args.reprob, re_mode=args.remode, re_count=args.recount)
    val_set.transform = eval_transform(data_config)


def eval_transform(data_config: Dict[str, Any]):
    """timm's evaluation transform (resize, center crop, normalize) for a resolved data config."""
    return create_transform(
        tuple(data_config['input_size']), is_training=False, interpolation=data_config['interpolation'],
        mean=tuple(data_config['mean']), std=tuple(data_config['std']), crop_pct=data_config['crop_pct'],
        crop_mode=data_config.get('crop_mode'))


def _num_classes(args, class_names: Optional[List[str]]) -> int:
    if args.num_classes is not None:
        if class_names is not None and args.num_classes < len(class_names):
            raise ValueError(f'--num-classes {args.num_classes}: the training split has {len(class_names)} classes; '
                             'give at least that many, or leave it out')
        return args.num_classes
    if not class_names:
        raise ValueError('cannot tell the number of classes of this dataset: pass --num-classes')
    return len(class_names)


# settings a run keeps for its whole life: a resume that gives others is refused
_FIXED_SETTINGS = ('opt', 'layer_decay', 'global_batch', 'distill_model', 'distill_type', 'distill_target',
                   'distill_temperature', 'distill_loss_weight', 'task_loss_weight')
# the schedule and the optimizer's hyperparameters: a resume that gives others needs --resume-changed, which
# rebuilds the schedule for them
_SCHEDULE_SETTINGS = ('epochs', 'lr', 'sched', 'sched_on_updates', 'warmup_epochs', 'warmup_lr', 'min_lr',
                      'cooldown_epochs', 'weight_decay', 'momentum', 'opt_eps', 'opt_betas')


def _settings(args: Dict[str, Any], world_size: int) -> Dict[str, Any]:
    """The compared settings of a run from its options (the lr as used: scaled to the global batch)."""
    values = {k: args.get(k) for k in _FIXED_SETTINGS + _SCHEDULE_SETTINGS}
    values.update(_distill_settings(args))
    values['lr'] = _learning_rate(argparse.Namespace(**args), world_size)
    values['global_batch'] = args['batch_size'] * args['grad_accum_steps'] * world_size
    return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}


def _distill_settings(args: Dict[str, Any]) -> Dict[str, Any]:
    """The distillation settings as they take effect: none without a teacher (or in a run from before
    distillation), the temperature only where targets are soft, the target only for token distillation, and the
    loss weights as timm's tasks resolve them (``--task-loss-weight w`` alone means a distillation weight 1 - w)."""
    keys = [k for k in _FIXED_SETTINGS if k.startswith('distill_') or k == 'task_loss_weight']
    if not args.get('distill_model'):
        return dict.fromkeys(keys)
    kind, target = args['distill_type'], args.get('distill_target')
    task, distill = args.get('task_loss_weight'), args.get('distill_loss_weight')
    if distill is not None:
        task = 1.0 if task is None else task
    else:
        task, distill = (1.0, 1.0) if task is None else (task, 1.0 - task)
    soft = kind == 'logit' or (kind == 'token' and target == 'soft')
    return {'distill_model': args['distill_model'], 'distill_type': kind,
            'distill_target': target if kind == 'token' else None,
            'distill_temperature': args.get('distill_temperature') if soft else None,
            'distill_loss_weight': distill, 'task_loss_weight': task}


@dataclass
class _Run:
    """What one training run holds: set up by :func:`_setup`, advanced by the epoch loop in :func:`train`."""
    args: argparse.Namespace
    device: torch.device
    world_size: int
    rank: int
    output: str
    amp_dtype: Optional[torch.dtype]
    model: nn.Module
    num_classes: int
    class_names: Optional[List[str]]
    data_config: Dict[str, Any]
    train_set: Any
    val_set: Any
    train_loader: Any
    val_loader: Any
    lr: float
    optimizer: Any
    scheduler: Any
    num_epochs: int
    scaler: Optional[Any]
    mixup_fn: Optional[Any]
    task: TrainingTask  # the forward pass and loss of a step (with the teacher, if any), and the EMA
    teacher: Optional[Dict[str, str]] = None  # the teacher's name, file and SHA-256 (tasks.teacher_record)
    resume: Optional[Tuple[str, Dict[str, Any], List[str]]] = None  # (path, checkpoint, changes) to continue from
    start_epoch: int = 0
    num_updates: int = 0
    best: Dict[str, Any] = field(default_factory=lambda: {'metric': None, 'epoch': None})

    @property
    def main_process(self) -> bool:
        return self.rank == 0

    def eval_model(self, ema: bool = False) -> nn.Module:
        """The model evaluated and saved: the student, without DDP (each process evaluates its own shard)."""
        return unwrap_model(self.task.get_eval_model(ema=ema))


def train(args: argparse.Namespace) -> Dict[str, Any]:
    """Run the training that ``args`` describe (see :func:`zoo.train.config.train_parser`); returns the last
    and best evaluation results and the output directory."""
    with contextlib.ExitStack() as cleanup:  # the output folder's lock and log file, however the run ends
        return _train(_setup(args, cleanup))


def _train(run: _Run) -> Dict[str, Any]:
    args = run.args
    if run.resume is not None:
        _resume(run, *run.resume)
        run.resume = None
    if run.world_size > 1:  # DDP around what the task trains, not around the teacher
        run.task.prepare_distributed(device_ids=[run.device.index] if run.device.type == 'cuda' else None)
    writer = None
    if args.log_tensorboard and run.main_process:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(os.path.join(run.output, 'tensorboard'))
    if run.main_process:
        _logger.info(f'{args.model}: {sum(p.numel() for p in run.model.parameters()) / 1e6:.2f}M params, '
                     f'{run.num_classes} classes, {len(run.train_set)} train / {len(run.val_set)} val images, '
                     f'{run.world_size} process(es) on {run.device}, lr {run.lr:.3g}, {run.num_epochs} epochs')

    eval_metrics: Dict[str, float] = {}
    for epoch in range(run.start_epoch, run.num_epochs):
        _seed_epoch(args.seed, epoch, run.rank)
        run.train_loader.sampler.set_epoch(epoch)
        if run.mixup_fn is not None and args.mixup_off_epoch and epoch >= args.mixup_off_epoch:
            run.mixup_fn.mixup_enabled = False
        train_metrics, run.num_updates = _train_one_epoch(
            epoch, run.task, run.train_loader, run.optimizer, run.scheduler, run.num_updates, run.device, args,
            run.amp_dtype, run.scaler, run.mixup_fn, run.main_process)
        eval_metrics = _evaluate_epoch(run)
        run.scheduler.step(epoch + 1, eval_metrics[args.eval_metric])
        _record_epoch(run, epoch, train_metrics, eval_metrics, writer)
        if run.world_size > 1:
            dist.barrier()
    if writer is not None:
        writer.close()
    result = {'output': run.output, 'eval': eval_metrics, 'best': run.best, 'world_size': run.world_size}
    if run.world_size > 1:
        free_ddp(run.task, 'trainable_module')
        dist.destroy_process_group()
    return result


def free_ddp(holder: Any, attr: str) -> None:
    """Where ``holder.attr`` is a DistributedDataParallel (a training task's module, an mmengine runner's model),
    put back the module it wraps and free DDP now, while the process group is still registered: every run calls
    this before ``destroy_process_group``. Freed after it, DDP's reducer held the group's last reference: tearing
    the group down from a Python dealloc (the GIL held) joined Gloo's worker thread while that thread waited for
    the GIL to free a finished collective's tensors, and a two-process run that had written everything never
    exited."""
    ddp = getattr(holder, attr)
    if isinstance(ddp, nn.parallel.DistributedDataParallel):
        setattr(holder, attr, ddp.module)
        del ddp
        gc.collect()  # DDP's own reference cycles, if any, go now too


def _setup(args: argparse.Namespace, cleanup: contextlib.ExitStack) -> _Run:
    """Processes, output folder and log, data, model, optimizer, schedule, loss: everything before epoch 0.
    What must be undone when the run ends (the lock, the log file) goes on ``cleanup``."""
    if is_image_folder(args.dataset, args.data_dir):  # before anything is written
        split_folder(args.data_dir, args.train_split, '--train-split')
        split_folder(args.data_dir, args.val_split, '--val-split')
    device, world_size, rank, _ = setup_distributed(args.device)
    if args.deterministic:
        torch.use_deterministic_algorithms(True)
    amp_dtype = amp_dtype_for(device, args.amp_dtype) if args.amp else None
    if amp_dtype == torch.bfloat16 and device.type == 'cpu' and args.channels_last:
        # measured with torch 2.9.1 (docs/training.md): LSNet's gradients reach 1e18-1e20 and the loss turns NaN
        # within an epoch, where either option alone trains normally
        _logger.warning('bf16 autocast together with --channels-last on CPU gave exploding gradients in this '
                        'PyTorch build; use one of the two')
    _seed_epoch(args.seed, -1, 0)  # the same initial weights in every process

    output = args.output if not args.experiment else os.path.join(args.output, args.experiment)
    refusal = ''
    if rank == 0:  # the only process that writes
        os.makedirs(output, exist_ok=True)
        try:
            cleanup.enter_context(_output_lock(output))
            _claim_output(output, args)
        except OutputFolderError as e:
            refusal = str(e)
    if world_size > 1:  # every process stops, not only the main one
        message = [refusal]
        dist.broadcast_object_list(message, src=0)
        refusal = message[0]
    if refusal:
        raise OutputFolderError(refusal)
    if rank == 0:
        cleanup.callback(_close_logging, _setup_logging(os.path.join(output, 'log.txt')))
    resume = args.resume
    if resume == 'auto':
        last = os.path.join(output, 'last.pth')
        resume = last if os.path.isfile(last) else ''
    resume_state = load_training_checkpoint(resume) if resume else None
    teacher = teacher_record(args)
    changed = _check_resume(args, world_size, resume, resume_state, teacher) if resume_state is not None else []

    # the validation split is labelled with the training split's class map, by class name
    train_set = build_dataset(args.dataset, args.data_dir, args.train_split, '--train-split', is_training=True,
                              batch_size=args.batch_size, seed=args.seed)
    val_set = build_dataset(args.dataset, args.data_dir, args.val_split, '--val-split', is_training=False,
                            batch_size=args.batch_size)
    class_names = class_names_of(train_set)
    if resume_state is not None:
        _check_class_map(resume_state.get('class_names'), class_names, resume, args.train_split)
    if class_names is not None:
        apply_class_map(val_set, class_names, '--val-split', source='the training split', split=args.val_split,
                        warn=rank == 0)
    num_classes = _num_classes(args, class_names)
    model = _build_model(args, num_classes)
    overrides = {k: getattr(args, k) for k in ('mean', 'std', 'crop_pct') if getattr(args, k) is not None}
    if args.img_size is not None:
        overrides['input_size'] = (3, args.img_size, args.img_size)
    if args.interpolation:
        overrides['interpolation'] = args.interpolation
    data_config = resolve_data_config(overrides, model=model)
    _set_transforms(args, train_set, val_set, data_config)

    model.to(device)
    if args.channels_last:
        model.to(memory_format=torch.channels_last)
    mixup_fn = _mixup(args, num_classes)
    teacher_model = None
    if args.distill_model:
        teacher_model = build_teacher(args.distill_model, args.distill_checkpoint, num_classes, class_names)
        if args.channels_last:
            teacher_model[0].to(memory_format=torch.channels_last)
    task = build_task(args, model, data_config, device, soft_targets=mixup_fn is not None, teacher=teacher_model)
    lr = _learning_rate(args, world_size)
    opt_kwargs = {}
    if args.opt_eps is not None:
        opt_kwargs['eps'] = args.opt_eps
    if args.opt_betas is not None:
        opt_kwargs['betas'] = tuple(args.opt_betas)
    optimizer = create_optimizer_v2(task.get_trainable_module(), opt=args.opt, lr=lr, weight_decay=args.weight_decay,
                                    momentum=args.momentum, layer_decay=args.layer_decay, **opt_kwargs)
    scaler = torch.amp.GradScaler(device.type) if amp_dtype == torch.float16 else None

    train_loader = build_loader(train_set, args.batch_size, True, world_size, rank, args.workers, args.pin_mem,
                                seed=args.seed, aug_repeats=args.aug_repeats)
    val_loader = build_loader(val_set, args.batch_size, False, world_size, rank, args.workers, args.pin_mem)
    updates_per_epoch = math.ceil(len(train_loader) / args.grad_accum_steps)
    scheduler, num_epochs = create_scheduler_v2(
        optimizer, sched=args.sched, num_epochs=args.epochs, warmup_epochs=args.warmup_epochs,
        warmup_lr=args.warmup_lr, min_lr=args.min_lr, cooldown_epochs=args.cooldown_epochs,
        step_on_epochs=not args.sched_on_updates, updates_per_epoch=updates_per_epoch)
    return _Run(args=args, device=device, world_size=world_size, rank=rank, output=output, amp_dtype=amp_dtype,
                model=model, num_classes=num_classes, class_names=class_names, data_config=data_config,
                train_set=train_set, val_set=val_set, train_loader=train_loader, val_loader=val_loader, lr=lr,
                optimizer=optimizer, scheduler=scheduler, num_epochs=num_epochs, scaler=scaler, mixup_fn=mixup_fn,
                task=task, teacher=teacher,
                resume=(resume, resume_state, changed) if resume_state is not None else None)


def _mixup(args: argparse.Namespace, num_classes: int) -> Optional[Mixup]:
    """Mixup / CutMix where asked (their targets are soft, with the label smoothing in them)."""
    if args.mixup > 0 or args.cutmix > 0:
        return Mixup(mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, prob=args.mixup_prob,
                     switch_prob=args.mixup_switch_prob, mode=args.mixup_mode, label_smoothing=args.smoothing,
                     num_classes=num_classes)
    return None


def _check_resume(args: argparse.Namespace, world_size: int, path: str, state: Dict[str, Any],
                  teacher: Optional[Dict[str, str]] = None) -> List[str]:
    """Whether the run that ``args`` describe may continue from checkpoint ``state``: the same model, EMA
    weights if the run keeps an EMA, the same fixed settings (:data:`_FIXED_SETTINGS`) and teacher weights
    (``teacher``, from :func:`~zoo.train.tasks.teacher_record`: the file's SHA-256); a changed schedule
    (:data:`_SCHEDULE_SETTINGS`) only with ``--resume-changed``. Returns the changes, as ``name: saved ->
    given``."""
    if state['arch'] != args.model:
        raise ValueError(f'--resume {path} was written for {state["arch"]}, not --model {args.model}')
    if args.model_ema and 'state_dict_ema' not in state:
        raise ValueError(f'--resume {path} holds no EMA weights; resume without --model-ema')
    given = _settings(vars(args), world_size)
    saved = _settings(state['args'], state.get('world_size', len(state['rng']))) if 'args' in state else given
    fixed = [f'{k}: {saved[k]} -> {given[k]}' for k in _FIXED_SETTINGS if saved[k] != given[k]]
    if fixed:
        raise ValueError(f'--resume {path}: settings that cannot change within a run differ from the checkpoint\'s '
                         f'({"; ".join(fixed)}): give the checkpoint\'s values, or start a new run from its weights '
                         f'with --initial-checkpoint {path}')
    saved_teacher = state.get('teacher') or {}
    if teacher is not None and saved_teacher.get('sha256', '') != teacher['sha256']:
        raise ValueError(f'--resume {path}: the run distils from the teacher weights '
                         f'{saved_teacher.get("checkpoint") or "released with " + teacher["model"]} (SHA-256 '
                         f'{saved_teacher.get("sha256") or "-"}), not from --distill-checkpoint '
                         f'{teacher["checkpoint"] or "(none)"} (SHA-256 {teacher["sha256"] or "-"}); give that file')
    changed = [f'{k}: {saved[k]} -> {given[k]}' for k in _SCHEDULE_SETTINGS if saved[k] != given[k]]
    if changed and not args.resume_changed:
        raise ValueError(f'--resume {path}: the schedule differs from the checkpoint\'s ({"; ".join(changed)}): give '
                         'the checkpoint\'s values, or pass --resume-changed to continue under the new ones (the '
                         f'schedule is rebuilt for them from epoch {state["epoch"] + 1})')
    return changed


def _resume(run: _Run, path: str, state: Dict[str, Any], changed: List[str]) -> None:
    """Continue ``run`` from a training checkpoint (checked by :func:`_check_resume` and
    :func:`_check_class_map`): weights, optimizer, schedule, EMA, scaler, random state. Every check comes
    before anything is copied: a refused resume leaves the model as it was. With ``changed`` settings the
    optimizer takes the new hyperparameters, and the schedule, built for the new settings, is set to the
    resumed epoch and update count instead of being loaded."""
    args = run.args
    check_state_dict(state['state_dict'], run.eval_model(), source=path)
    if run.task.has_ema():
        check_state_dict(state['state_dict_ema'], run.eval_model(ema=True), source=f'{path}[state_dict_ema]')
    run.task.load_checkpoint_state(state['state_dict'], state.get('task_state'))
    fresh = [{k: v for k, v in group.items() if k != 'params'} for group in run.optimizer.param_groups]
    run.optimizer.load_state_dict(state['optimizer'])
    run.start_epoch, run.num_updates = state['epoch'] + 1, state['num_updates']
    if changed:
        for group, hyper in zip(run.optimizer.param_groups, fresh):
            group.update(hyper)
        metric = (state.get('metrics') or {}).get(args.eval_metric)
        run.scheduler.step(run.start_epoch, metric)
        run.scheduler.step_update(run.num_updates, metric)
    else:
        run.scheduler.load_state_dict(state['scheduler'])
    if run.task.has_ema():
        run.task.load_checkpoint_state(state['state_dict_ema'], state.get('task_state_ema'), ema=True)
    if run.scaler is not None and 'scaler' in state:
        run.scaler.load_state_dict(state['scaler'])
    _set_rng_state(state['rng'][min(run.rank, len(state['rng']) - 1)])
    run.best = state.get('best', run.best)
    if run.main_process:
        _logger.info(f'resumed from {path}: epoch {run.start_epoch}, {run.num_updates} updates')
        if changed:
            _logger.info(f'schedule rebuilt for the changed settings: {"; ".join(changed)}')


def _check_class_map(saved: Optional[List[str]], found: Optional[List[str]], path: str, split: str) -> None:
    """The training split must have the classes of the checkpoint, in the same order (checkpoints written
    before the class map was saved are not checked)."""
    if saved is None or found is None or list(saved) == found:
        return
    new = [c for c in found if c not in saved]
    gone = [c for c in saved if c not in found]
    what = '; '.join(part for part in (f'not in the checkpoint: {", ".join(new)}' if new else '',
                                       f'missing from the data: {", ".join(gone)}' if gone else '') if part)
    raise ValueError(f'--resume {path}: the classes of --train-split {split} differ from the checkpoint\'s '
                     f'({what or "another order"}); train on the classes the run started with')


def _evaluate_epoch(run: _Run) -> Dict[str, float]:
    """The model's metrics on the validation set; with EMA, the EMA model's, the raw model's as ``raw_*``."""
    metrics = evaluate(run.eval_model(), run.val_loader, run.device, run.amp_dtype, run.args.channels_last,
                       run.world_size)
    if not run.task.has_ema():
        return metrics
    ema_metrics = evaluate(run.eval_model(ema=True), run.val_loader, run.device, run.amp_dtype, run.args.channels_last,
                           run.world_size)
    return dict(ema_metrics, **{f'raw_{k}': v for k, v in metrics.items()})


def _record_epoch(run: _Run, epoch: int, train_metrics: Dict[str, float], eval_metrics: Dict[str, float],
                  writer) -> None:
    """Gather every process's random state; on the main process, save ``last.pth`` (and ``model_best.pth``
    when the metric improved), append to summary.csv, TensorBoard and the log."""
    args = run.args
    rng = [_rng_state()]
    if run.world_size > 1:
        gathered = [None] * run.world_size
        dist.all_gather_object(gathered, rng[0])
        rng = gathered
    if not run.main_process:
        return
    metric = eval_metrics[args.eval_metric]
    best = run.best
    better = best['metric'] is None or (metric < best['metric'] if args.eval_metric == 'loss'
                                        else metric > best['metric'])
    if better:
        run.best = best = {'metric': metric, 'epoch': epoch}
    state = {
        'arch': args.model, 'epoch': epoch, 'num_updates': run.num_updates, 'num_classes': run.num_classes,
        'class_names': run.class_names, 'world_size': run.world_size,
        **run.task.get_checkpoint_state(), 'optimizer': run.optimizer.state_dict(),
        'scheduler': run.scheduler.state_dict(), 'rng': rng, 'best': best, 'metrics': eval_metrics,
        'data_config': {k: (list(v) if isinstance(v, tuple) else v) for k, v in run.data_config.items()},
        'args': {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()},
    }
    if run.task.has_ema():
        state.update(run.task.get_checkpoint_state(ema=True))
    if run.teacher is not None:
        state['teacher'] = run.teacher
    if run.scaler is not None:
        state['scaler'] = run.scaler.state_dict()
    save_training_checkpoint(os.path.join(run.output, 'last.pth'), state)
    if better:
        save_training_checkpoint(os.path.join(run.output, 'model_best.pth'), state)
    lrs = [g['lr'] for g in run.optimizer.param_groups]
    summary = os.path.join(run.output, 'summary.csv')
    update_summary(epoch, train_metrics, eval_metrics, summary, lr=sum(lrs) / len(lrs),
                   write_header=epoch == 0 or not os.path.exists(summary))
    if writer is not None:
        for k, v in train_metrics.items():
            writer.add_scalar(f'train/{k}', v, epoch)
        for k, v in eval_metrics.items():
            writer.add_scalar(f'eval/{k}', v, epoch)
        writer.flush()
    _logger.info(f'epoch {epoch}: train loss {train_metrics["loss"]:.4f}, eval top-1 '
                 f'{eval_metrics["top1"]:.2f} top-5 {eval_metrics["top5"]:.2f} loss {eval_metrics["loss"]:.4f}'
                 f' (best {args.eval_metric} {best["metric"]:.4f} at epoch {best["epoch"]})')


def _train_one_epoch(epoch, task, loader, optimizer, scheduler, num_updates, device, args, amp_dtype, scaler,
                     mixup_fn, main_process) -> Tuple[Dict[str, float], int]:
    """One pass over ``loader``: the task's loss (with its parts, e.g. ``task_loss`` and ``kd_loss``, averaged into
    the returned metrics), gradient accumulation, clipping, the optimizer, EMA and schedule updates."""
    task.train()  # the teacher, if any, stays in eval mode
    accum = args.grad_accum_steps
    n_batches = len(loader)
    sums: Dict[str, float] = {}
    seen, t0 = 0, time.time()
    batches = loader
    if main_process and not args.no_progress:
        from tqdm import tqdm
        batches = tqdm(loader, desc=f'epoch {epoch}', leave=False, dynamic_ncols=True)
    optimizer.zero_grad(set_to_none=True)
    for i, (images, target) in enumerate(batches):
        images, target = images.to(device), target.to(device)
        if mixup_fn is not None:
            images, target = mixup_fn(images, target)
        if args.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        update_now = (i + 1) % accum == 0 or i + 1 == n_batches
        with contextlib.nullcontext() if update_now else task.no_sync():
            with _autocast(device, amp_dtype):
                result = task(images, target)
            loss = result['loss']
            if not torch.isfinite(loss):
                raise FloatingPointError(f'loss is {loss.item()} at epoch {epoch}, batch {i}')
            step_loss = loss / accum
            (scaler.scale(step_loss) if scaler is not None else step_loss).backward()
        if update_now:
            if scaler is not None:
                scaler.unscale_(optimizer)
            if args.clip_grad is not None:
                dispatch_clip_grad(task.get_clip_parameters(), args.clip_grad, mode=args.clip_mode)
            if scaler is not None:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            num_updates += 1
            task.update_ema(step=num_updates)
            scheduler.step_update(num_updates=num_updates)
        for k, v in result.items():
            if k == 'loss' or k.endswith('_loss'):
                sums[k] = sums.get(k, 0.0) + v.item() * images.shape[0]
        seen += images.shape[0]
        if main_process and (i % args.log_interval == 0 or i + 1 == n_batches):
            lr = optimizer.param_groups[0]['lr']
            msg = f'epoch {epoch} batch {i + 1}/{n_batches} loss {loss.item():.4f} lr {lr:.3g}'
            if hasattr(batches, 'set_postfix_str'):
                batches.set_postfix_str(f'loss {loss.item():.4f} lr {lr:.3g}')
            print(msg, flush=True)
    metrics = {k: v / max(seen, 1) for k, v in sums.items()}
    return dict(metrics, images_per_s=seen / max(time.time() - t0, 1e-9)), num_updates


def _setup_logging(path: str) -> logging.FileHandler:
    """Log to the console and to ``path`` (appended to); returns the file's handler."""
    _logger.setLevel(logging.INFO)
    fh = logging.FileHandler(path)
    fh.setFormatter(logging.Formatter('%(asctime)s %(message)s'))
    _logger.addHandler(fh)
    if not any(type(h) is logging.StreamHandler for h in _logger.handlers):
        _logger.addHandler(logging.StreamHandler())
    return fh


def _close_logging(handler: logging.Handler) -> None:
    _logger.removeHandler(handler)
    handler.close()
