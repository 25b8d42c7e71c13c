"""COCO annotations of the people of a synthetic image
(:mod:`mmpose_afl.datasets.synthetic`).

The visibility of every keypoint is read off the layer map of what was
drawn last at its pixel, so the labels are exact: ``v = 2`` where its own
person is on top, ``v = 1`` where something else is (an occluder or a
person drawn later; the coordinates are kept), ``v = 0`` and ``x = y = 0``
outside the image. A person with fewer than three body keypoints in the
image is not annotated. The difficulty flags go into the annotation's
extra ``difficulty`` field, which MMPose ignores.
"""
from typing import Dict, List, Sequence, Tuple

import numpy as np

from .synthetic_pose import COCO_NAMES, COCO_SKELETON, PARTS

CATEGORIES = [
    dict(
        id=1,
        name='person',
        supercategory='person',
        keypoints=COCO_NAMES,
        skeleton=COCO_SKELETON)
]
# (layer id, keypoints, body height, difficulty flags) of a drawn person
Person = Tuple[int, np.ndarray, float, Dict[str, bool]]


def _xywh(points: np.ndarray, pad: float, w: int, h: int) -> List[float]:
    x1, y1 = np.maximum(points.min(0) - pad, 0)
    x2, y2 = np.minimum(points.max(0) + pad, [w - 1, h - 1])
    return [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]


def _annotations(layer: np.ndarray, people: Sequence[Person],
                 wholebody: bool) -> List[dict]:
    """COCO annotations (without ids) of the people drawn into ``layer``."""
    h, w = layer.shape
    annotations = []
    for layer_id, kpts, height, flags in people:
        xi = np.round(kpts[:, 0]).astype(int)
        yi = np.round(kpts[:, 1]).astype(int)
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        vis = np.zeros(len(kpts), int)
        on_top = np.zeros(len(kpts), bool)
        on_top[inside] = layer[yi[inside], xi[inside]] == layer_id
        vis[inside] = np.where(on_top[inside], 2, 1)
        if (vis[:17] > 0).sum() < 3:
            continue  # nearly all of the person is outside the image
        xy = np.where(vis[:, None] > 0, kpts, 0.0)
        labelled = kpts[vis > 0]
        bbox = [round(v, 2) for v in _xywh(labelled, 0.08 * height, w, h)]
        flat = np.concatenate([xy, vis[:, None]], 1)
        ann = dict(
            keypoints=[round(float(v), 2) for v in flat[:17].ravel()],
            num_keypoints=int((vis > 0).sum()),
            bbox=bbox,
            area=round(bbox[2] * bbox[3], 2),
            iscrowd=0,
            category_id=1,
            segmentation=[[
                bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1],
                bbox[0] + bbox[2], bbox[1] + bbox[3], bbox[0],
                bbox[1] + bbox[3]
            ]],
            difficulty=flags)
        if wholebody:
            start = 17
            for name, num in PARTS:
                part = flat[start:start + num]
                ann[name] = [round(float(v), 2) for v in part.ravel()]
                valid = bool((part[:, 2] > 0).any())
                short = name.replace('_kpts', '')
                ann[f'{short}_valid'] = valid
                if short != 'foot':
                    pts = part[part[:, 2] > 0, :2]
                    ann[f'{short}_box'] = ([
                        round(v, 2) for v in _xywh(pts, 0.02 * height, w, h)
                    ] if valid else [0.0, 0.0, 0.0, 0.0])
                start += num
        annotations.append(ann)
    return annotations
