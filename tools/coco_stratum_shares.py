"""Count the people of each stratum of the stratified COCO metric in a COCO
keypoint annotation file, and print each stratum's number and share.

    python tools/coco_stratum_shares.py ANN.json [--heavy-occlusion 0.25]
        [--keypoint-edges 5 11] [--area-edges 1024 9216] [--markdown]

The strata are the metric's own: ``StratifiedCocoMetric.members()`` says
who is in an occlusion or keypoint-count stratum, and the metric's
``COCOeval`` (``_StratumCOCOeval.stratum``) decides who is in an area range,
evaluated here with every person's ground truth as its own detection. A
person counts in a stratum when that evaluation does not ignore them, so
people that COCO ignores (crowd regions, no labelled keypoint) are in no
stratum and shares are of the people COCO evaluates. Where annotations carry
an ``area_source`` field (how their ``area`` was obtained), the area strata
are also split by it. Measured shares on COCO val 2017: docs/evaluation.md.
"""
import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

COCO_META = 'configs/_base_/datasets/coco.py'


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('ann_file', help='COCO person keypoint annotations')
    parser.add_argument(
        '--heavy-occlusion',
        type=float,
        default=None,
        help='occl_heavy threshold (default: the metric\'s)')
    parser.add_argument(
        '--keypoint-edges',
        type=int,
        nargs=2,
        default=None,
        metavar=('FEW', 'MID'),
        help='labelled keypoint edges (default: the metric\'s)')
    parser.add_argument(
        '--area-edges',
        type=float,
        nargs=2,
        default=None,
        metavar=('SMALL', 'MEDIUM'),
        help='area edges (default: the metric\'s, COCO\'s 32**2 and 96**2)')
    parser.add_argument(
        '--markdown',
        action='store_true',
        help='print a Markdown table instead of plain columns')
    return parser.parse_args(argv)


def _metric(ann_file: str, **edges):
    """The stratified metric with its default edges where ``edges`` gives
    None, COCO's sigmas, and the annotations loaded quietly."""
    import contextlib
    import io

    import mmpose
    from mmpose.datasets.datasets.utils import parse_pose_metainfo

    from mmpose_afl.evaluation.metrics.stratified_metric import \
        StratifiedCocoMetric
    with contextlib.redirect_stdout(io.StringIO()):
        metric = StratifiedCocoMetric(
            ann_file=ann_file,
            strata=('occlusion', 'keypoints', 'area'),
            **{
                k: v
                for k, v in edges.items() if v is not None
            })
    meta = Path(mmpose.__file__).parent / '.mim' / COCO_META
    metric.dataset_meta = parse_pose_metainfo(
        dict(from_file=str(meta if meta.is_file() else COCO_META)))
    return metric


def stratum_counts(ann_file: str,
                   heavy_occlusion: Optional[float] = None,
                   keypoint_edges: Optional[Sequence[int]] = None,
                   area_edges: Optional[Sequence[float]] = None) -> dict:
    """People per stratum of ``ann_file`` as the stratified metric sees
    them.

    Args:
        ann_file (str): COCO keypoint annotation file.
        heavy_occlusion (float, optional): The metric's argument. Defaults
            to None (the metric's default).
        keypoint_edges (Sequence[int], optional): The metric's argument.
            Defaults to None (the metric's default).
        area_edges (Sequence[float], optional): The metric's argument.
            Defaults to None (the metric's default).

    Returns:
        dict: ``evaluated`` (people COCO evaluates), ``annotations`` (all
        person annotations), ``strata`` (``{name: count}`` in the metric's
        order) and ``by_source`` (``{name: Counter of area_source}``, empty
        without ``area_source`` fields).
    """
    import contextlib
    import io

    from mmpose_afl.evaluation.metrics.stratified_metric import \
        _StratumCOCOeval
    metric = _metric(
        ann_file,
        heavy_occlusion=heavy_occlusion,
        keypoint_edges=None
        if keypoint_edges is None else tuple(keypoint_edges),
        area_edges=None if area_edges is None else tuple(area_edges))
    coco = metric.coco
    anns = list(coco.anns.values())
    source = {a['id']: a.get('area_source') for a in anns}
    # every person with a labelled keypoint, as its own detection
    detections = [
        dict(
            image_id=a['image_id'],
            category_id=a['category_id'],
            keypoints=list(a['keypoints']),
            score=1.0) for a in anns
        if np.any(np.asarray(a['keypoints'][2::3]) > 0)
    ]
    sigmas = np.array(metric.dataset_meta['sigmas'])
    with contextlib.redirect_stdout(io.StringIO()):
        coco_det = coco.loadRes(detections)
        evaluator = _StratumCOCOeval(coco, coco_det, metric.iou_type, sigmas,
                                     metric.use_area)
        evaluator.params.useSegm = None
        evaluator.evaluate()
    # maxDets would drop the detections (never the ground truth) beyond
    # the 20th of an image; counting uses the ground truth only
    strata: Dict[str, int] = {}
    by_source: Dict[str, Counter] = {}
    for name, (ids, rng) in metric.members().items():
        evaluator.stratum(ids, rng)
        kept: List[int] = []
        for result in evaluator.evalImgs:
            if result is None:
                continue
            kept += [
                gt_id
                for gt_id, ignored in zip(result['gtIds'], result['gtIgnore'])
                if not ignored
            ]
        strata[name] = len(kept)
        if any(s is not None for s in source.values()):
            by_source[name] = Counter(source[i] for i in kept)
    evaluator.stratum(None)
    evaluated = sum(
        int(np.sum(np.logical_not(r['gtIgnore']))) for r in evaluator.evalImgs
        if r is not None)
    return dict(
        evaluated=evaluated,
        annotations=len(anns),
        strata=strata,
        by_source=by_source,
        metric=metric)


def format_table(counts: dict, markdown: bool = False) -> str:
    """The counts of :func:`stratum_counts` as a table: stratum, people,
    share of the evaluated people and, with ``area_source`` fields, the
    count per source."""
    total = counts['evaluated']
    sources = sorted({s
                      for c in counts['by_source'].values()
                      for s in c},
                     key=str)
    header = ['stratum', 'people', 'share'] + [str(s) for s in sources]
    rows = []
    for name, number in counts['strata'].items():
        share = f'{100 * number / total:.1f} %' if total else '-'
        by = counts['by_source'].get(name, Counter())
        rows.append([name, str(number), share] +
                    [str(by.get(s, 0)) for s in sources])
    if markdown:
        lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
        lines += ['| ' + ' | '.join(row) + ' |' for row in rows]
    else:
        widths = [
            max(len(r[i]) for r in rows + [header])
            for i in range(len(header))
        ]
        lines = [
            '  '.join(c.ljust(w) for c, w in zip(row, widths)).rstrip()
            for row in [header] + rows
        ]
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    counts = stratum_counts(args.ann_file, args.heavy_occlusion,
                            args.keypoint_edges, args.area_edges)
    metric = counts['metric']
    print(f'{args.ann_file}: {counts["annotations"]} person annotations, '
          f'{counts["evaluated"]} evaluated by COCO (not crowd, at least '
          'one labelled keypoint); heavy_occlusion '
          f'{metric.heavy_occlusion}, keypoint_edges '
          f'{metric.keypoint_edges}, area_edges {metric.area_edges}')
    print(format_table(counts, args.markdown))
    return 0


if __name__ == '__main__':
    sys.exit(main())
