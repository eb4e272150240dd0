"""Pictures of what a detector or a segmentor trained from a zoo config sees: mmdet's and mmseg's own
inferencers (``DetInferencer``, ``MMSegInferencer``) run the config with a checkpoint on images and draw the
result, boxes and masks or the colour-coded segmentation over the image, into PNG files."""
import glob
import os
from typing import List, Sequence

from PIL import Image

from ..train.predict import image_paths
from .runner import load_config

__all__ = ['predict']


def predict(config: str, checkpoint: str, inputs: Sequence[str], out_dir: str, score_thr: float = 0.3,
            device: str = 'cpu') -> List[str]:
    """Draw the predictions of ``config`` with the weights of ``checkpoint`` (an mmengine checkpoint, whose
    ``meta`` names the classes) on the images of ``inputs`` (files, folders, glob patterns) into
    ``<out_dir>/vis/<image name>.png``; detections below ``score_thr`` are left out. Returns the PNG paths."""
    if not os.path.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint}: no such file')
    if not 0 <= score_thr <= 1:
        raise ValueError(f'score_thr={score_thr!r} is not allowed; score_thr must be in [0, 1]')
    cfg = load_config(config, work_dir=out_dir)
    paths = image_paths(inputs)
    scope = cfg.get('default_scope')
    if scope == 'mmdet':
        from mmdet.apis import DetInferencer
        inferencer = DetInferencer(model=cfg, weights=checkpoint, device=device, scope=scope, show_progress=False)
        inferencer(paths, out_dir=out_dir, pred_score_thr=score_thr, no_save_pred=True)
    elif scope == 'mmseg':
        from mmseg.apis import MMSegInferencer
        inferencer = MMSegInferencer(model=cfg, weights=checkpoint, device=device, scope=scope)
        inferencer(paths, out_dir=out_dir, show=False)
    else:
        raise ValueError(f'{config}: default_scope {scope!r}; a detection (mmdet) or segmentation (mmseg) config '
                         'is needed')
    # the inferencers write each drawing under its image's name and format: PNG (lossless) for every one
    names = {os.path.splitext(os.path.basename(p))[0] for p in paths}
    pngs = []
    for drawn in sorted(glob.glob(os.path.join(out_dir, 'vis', '*'))):
        stem, ext = os.path.splitext(drawn)
        if os.path.basename(stem) not in names:
            continue
        if ext.lower() != '.png':
            with Image.open(drawn) as image:
                image.save(stem + '.png')
            os.remove(drawn)
        pngs.append(stem + '.png')
    return pngs
