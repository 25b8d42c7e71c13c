"""Draw the keypoint-wise adaptive factors (KAF) of a FoWKAL checkpoint on the
skeleton, as the FoWKAL paper's KAF figure: white = MSE (lambda_k = 0),
blue = AWing (lambda_k = 1).

    python tools/draw_kaf.py CHECKPOINT [--out kaf.png] [--metainfo FILE]

The factors are ``sigmoid(kaf_logits)`` of the checkpoint's ``FoWKALLoss``
(learned factors; also when it is the base loss of ``AFLHeatmapLoss``). The
skeleton links come from the dataset metainfo (by default MMPose's
``coco_wholebody.py`` for 133 keypoints, ``coco.py`` for 17). Keypoints are
drawn on a fixed template pose: the person of the synthetic data generator
(``mmpose_afl/datasets/synthetic.py``) with every random angle at the middle
of its range (upright, arms and legs half spread). For 133 keypoints the
face and both hands are also drawn enlarged. The mean factor of each part is
printed and shown in the titles.
"""
import argparse
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from matplotlib.colors import LinearSegmentedColormap  # noqa: E402

KAF_CMAP = LinearSegmentedColormap.from_list('kaf', ['white', 'blue'])
METAINFO = {
    133: 'configs/_base_/datasets/coco_wholebody.py',
    17: 'configs/_base_/datasets/coco.py',
}
# enlarged panels for 133 keypoints: title -> keypoint indices
ZOOMS = {
    'face': range(23, 91),
    'left hand': range(91, 112),
    'right hand': range(112, 133)
}


def load_factors(checkpoint: str) -> np.ndarray:
    """lambda_k [K] of the FoWKAL loss in an MMEngine checkpoint."""
    state = torch.load(checkpoint, map_location='cpu', weights_only=False)
    state = state.get('state_dict', state)
    keys = [k for k in state if k.endswith('kaf_logits')]
    if len(keys) != 1:
        raise SystemExit(
            f'{checkpoint}: expected one learned `kaf_logits` of a '
            f"FoWKALLoss(kaf='learned'), found {keys or 'none'}")
    return torch.sigmoid(state[keys[0]].float()).numpy()


class _Middle:
    """Stands in for the generator's random state: the middle of each
    range."""

    @staticmethod
    def uniform(low: float, high: float) -> float:
        return (low + high) / 2


def template_pose(num_keypoints: int) -> np.ndarray:
    """Keypoint positions [K, 2] (image coordinates, y down) of the
    generator's person at the middle of every range, height 1."""
    from mmpose_afl.datasets.synthetic import _body, _wholebody
    body = _body(_Middle(), 1.0, False)
    if num_keypoints == 17:
        return body
    if num_keypoints == 133:
        return _wholebody(body, 1.0)
    raise SystemExit(f'no template pose for {num_keypoints} keypoints '
                     '(17 or 133)')


def _draw(ax, pose: np.ndarray, factors: np.ndarray,
          links: Sequence[Sequence[int]], ids: Sequence[int], size: float):
    ids = list(ids)
    shown = set(ids)
    for a, b in links:
        if a in shown and b in shown:
            ax.plot(
                pose[[a, b], 0],
                pose[[a, b], 1],
                '-',
                color='0.6',
                lw=1,
                zorder=1)
    points = ax.scatter(
        pose[ids, 0],
        pose[ids, 1],
        c=factors[ids],
        cmap=KAF_CMAP,
        vmin=0,
        vmax=1,
        s=size,
        edgecolors='black',
        linewidths=0.5,
        zorder=2)
    ax.set_aspect('equal')
    ax.invert_yaxis()
    ax.axis('off')
    return points


def draw_kaf(factors: np.ndarray, links: Sequence[Sequence[int]],
             parts: Dict[str, List[int]], out: Path) -> None:
    """Write the figure of ``factors`` [K] to ``out`` (PNG)."""
    pose = template_pose(len(factors))
    means = {name: float(factors[ids].mean()) for name, ids in parts.items()}
    zooms = ZOOMS if len(factors) == 133 else {}
    fig = plt.figure(figsize=(10 if zooms else 5, 7))
    grid = fig.add_gridspec(
        len(zooms) or 1,
        2 if zooms else 1,
        width_ratios=[2, 1] if zooms else None)
    ax = fig.add_subplot(grid[:, 0])
    points = _draw(ax, pose, factors, links, range(len(factors)), 40)
    ax.set_title(
        'keypoint-wise adaptive factors\n' +
        ', '.join(f'{name} {value:.2f}' for name, value in means.items()),
        fontsize=9)
    for row, (title, ids) in enumerate(zooms.items()):
        zoom = fig.add_subplot(grid[row, 1])
        _draw(zoom, pose, factors, links, ids, 60)
        zoom.set_title(
            f'{title}: mean {factors[list(ids)].mean():.2f}', fontsize=9)
    bar = fig.colorbar(points, ax=fig.axes, shrink=0.6)
    bar.set_label('lambda_k   (0: MSE, 1: AWing)')
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        'checkpoint',
        help='checkpoint of a FoWKAL (or AFL(FoWKAL)) run with learned '
        'factors (kaf_logits in its state dict)')
    parser.add_argument(
        '--out',
        type=Path,
        default=Path('kaf.png'),
        help='figure to write (default: %(default)s)')
    parser.add_argument(
        '--metainfo',
        help='dataset metainfo file (default: '
        "MMPose's coco_wholebody.py / coco.py by K)")
    args = parser.parse_args(argv)

    from mmpose.datasets.datasets.utils import parse_pose_metainfo

    from mmpose_afl.models.losses.fowkal_loss import parts_from_metainfo
    factors = load_factors(args.checkpoint)
    metainfo = args.metainfo or METAINFO.get(len(factors))
    if metainfo is None:
        raise SystemExit(f'{len(factors)} keypoints: pass --metainfo')
    links = parse_pose_metainfo(dict(from_file=metainfo))['skeleton_links']
    parts = parts_from_metainfo(metainfo)
    draw_kaf(factors, links, parts, args.out)
    for name, ids in parts.items():
        print(f'{name}: {factors[ids].mean():.4f}')
    print(f'wrote {args.out}')


if __name__ == '__main__':
    main()
