"""What one training step computes, as a timm training task (``timm.task``): the forward pass and the loss, with
or without a teacher. The training loop (:mod:`zoo.train.engine`) calls the task and steps the optimizer; the task
also owns the weight EMA and what a checkpoint stores of the model.

- No teacher: ``ClassificationTask``.
- ``--distill-type logit``: ``LogitDistillationTask``, the student's logits match the teacher's softened ones (KL).
- ``--distill-type feature``: ``FeatureDistillationTask``, the pooled features match the teacher's (MSE), through
  a Linear where the widths differ (trained with the student, saved as ``task_state``).
- ``--distill-type token``: ``TokenDistillationTask``, DeiT's recipe and the LSNet authors': the student is built
  with its second head (``distillation=True``, LSNet and SHViT), which learns the teacher's softened distribution
  (``--distill-target soft``) or its top class (``hard``) while the first head learns the labels. At eval the model
  predicts the mean of the two heads; its checkpoint loads into the model without the second head, merged.

The teacher (:func:`build_teacher`) is any zoo or timm model, loaded completely or not at all, frozen, in eval
mode, and fed the images normalized its own way.
"""
import os
from typing import Any, Dict, List, Optional, Tuple

import timm
import torch
import torch.nn as nn
from timm.data import resolve_data_config
from timm.loss import create_classification_loss
from timm.task import (ClassificationTask, DistillationTeacher, FeatureDistillationTask, LogitDistillationTask,
                       TokenDistillationTask, TrainingTask)

from ..deploy import reparameterize
from ..models import create_model, family_of, is_zoo_model
from ..weights import CheckpointError, sha256_of
from .checkpoint import build_evaluated_model, resolve_weights

__all__ = ['build_task', 'build_teacher', 'check_token_student', 'teacher_record']

_DISTILL_TASKS = {'logit': LogitDistillationTask, 'feature': FeatureDistillationTask, 'token': TokenDistillationTask}


def check_token_student(model_name: str) -> None:
    """Token distillation needs a student with a distillation head (``set_distilled_training``, as timm's task)."""
    if not hasattr(family_of(model_name).model_cls, 'set_distilled_training'):
        raise ValueError(f'--distill-type token: {model_name} has no distillation head (LSNet and SHViT have one); '
                         'use --distill-type logit or feature')


def build_teacher(name: str, checkpoint: str, num_classes: int, class_names: Optional[List[str]],
                  trust_pickle: bool = False) -> Tuple[nn.Module, Dict[str, Any]]:
    """The teacher ``name`` (``--distill-model``) with the weights of ``checkpoint`` (``--distill-checkpoint``: for a
    zoo model, anything ``tools/validate.py`` loads; for a timm model, a file timm loads as its pretrained weights, e.g.
    DeiT's ``regnety_160-a5fe301d.pth`` for ``regnety_160.deit_in1k``) or, without one, its released weights. A
    training checkpoint gives its EMA weights where it kept them (with ``--model-ema`` they chose
    ``model_best.pth``; timm loads a teacher's EMA weights too). In eval mode, without gradients, and (a zoo model)
    in its deploy form, which predicts the same and runs faster. Returns it and its data config (whose mean and std it expects).

    It must predict the student's ``num_classes`` classes, and a training checkpoint's class map must be the
    student's (``class_names``), in the same order: a teacher that cannot be loaded completely is refused."""
    if not checkpoint:
        teacher = create_model(name, pretrained=True) if is_zoo_model(name) else timm.create_model(name, pretrained=True)
        data_config: Dict[str, Any] = {}
    elif is_zoo_model(name):
        source = resolve_weights(name, checkpoint, trust_pickle=trust_pickle, option='--distill-checkpoint')
        if source.state is None:  # a zoo or official file: the student's class count, or a shape error
            source.num_classes = num_classes
        if source.class_names is not None and class_names is not None and list(source.class_names) != class_names:
            raise ValueError(f'--distill-checkpoint {checkpoint}: the teacher was trained on the classes '
                             f'{_short(source.class_names)}, the student on {_short(class_names)}; the teacher must '
                             'have the classes of the training split, in the same order')
        # a training checkpoint's EMA weights where it kept them: with --model-ema they chose model_best.pth
        teacher, data_config = build_evaluated_model(source, use_ema='state_dict_ema' in (source.state or {}))
    else:  # timm's own loading, with the checkpoint filter of the teacher's architecture, strict
        overlay = dict(file=os.fspath(checkpoint), num_classes=num_classes)
        try:
            teacher = timm.create_model(name, pretrained=True, num_classes=num_classes, pretrained_cfg_overlay=overlay)
        except (RuntimeError, OSError, KeyError, ValueError) as e:
            raise CheckpointError(f'--distill-checkpoint {checkpoint}: cannot be loaded into {name} with '
                                  f'{num_classes} classes: {e}') from e
        data_config = {}
    if teacher.num_classes != num_classes:
        where = f'--distill-checkpoint {checkpoint}' if checkpoint else f"--distill-model {name}'s released weights"
        raise ValueError(f'{where}: the teacher predicts {teacher.num_classes} classes, the student '
                         f'{num_classes}; give a teacher checkpoint for these classes')
    teacher = reparameterize(teacher) if is_zoo_model(name) else teacher.eval()
    teacher.requires_grad_(False)
    return teacher, resolve_data_config(data_config, model=teacher)


def teacher_record(args) -> Optional[Dict[str, str]]:
    """What a training checkpoint keeps of the teacher: its name, file and the file's SHA-256 (a resume checks that
    the teacher is the same; the file may have moved)."""
    if not args.distill_model:
        return None
    checkpoint = args.distill_checkpoint
    if checkpoint and not os.path.isfile(checkpoint):
        raise FileNotFoundError(f'--distill-checkpoint {checkpoint}: no such file')
    return {'model': args.distill_model, 'checkpoint': os.path.abspath(checkpoint) if checkpoint else '',
            'sha256': sha256_of(checkpoint) if checkpoint else ''}


def build_task(args, model: nn.Module, data_config: Dict[str, Any], device: torch.device, soft_targets: bool,
               teacher: Optional[Tuple[nn.Module, Dict[str, Any]]] = None) -> TrainingTask:
    """The training task of ``model`` (on ``device``, normalized with ``data_config``): its label loss is timm's
    (label smoothing ``args.smoothing``; soft targets when Mixup / CutMix makes them), and with a ``teacher`` (from
    :func:`build_teacher`) the distillation of ``args.distill_type``. With ``args.model_ema`` the task keeps the EMA
    of what it trains."""
    criterion = create_classification_loss(smoothing=args.smoothing, soft_targets=soft_targets)
    if teacher is None:
        task = ClassificationTask(model, criterion=criterion, device=device, verbose=False)
    else:
        teacher_model, teacher_config = teacher
        wrapped = DistillationTeacher(teacher_model.to(device), device=device)
        # the teacher sees the images as the student does, renormalized to its own mean and std
        _set_normalization(wrapped, 'mean_kd', 'std_kd', teacher_config)
        kwargs = dict(distill_loss_weight=args.distill_loss_weight, task_loss_weight=args.task_loss_weight)
        if args.distill_type == 'token':
            kwargs.update(distill_type=args.distill_target, temperature=args.distill_temperature)
        elif args.distill_type == 'logit':
            kwargs.update(temperature=args.distill_temperature)
        task = _DISTILL_TASKS[args.distill_type](model, wrapped, criterion=criterion, device=device, verbose=False,
                                                 **kwargs)
        _set_normalization(task, 'student_mean', 'student_std', data_config)
    task.to(device)
    if args.model_ema:
        task.setup_ema(decay=args.model_ema_decay, use_warmup=args.model_ema_warmup)
    return task


def _set_normalization(module: nn.Module, mean: str, std: str, data_config: Dict[str, Any]) -> None:
    for name, values in ((mean, data_config['mean']), (std, data_config['std'])):
        buffer = getattr(module, name)
        buffer.copy_(torch.tensor(values, dtype=buffer.dtype).view_as(buffer))


def _short(names: List[str], n: int = 5) -> str:
    return ', '.join(names[:n]) + (f', ... ({len(names)} in all)' if len(names) > n else '')
