"""Command-line options of ``tools/train.py`` and the YAML recipe files that set their defaults.

A recipe (``configs/imagenet/<model>.yaml``) is a flat mapping of option names (the argparse ``dest``,
``snake_case``) to values. ``_base_`` (a path or a list of paths, relative to the file) names recipes it
builds on, OpenMMLab style: the bases are read first, in order, and the file's own keys override theirs.
Options given on the command line override the recipe.
"""
import argparse
import os
from typing import Any, Dict, List, Optional, Sequence

import yaml

__all__ = ['ConfigError', 'load_config', 'train_parser', 'parse_train_args']


class ConfigError(ValueError):
    """A recipe file that cannot be used: unreadable, cyclic bases, or unknown option names."""


def load_config(path: str, _seen: Optional[List[str]] = None) -> Dict[str, Any]:
    """The options of recipe ``path`` with its ``_base_`` files merged in (later keys win)."""
    path = os.path.abspath(path)
    seen = list(_seen or [])
    if path in seen:
        raise ConfigError(f'recipe {path} includes itself through _base_: ' + ' -> '.join(seen + [path]))
    if not os.path.isfile(path):
        raise ConfigError(f'recipe file not found: {path}')
    with open(path) as f:
        try:
            cfg = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ConfigError(f'recipe {path} is not valid YAML: {e}') from e
    if not isinstance(cfg, dict):
        raise ConfigError(f'recipe {path} must be a mapping of option names to values')
    bases = cfg.pop('_base_', [])
    merged: Dict[str, Any] = {}
    for base in [bases] if isinstance(bases, str) else bases:
        merged.update(load_config(os.path.join(os.path.dirname(path), base), seen + [path]))
    merged.update(cfg)
    return merged


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description='Train a zoo model for image classification (ImageNet layout: <data-dir>/train/<class>/*, '
                    '<data-dir>/val/<class>/*). Multi-process: torchrun --nproc_per_node N tools/train.py ...',
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument('--config', '-c', default='', help='YAML recipe (configs/imagenet/<model>.yaml) whose keys set '
                                                      'the defaults of the options below')
    g = p.add_argument_group('model')
    g.add_argument('--model', default='lsnet_t', help='zoo model name')
    g.add_argument('--pretrained', action='store_true', help="start from the model's released weights")
    g.add_argument('--initial-checkpoint', default='', help='start from a zoo or official checkpoint file')
    g.add_argument('--num-classes', type=int, default=None, help='default: the number of class folders')
    g.add_argument('--drop-path', type=float, default=None, help='stochastic depth rate (default: the model\'s)')
    g.add_argument('--drop', type=float, default=None, help='dropout before the classifier')
    g.add_argument('--img-size', type=int, default=None, help='default: the model\'s pretrained_cfg input size')
    g.add_argument('--grad-checkpointing', action='store_true', help='recompute activations in the backward pass')
    g.add_argument('--channels-last', action='store_true')
    g = p.add_argument_group('data')
    g.add_argument('--data-dir', default='', help='dataset root')
    g.add_argument('--dataset', default='', help="timm dataset spec ('' = image folders; 'hfds/…', 'wds/…', …)")
    g.add_argument('--train-split', default='train')
    g.add_argument('--val-split', default='val')
    g.add_argument('--workers', '-j', type=int, default=2, help='data loading processes per training process')
    g.add_argument('--pin-mem', action='store_true')
    g.add_argument('--aug-repeats', type=int, default=0,
                   help='repeated augmentation: each image this many times per epoch, spread over processes '
                        '(timm RepeatAugSampler; 0: off)')
    g = p.add_argument_group('optimization')
    g.add_argument('--epochs', type=int, default=300)
    g.add_argument('--batch-size', '-b', type=int, default=128, help='per process')
    g.add_argument('--grad-accum-steps', type=int, default=1, help='batches accumulated into one update')
    g.add_argument('--lr', type=float, default=None, help='learning rate; default: lr_base scaled to the batch')
    g.add_argument('--lr-base', type=float, default=1e-3, help='learning rate at --lr-base-size images per update')
    g.add_argument('--lr-base-size', type=int, default=1024)
    g.add_argument('--lr-base-scale', default='linear', choices=['linear', 'sqrt'])
    g.add_argument('--opt', default='adamw', help='timm optimizer name')
    g.add_argument('--opt-eps', type=float, default=None)
    g.add_argument('--opt-betas', type=float, nargs='+', default=None)
    g.add_argument('--momentum', type=float, default=0.9)
    g.add_argument('--weight-decay', type=float, default=0.05)
    g.add_argument('--layer-decay', type=float, default=None, help='layer-wise lr decay (timm group_matcher)')
    g.add_argument('--clip-grad', type=float, default=None)
    g.add_argument('--clip-mode', default='norm', choices=['norm', 'value', 'agc'])
    g.add_argument('--sched', default='cosine')
    g.add_argument('--sched-on-updates', action=argparse.BooleanOptionalAction, default=True,
                   help='step the schedule every update (else every epoch)')
    g.add_argument('--warmup-epochs', type=int, default=5)
    g.add_argument('--warmup-lr', type=float, default=1e-6)
    g.add_argument('--min-lr', type=float, default=1e-5)
    g.add_argument('--cooldown-epochs', type=int, default=0)
    g = p.add_argument_group('augmentation and regularization (timm transforms, Mixup, losses)')
    g.add_argument('--no-aug', action='store_true')
    g.add_argument('--scale', type=float, nargs=2, default=(0.08, 1.0), help='random-resized-crop area range')
    g.add_argument('--ratio', type=float, nargs=2, default=(3 / 4, 4 / 3))
    g.add_argument('--hflip', type=float, default=0.5)
    g.add_argument('--vflip', type=float, default=0.0)
    g.add_argument('--color-jitter', type=float, default=0.4)
    g.add_argument('--aa', default=None, help="auto-augment policy, e.g. 'rand-m9-mstd0.5-inc1'")
    g.add_argument('--reprob', type=float, default=0.0, help='random erasing probability')
    g.add_argument('--remode', default='pixel')
    g.add_argument('--recount', type=int, default=1)
    g.add_argument('--train-interpolation', default='random')
    g.add_argument('--interpolation', default='', help='eval resize interpolation (default: the model\'s)')
    g.add_argument('--crop-pct', type=float, default=None, help='eval center crop (default: the model\'s)')
    g.add_argument('--mean', type=float, nargs=3, default=None)
    g.add_argument('--std', type=float, nargs=3, default=None)
    g.add_argument('--mixup', type=float, default=0.0, help='mixup alpha (0: off)')
    g.add_argument('--cutmix', type=float, default=0.0, help='cutmix alpha (0: off)')
    g.add_argument('--mixup-prob', type=float, default=1.0)
    g.add_argument('--mixup-switch-prob', type=float, default=0.5)
    g.add_argument('--mixup-mode', default='batch')
    g.add_argument('--mixup-off-epoch', type=int, default=0, help='turn mixup/cutmix off from this epoch (0: never)')
    g.add_argument('--smoothing', type=float, default=0.1, help='label smoothing')
    g = p.add_argument_group('EMA of the weights (timm ModelEmaV3)')
    g.add_argument('--model-ema', action='store_true')
    g.add_argument('--model-ema-decay', type=float, default=0.9998)
    g.add_argument('--model-ema-warmup', action='store_true')
    g = p.add_argument_group('distillation from a teacher (timm.task; docs/training.md)')
    g.add_argument('--distill-model', default='', help='teacher: a zoo or timm model name (none: no distillation)')
    g.add_argument('--distill-checkpoint', default='',
                   help="the teacher's weights: a training checkpoint of tools/train.py, a zoo or official file (for "
                        "a timm teacher, a state dict file); default: the teacher's released weights")
    g.add_argument('--distill-type', default='logit', choices=['logit', 'feature', 'token'],
                   help="logit: the student's logits match the teacher's (KL); feature: its pooled features match "
                        "the teacher's (MSE, through a Linear where widths differ); token: a second head (LSNet, "
                        "SHViT) learns from the teacher, the first from the labels, and the model predicts their mean")
    g.add_argument('--distill-target', default='soft', choices=['soft', 'hard'],
                   help="what the token head learns: the teacher's softened distribution (soft) or its top class "
                        "(hard, DeiT's and the LSNet authors' choice); logit distillation is soft only")
    g.add_argument('--distill-temperature', type=float, default=1.0, help='softmax temperature of soft targets')
    g.add_argument('--distill-loss-weight', type=float, default=None,
                   help='weight of the distillation loss (default: 1 - --task-loss-weight if that is given, else 1)')
    g.add_argument('--task-loss-weight', type=float, default=None, help='weight of the label loss (default: 1)')
    g = p.add_argument_group('run')
    g.add_argument('--amp', action='store_true', help='mixed precision (autocast)')
    g.add_argument('--amp-dtype', default=None, choices=['bfloat16', 'float16'],
                   help='default: bfloat16 on CPU, float16 on GPU (with a gradient scaler)')
    g.add_argument('--device', default='', help="'cpu' or 'cuda' (default: cuda when available)")
    g.add_argument('--seed', type=int, default=42)
    g.add_argument('--deterministic', action='store_true', help='torch.use_deterministic_algorithms(True)')
    g.add_argument('--output', default='output/train', help='directory for checkpoints and logs')
    g.add_argument('--experiment', default='', help='sub-directory of --output for this run (default: none)')
    g.add_argument('--resume', default='', help="a checkpoint from this script ('auto': <output>/last.pth if any)")
    g.add_argument('--resume-changed', action='store_true',
                   help='with --resume, accept schedule settings that differ from the checkpoint\'s (epochs, lr, '
                        'sched, warmup, min lr, cooldown, weight decay, momentum, optimizer eps/betas): the '
                        'schedule is rebuilt for them at the resumed epoch. Without it the differences are refused '
                        'and listed; the optimizer, layer decay and global batch never change within a run')
    g.add_argument('--overwrite', action='store_true',
                   help='start a new run in an output folder that holds one, deleting its checkpoints, '
                        'summary.csv, log.txt and TensorBoard events (without it, or --resume, such a folder is '
                        'refused)')
    g.add_argument('--eval-metric', default='top1', choices=['top1', 'top5', 'loss'])
    g.add_argument('--log-interval', type=int, default=50, help='batches between log lines')
    g.add_argument('--log-tensorboard', action='store_true', help='TensorBoard event files in the output dir')
    g.add_argument('--no-progress', action='store_true', help='no progress bars')
    return p


def parse_train_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    """Parse ``argv`` with the recipe named by ``--config`` as defaults: command line > recipe > built-ins."""
    parser = train_parser()
    pre, _ = parser.parse_known_args(argv)
    if pre.config:
        cfg = load_config(pre.config)
        known = {a.dest for a in parser._actions}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ConfigError(f'recipe {pre.config} sets unknown options: {", ".join(unknown)}')
        parser.set_defaults(**cfg)
    args = parser.parse_args(argv)
    for name in ('epochs', 'batch_size', 'grad_accum_steps'):
        if getattr(args, name) < 1:
            parser.error(f'argument --{name.replace("_", "-")}: {getattr(args, name)} is not allowed, give 1 or more')
    if args.resume and args.overwrite:
        parser.error('argument --overwrite: not allowed with --resume (--overwrite starts a new run, --resume '
                     'continues one)')
    if args.resume_changed and not args.resume:
        parser.error('argument --resume-changed: only allowed with --resume')
    if args.distill_model:
        if args.distill_target == 'hard' and args.distill_type != 'token':
            parser.error(f'argument --distill-target: hard is not allowed with --distill-type {args.distill_type} '
                         "(timm's logit and feature distillation match soft outputs); use --distill-type token")
        if args.distill_temperature <= 0:
            parser.error(f'argument --distill-temperature: {args.distill_temperature} is not allowed, give a '
                         'positive number')
    else:
        given = [f'--{k.replace("_", "-")}' for k in ('distill_checkpoint', 'distill_loss_weight', 'task_loss_weight')
                 if getattr(args, k) not in ('', None)]
        if given:
            parser.error(f'argument {given[0]}: only allowed with --distill-model (the teacher)')
    return args
