"""Left/right confusion of a top-down model's predictions, per joint pair:
which of the four matchings of a pair's two predictions to its ground
truth is nearest (own, swapped, or one joint taken twice: *collapsed*),
and the median error per joint group, from the samples that ``mim test
... --dump preds.pkl`` writes. ``benchmarks/left_right.py`` prints them
per dump; benchmarks/calibration_notes.md has why and what was measured.

The pair is *collapsed* when one joint taken twice is strictly nearest,
*swapped* when the swap is strictly nearer than both others. Errors are
divided by ``sqrt(area)``, the scale COCO's OKS uses.
"""
from typing import Dict, List, Sequence, Tuple

import numpy as np

PAIRS = {
    'elbows': (7, 8),
    'wrists': (9, 10),
    'knees': (13, 14),
    'ankles': (15, 16)
}
GROUPS = {
    'elbows': [7, 8],
    'wrists': [9, 10],
    'knees': [13, 14],
    'ankles': [15, 16],
    'feet': list(range(17, 23)),
    'face': list(range(23, 91)),
    'hands': list(range(91, 133))
}


def matching(pred: np.ndarray, gt: np.ndarray, a: int, b: int) -> str:
    """``'collapsed'``, ``'swapped'`` or ``'own'``: which matching of
    predictions ``a``, ``b`` to the ground truth is nearest, each
    matching scored by its summed distance (ties go to ``'own'``)."""
    dist = lambda i, j: float(np.linalg.norm(pred[i] - gt[j]))  # noqa: E731
    own = dist(a, a) + dist(b, b)
    swapped = dist(a, b) + dist(b, a)
    twice = min(dist(a, a) + dist(b, a), dist(a, b) + dist(b, b))
    if twice < min(own, swapped):
        return 'collapsed'
    return 'swapped' if swapped < own else 'own'


def left_right(
    samples: Sequence[dict]
) -> Tuple[Dict[str, Dict[str, float]], Dict[str, float]]:
    """(per pair, the share of people whose pair is collapsed / swapped;
    median error / sqrt(area) per joint group) over the dumped samples;
    groups and pairs the samples' keypoints do not have (COCO's 17) are
    left out."""
    found: Dict[str, List[str]] = {name: [] for name in PAIRS}
    errors: Dict[str, List[float]] = {name: [] for name in GROUPS}
    for sample in samples:
        pred = np.asarray(sample['pred_instances']['keypoints'])[0]
        gt = np.asarray(sample['gt_instances']['keypoints'])[0]
        labelled = np.asarray(sample['gt_instances']['keypoints_visible'])[0]
        labelled = labelled > 0
        scale = np.sqrt(sample['raw_ann_info']['area'])
        error = np.linalg.norm(pred - gt, axis=1) / scale
        for name, (a, b) in PAIRS.items():
            if labelled[a] and labelled[b]:
                found[name].append(matching(pred, gt, a, b))
        for name, joints in GROUPS.items():
            joints = [j for j in joints if j < len(gt) and labelled[j]]
            errors[name] += error[joints].tolist()
    shares = {
        name: {
            kind: v.count(kind) / len(v)
            for kind in ('collapsed', 'swapped')
        }
        for name, v in found.items() if v
    }
    return shares, {
        name: float(np.median(v))
        for name, v in errors.items() if v
    }
