"""What a zoo model sees in images: the top-k classes of each image of a file, a folder or a glob pattern, with
their probabilities, through the model's own preprocessing (its training checkpoint's data config, else its
pretrained cfg) in eager PyTorch, ``torch.compile`` or ONNX Runtime, train or deploy form.

Class names: a training checkpoint's class map, else ImageNet's (timm's ImageNet info) for a 1000-class model,
else the class index."""
import glob
import os
import tempfile
from typing import Any, Dict, List, Optional, Sequence

import torch
from PIL import Image, UnidentifiedImageError
from timm.data import ImageNetInfo
from timm.data.readers.img_extensions import get_img_extensions
from tqdm import tqdm

from ..deploy import reparameterize
from ..deploy.runtimes import FLOAT_RUNTIMES
from ..measure.forms import in_runtime
from .checkpoint import build_evaluated_model, resolve_weights
from .data import DatasetError, unreadable_image
from .engine import eval_transform

__all__ = ['image_paths', 'predict']


def _is_image(path: str) -> bool:
    return os.path.isfile(path) and path.lower().endswith(get_img_extensions())


def image_paths(inputs: Sequence[str]) -> List[str]:
    """The images that ``inputs`` name, in order: a file as given, a folder's images (recursively, sorted),
    a glob pattern's matching images (sorted; ``**`` recurses). An input that names nothing is an error."""
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]
    paths: Dict[str, None] = {}  # insertion-ordered: each image once, where it first comes
    for given in map(os.fspath, inputs):
        if os.path.isfile(given):
            found = [given]
        elif os.path.isdir(given):
            found = sorted(os.path.join(root, name) for root, _, names in os.walk(given) for name in names
                           if _is_image(os.path.join(root, name)))
        else:
            found = sorted(p for p in glob.glob(given, recursive=True) if _is_image(p))
            if not found:
                raise FileNotFoundError(f'input {given}: no such file or folder, and no image matches it as a '
                                        f'pattern (images end in {", ".join(get_img_extensions())})')
        if not found:
            raise DatasetError(f'input {given}: the folder holds no images ({", ".join(get_img_extensions())})')
        paths.update(dict.fromkeys(found))
    return list(paths)


def _class_names(class_names: Optional[List[str]], num_classes: int) -> List[str]:
    if class_names is not None:
        return list(class_names) + [str(i) for i in range(len(class_names), num_classes)]
    if num_classes == 1000:
        info = ImageNetInfo()
        return [info.index_to_description(i) for i in range(num_classes)]
    return [str(i) for i in range(num_classes)]


def _load(path: str, transform) -> torch.Tensor:
    try:
        with Image.open(path) as image:
            return transform(image.convert('RGB'))
    except (UnidentifiedImageError, OSError) as e:
        raise unreadable_image(path, e) from e


def predict(inputs: Sequence[str], model_name: Optional[str] = None, checkpoint: str = '', topk: int = 5,
            deploy: bool = False, runtime: str = 'eager', batch_size: int = 16, use_ema: bool = False,
            num_classes: Optional[int] = None, img_size: Optional[int] = None, crop_pct: Optional[float] = None,
            trust_pickle: bool = False, progress: bool = False) -> List[Dict[str, Any]]:
    """One entry per image, in the order of :func:`image_paths`: ``{'image': path, 'top': [{'index', 'label',
    'prob'}, ...]}``, the ``topk`` most probable classes first (softmax over the logits). The model and its
    weights come as in ``tools/validate.py``: a training checkpoint of ``tools/train.py`` names its model, a zoo
    or official file needs ``model_name``, no checkpoint is random init."""
    if runtime not in FLOAT_RUNTIMES:  # (the int8 runtimes need calibration images: tools/quantize.py)
        raise ValueError(f'runtime={runtime!r} is not allowed; runtime must be one of {", ".join(FLOAT_RUNTIMES)}')
    for name, value in (('topk', topk), ('batch_size', batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f'{name}={value!r} is not allowed; {name} must be a positive integer')
    paths = image_paths(inputs)  # before any work
    source = resolve_weights(model_name, checkpoint, num_classes, trust_pickle)
    model, data_config = build_evaluated_model(source, use_ema, img_size, crop_pct)
    if deploy:
        model = reparameterize(model)
    labels = _class_names(source.class_names, source.num_classes)
    transform = eval_transform(data_config)
    _, height, width = data_config['input_size']
    results: List[Dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as workdir, torch.no_grad():
        run = in_runtime(model, runtime, (height, width), torch.get_num_threads(), workdir)
        starts = range(0, len(paths), batch_size)
        for start in tqdm(starts, desc='predict', unit='batch', disable=not progress or len(starts) < 2):
            chunk = paths[start:start + batch_size]
            logits = torch.as_tensor(run(torch.stack([_load(p, transform) for p in chunk])))
            probs, indices = logits.float().softmax(-1).topk(min(topk, logits.shape[-1]), dim=-1)
            for path, p_row, i_row in zip(chunk, probs.tolist(), indices.tolist()):
                results.append(dict(image=path, top=[dict(index=i, label=labels[i], prob=p)
                                                     for i, p in zip(i_row, p_row)]))
    return results
