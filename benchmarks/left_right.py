"""Left/right confusion of a top-down model's predictions: per joint pair,
the share of people whose two channels (left and right) both land on the
same joint (and the share whose two channels are swapped), and the median
error per joint group, from the predictions ``mim test ... --dump
preds.pkl`` writes.

Why: on the synthetic WholeBody set MSE puts both knees (and both ankles)
on the same leg for most people, and the feet, which hang off the ankles,
follow; benchmarks/calibration_notes.md has the measurement. For a
person with both joints of a pair (a, b) labelled, the two predictions
are matched to the ground truth in the four possible ways, each scored by
its summed distance: own (a-a, b-b), swapped (a-b, b-a), or one joint
taken twice (a-a, b-a or a-b, b-b). The pair is *collapsed* when one
joint taken twice is strictly nearest, *swapped* when the swap is
strictly nearer than both others. Errors are divided by ``sqrt(area)``,
the scale COCO's OKS uses.

Example::

    mim test mmpose CONFIG --checkpoint CKPT --dump work_dirs/preds.pkl
    python benchmarks/left_right.py work_dirs/preds.pkl
"""
import argparse
import pickle
from pathlib import Path
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
    predictions ``a``, ``b`` to the ground truth is nearest (module
    docstring; ties go to ``'own'``)."""
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


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        epilog=__doc__.split('\n\n', 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        'dumps',
        type=Path,
        nargs='+',
        help='prediction pickles of mim test --dump (one '
        'row each)')
    args = parser.parse_args(argv)
    print('| predictions | people | ' + ' | '.join(f'{n} collapsed / swapped'
                                                   for n in PAIRS) + ' | ' +
          ' | '.join(f'{n} error' for n in GROUPS) + ' |')
    print('|---' * (2 + len(PAIRS) + len(GROUPS)) + '|')
    for path in args.dumps:
        samples = pickle.loads(path.read_bytes())
        shares, medians = left_right(samples)
        cells = [
            '{collapsed:.2f} / {swapped:.2f}'.format(
                **shares[n]) if n in shares else '' for n in PAIRS
        ]
        cells += [f'{medians[n]:.3f}' if n in medians else '' for n in GROUPS]
        print(f'| {path} | {len(samples)} | ' + ' | '.join(cells) + ' |')


if __name__ == '__main__':
    main()
