"""Training and testing detectors and segmentors from the zoo's configs on mmengine's ``Runner``.

The same entry points serve mmdet and mmseg configs (the config's ``default_scope`` picks the library).
Single process, or one process per device under ``torchrun`` with ``--launcher pytorch``. On a machine
without CUDA a config written for GPUs is adapted, and the log says so: ``SyncBN`` becomes ``BN`` (no CPU
kernel), mixed precision (``AmpOptimWrapper``) becomes fp32, and processes talk over gloo. mmengine 0.10.7's
pytorch launcher assumes GPUs (it calls ``torch.cuda.set_device`` and gives DistributedDataParallel
``device_ids``), so on CPU the process group is opened here and the model wrapped by
:class:`CPUDistributedDataParallel`."""
import argparse
import logging
import os
from typing import Any, List, Optional, Sequence

import torch
import torch.distributed as dist
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.model import MMDistributedDataParallel

from ..train.engine import free_ddp
from .registry import MODEL_WRAPPERS

__all__ = ['CPUDistributedDataParallel', 'adapt_to_cpu', 'load_config', 'train_parser', 'test_parser', 'train',
           'test']


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DistributedDataParallel wrapper for CPU processes: mmengine passes ``device_ids=[LOCAL_RANK]``,
    which torch accepts only for modules on a GPU."""

    def __init__(self, module, device_ids=None, **kwargs):
        super().__init__(module=module, device_ids=None, **kwargs)


def _replace_sync_bn(node: Any) -> int:
    count = 0
    if isinstance(node, dict):
        if node.get('type') == 'SyncBN':
            node['type'] = 'BN'
            count += 1
        for v in node.values():
            count += _replace_sync_bn(v)
    elif isinstance(node, (list, tuple)):
        for v in node:
            count += _replace_sync_bn(v)
    return count


def adapt_to_cpu(cfg: Config) -> List[str]:
    """Make a GPU config runnable on CPU; returns what was changed."""
    changes = []
    if _replace_sync_bn(cfg.model):
        changes.append('SyncBN -> BN')
    wrapper = cfg.get('optim_wrapper', {})
    if wrapper.get('type') == 'AmpOptimWrapper':
        wrapper['type'] = 'OptimWrapper'
        wrapper.pop('loss_scale', None)
        changes.append('AmpOptimWrapper -> OptimWrapper (fp32)')
    env = cfg.setdefault('env_cfg', {})
    env.setdefault('dist_cfg', {})['backend'] = 'gloo'
    if cfg.get('model_wrapper_cfg') is None:
        cfg.model_wrapper_cfg = dict(type='zoo.CPUDistributedDataParallel', broadcast_buffers=False,
                                     find_unused_parameters=cfg.get('find_unused_parameters', False))
    return changes


def _init_cpu_process_group(cfg: Config) -> None:
    if cfg.launcher == 'pytorch' and not torch.cuda.is_available() and not dist.is_initialized():
        dist.init_process_group(backend='gloo')


def load_config(path: str, work_dir: Optional[str] = None, cfg_options: Optional[dict] = None,
                launcher: str = 'none') -> Config:
    if not os.path.isfile(path):
        raise FileNotFoundError(f'config not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    cfg.work_dir = work_dir or cfg.get('work_dir') or os.path.join(
        'work_dirs', os.path.splitext(os.path.basename(path))[0])
    if not torch.cuda.is_available():
        changes = adapt_to_cpu(cfg)
        if changes:
            print_log(f'no CUDA: {", ".join(changes)}', logger='current', level=logging.WARNING)
    return cfg


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument('--work-dir', help='directory for logs and checkpoints (default: work_dirs/<config name>)')
    parser.add_argument('--cfg-options', nargs='+', action=DictAction, default={},
                        help="override config entries, e.g. model.backbone.arch=lsnet_s 'train_dataloader.batch_size=4'")
    parser.add_argument('--launcher', choices=['none', 'pytorch'], default='none',
                        help="'pytorch' under torchrun (one process per device or CPU share)")
    parser.add_argument('--local-rank', '--local_rank', type=int, default=0, help=argparse.SUPPRESS)


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description='Train a detector or segmentor from a zoo config (mmengine Runner)')
    p.add_argument('config')
    p.add_argument('--resume', nargs='?', const='auto', default=None,
                   help="continue a run: a checkpoint, or no value / 'auto' for the work dir's latest")
    p.add_argument('--load-from', help='start from these weights (a whole detector / segmentor), without resuming')
    _common(p)
    return p


def test_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description='Evaluate a detector (COCO bbox / segm mAP) or segmentor (mIoU)')
    p.add_argument('config')
    p.add_argument('checkpoint')
    _common(p)
    return p


def _runner(cfg: Config):
    from mmengine.runner import Runner
    _init_cpu_process_group(cfg)
    return Runner.from_cfg(cfg)


def _leave_process_group(runner) -> None:
    """After a launched run's work is done, every rank leaves the process group together. A gloo group left to
    the interpreter's exit can abort a rank whose work had finished ("terminate called without an active
    exception"), and torchrun then fails the whole run. The runner's DDP wrapper goes first, while the group
    still lives (:func:`zoo.train.engine.free_ddp` says why)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        free_ddp(runner, 'model')
        dist.destroy_process_group()


def train(argv: Optional[Sequence[str]] = None):
    args = train_parser().parse_args(argv)
    cfg = load_config(args.config, args.work_dir, args.cfg_options, args.launcher)
    if args.resume == 'auto':
        cfg.resume, cfg.load_from = True, None
    elif args.resume:
        cfg.resume, cfg.load_from = True, args.resume
    elif args.load_from:
        cfg.load_from = args.load_from
    runner = _runner(cfg)
    runner.train()
    _leave_process_group(runner)
    return runner


def test(argv: Optional[Sequence[str]] = None):
    args = test_parser().parse_args(argv)
    if not os.path.isfile(args.checkpoint):
        raise FileNotFoundError(f'checkpoint not found: {args.checkpoint}')
    cfg = load_config(args.config, args.work_dir, args.cfg_options, args.launcher)
    cfg.load_from = args.checkpoint
    runner = _runner(cfg)
    metrics = runner.test()
    _leave_process_group(runner)
    return metrics
