"""Classification training, evaluation and prediction (``tools/train.py``, ``tools/validate.py``,
``tools/predict.py``)."""
from .config import ConfigError, load_config, parse_train_args, train_parser
from .data import DatasetError, ShardSampler, build_loader, make_digits_imagefolder
from .checkpoint import load_training_checkpoint, read_training_checkpoint, save_training_checkpoint
from .engine import OutputFolderError, evaluate, setup_distributed, train
from .predict import predict
from .validate import validate

__all__ = ['ConfigError', 'load_config', 'parse_train_args', 'train_parser', 'DatasetError', 'ShardSampler',
           'build_loader', 'make_digits_imagefolder', 'OutputFolderError', 'evaluate', 'load_training_checkpoint',
           'save_training_checkpoint', 'setup_distributed', 'train', 'predict', 'read_training_checkpoint', 'validate']
