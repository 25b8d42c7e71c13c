"""COCO keypoint AP/AR overall and per stratum of the ground-truth people:
by occlusion, by number of labelled keypoints, by area and, where the
annotations carry them, by the synthetic generator's ``difficulty`` flags
(docs/evaluation.md).

How a stratum is evaluated. Every stratum reuses xtcocotools' ``COCOeval``
(OKS, greedy matching, 101-point interpolated precision, ``summarize``)
with the mechanism COCO itself uses for its area ranges (``AP (M)``,
``AP (L)``): the people outside the stratum become *ignored* ground truth,
so a detection matched to one of them is neither a true nor a false
positive, and an *unmatched* detection is ignored when it belongs outside
the stratum. For the area strata this is literally COCO's ``areaRng``
(ground truth by its ``area`` field, unmatched detections by their own
area), so ``AP_area_M`` with the default edges equals ``AP (M)``. The
other strata are properties of a ground-truth person that a detection does
not have; an unmatched detection belongs to the person it overlaps most
(highest OKS, computed anyway) and is ignored when that person is outside
the stratum. A detection whose highest OKS is below ``NOBODY_OKS`` (1e-4)
is nobody's and counts as a false positive in every stratum: OKS never
reaches 0 in floating point, and 1e-4 lies between what a wrong
prediction inside a person's box gets (every keypoint half a box off: about
0.01 with COCO's sigmas) and what a detection a box or more away from
everyone gets (about 2e-6 or less), so top-down predictions stay with
their own person and stray detections are not hidden in a stratum.
People that COCO already ignores (crowd, no labelled keypoint of the
evaluated part) stay ignored.

What this gives, and what the tests check: when no detection reaches OKS
0.5 with two people (separated people, as top-down evaluation with ground
truth boxes usually has), a stratum's AP and AR are exactly those of the
unstratified metric on a data set holding only the stratum's people and
the detections made for them; a stratum holding everyone equals the
overall AP/AR; for strata that partition the people the overall AR is the
mean of the strata's AR weighted by their number of people. No such
identity exists for AP: it depends on how the strata's scores interleave,
so the overall AP is not a function of the strata's APs. A stratum without
people gives -1 (COCO's convention for an empty area range), never NaN.

Strata and metric names (after the evaluator's prefix, e.g. ``coco/``;
each as ``AP_<stratum>`` and ``AR_<stratum>``):

- ``occl_none`` / ``occl_some`` / ``occl_heavy``: share of the labelled
  body keypoints that are labelled but not visible (``v = 1``): 0, in
  ``(0, heavy_occlusion]``, above ``heavy_occlusion`` (default 0.25);
- ``kpts_few`` / ``kpts_mid`` / ``kpts_many``: labelled body keypoints in
  ``[1, keypoint_edges[0]]``, up to ``keypoint_edges[1]``, above (default
  ``(5, 11)``: 1-5, 6-11, 12-17 of COCO's 17);
- ``area_S`` / ``area_M`` / ``area_L``: the annotation's ``area`` below
  ``area_edges[0]``, up to ``area_edges[1]``, above (default COCO's own
  ``(32**2, 96**2)``; on COCO ``area`` is the segmentation mask's area, in
  the synthetic sets the box's; with ``use_area=False`` COCOeval uses
  0.53 x the box area instead);
- only where annotations carry ``difficulty`` flags (``dict(flag=bool)``,
  mmpose_afl/datasets/synthetic.py): ``clean`` (no flag), each flag by its
  name (``occluded``, ``truncated``, ``unusual_pose``, ``small``) and
  ``any_flag``. The flags are read from ``ann_file``; without it the
  metric converts MMPose's ground truth, which drops them.

Occlusion and keypoint counts use the body keypoints (the ``keypoints``
field, also for WholeBody) so that the same thresholds apply to both
data sets; a person without labelled body keypoints is in none of these
strata.

Decision on the default edges: on real COCO val 2017 every occlusion and
keypoint-count stratum holds a sizeable share of the people, so they stay;
the area edges are COCO's own, and ``area_S`` is nearly empty there (COCO
gives people below 32**2 no keypoints). The counts are in
docs/evaluation.md. The metric logs every stratum's number of people at each
evaluation; change the edges through the arguments if a stratum is too
thin on other data.
"""
import contextlib
import copy
import io
from typing import Dict, List, Optional, Sequence, Set, Tuple

import numpy as np
from mmengine.logging import print_log
from mmpose.evaluation.metrics import CocoMetric
from mmpose.registry import METRICS
from xtcocotools.cocoeval import COCOeval

from .wholebody_part_metric import CocoWholeBodyPartMetric, hands_mean

GROUPS = ('occlusion', 'keypoints', 'area', 'flags')
NOBODY_OKS = 1e-4  # below it, an unmatched detection is nobody's
_ALL_AREAS = [0, 1e10]


class _StratumCOCOeval(COCOeval):
    """``COCOeval`` that evaluates one stratum after another without
    recomputing the OKS: :meth:`evaluate` once, then :meth:`stratum` per
    stratum."""

    def _prepare(self) -> None:
        super()._prepare()
        for gts in self._gts.values():
            for gt in gts:
                gt['coco_ignore'] = bool(gt['ignore'])
        self.outside: Set[int] = set()

    def evaluateImg(self, imgId, catId, aRng, maxDet):
        gts = self._gts[imgId, catId]
        for gt in gts:
            gt['ignore'] = gt['coco_ignore'] or gt['id'] in self.outside
        result = super().evaluateImg(imgId, catId, aRng, maxDet)
        ious = self.ious[imgId, catId]
        if result is None or not self.outside or len(ious) == 0:
            return result
        # rows of `ious`: the detections in result['dtIds'] order (both
        # sort by score the same way); columns: `gts` in stored order
        ious = np.asarray(ious)[:len(result['dtIds'])]
        nearest = ious.argmax(1)
        outside = np.array([
            ious[i, j] >= NOBODY_OKS and gts[j]['id'] in self.outside
            for i, j in enumerate(nearest)
        ], bool)
        result['dtIgnore'] = np.logical_or(
            result['dtIgnore'],
            np.logical_and(result['dtMatches'] < 0, outside[None]))
        return result

    def stratum(self,
                members: Optional[Set[int]],
                area: Sequence[float] = _ALL_AREAS) -> Tuple[float, float]:
        """(AP, AR) of the people in ``members`` (ids; ``None``: everyone)
        within the area range ``area``."""
        p = self.params
        self.outside = set() if members is None else {
            gt['id']
            for gts in self._gts.values()
            for gt in gts if not gt['coco_ignore'] and gt['id'] not in members
        }
        # one area range ('all' -> this one): COCO's M and L are not needed
        # here, and each range costs a pass over every image
        p.areaRng, p.areaRngLbl = [list(area)], ['all']
        cat_ids = p.catIds if p.useCats else [-1]
        self.evalImgs = [
            self.evaluateImg(img_id, cat_id, rng, p.maxDets[-1])
            for cat_id in cat_ids for rng in p.areaRng for img_id in p.imgIds
        ]
        self._paramsEval = copy.deepcopy(p)
        with contextlib.redirect_stdout(io.StringIO()):
            self.accumulate()
            self.summarize()
        return float(self.stats[0]), float(self.stats[5])


class StratifiedMixin:
    """Adds per-stratum AP/AR to a COCO keypoint metric (see the module
    docstring). Subclasses say which COCOeval runs to stratify in
    :meth:`_iou_types`."""

    def __init__(self,
                 *args,
                 heavy_occlusion: float = 0.25,
                 keypoint_edges: Tuple[int, int] = (5, 11),
                 area_edges: Tuple[float, float] = (32**2, 96**2),
                 strata: Sequence[str] = GROUPS,
                 **kwargs) -> None:
        if not 0 < heavy_occlusion < 1:
            raise ValueError('heavy_occlusion must be in (0, 1), got '
                             f'{heavy_occlusion!r}')
        for name, edges in (('keypoint_edges', keypoint_edges), ('area_edges',
                                                                 area_edges)):
            if len(edges) != 2 or not 0 < edges[0] < edges[1]:
                raise ValueError(f'{name} must be two increasing positive '
                                 f'numbers, got {edges!r}')
        unknown = set(strata) - set(GROUPS)
        if unknown:
            raise ValueError(f'strata must be a subset of {GROUPS}, got '
                             f'unknown {sorted(unknown)}')
        super().__init__(*args, **kwargs)
        self.heavy_occlusion = heavy_occlusion
        self.keypoint_edges = tuple(keypoint_edges)
        self.area_edges = tuple(area_edges)
        self.strata = tuple(strata)

    def _iou_types(self) -> List[Tuple[str, str, np.ndarray]]:
        """(name prefix, COCOeval iou type, sigmas) of each run."""
        return [('', self.iou_type, np.array(self.dataset_meta['sigmas']))]

    def members(self) -> Dict[str, Tuple[Optional[Set[int]], List[float]]]:
        """``{stratum: (ids of its people or None for all, area range)}``
        of the ground truth in ``self.coco``."""
        anns = list(self.coco.anns.values())
        found: Dict[str, Tuple[Optional[Set[int]], List[float]]] = {}

        def add(name, keep):
            found[name] = ({a['id'] for a in anns if keep(a)}, _ALL_AREAS)

        def labelled(ann):
            v = np.array(ann['keypoints'][2::3])
            return int((v > 0).sum()), int((v == 1).sum())

        if 'occlusion' in self.strata:

            def share(ann):
                n, hidden = labelled(ann)
                return hidden / n if n else -1.

            add('occl_none', lambda a: share(a) == 0)
            add('occl_some', lambda a: 0 < share(a) <= self.heavy_occlusion)
            add('occl_heavy', lambda a: share(a) > self.heavy_occlusion)
        if 'keypoints' in self.strata:
            few, mid = self.keypoint_edges
            add('kpts_few', lambda a: 1 <= labelled(a)[0] <= few)
            add('kpts_mid', lambda a: few < labelled(a)[0] <= mid)
            add('kpts_many', lambda a: labelled(a)[0] > mid)
        if 'area' in self.strata:
            small, medium = self.area_edges
            for name, rng in (('S', [0, small]), ('M', [small, medium]),
                              ('L', [medium, 1e10])):
                found[f'area_{name}'] = (None, rng)
        flags = sorted({f for a in anns for f in a.get('difficulty', {})})
        if 'flags' in self.strata and flags:

            def flagged(ann):
                return any(ann.get('difficulty', {}).values())

            add('clean', lambda a: 'difficulty' in a and not flagged(a))
            for flag in flags:
                add(flag,
                    lambda a, f=flag: bool(a.get('difficulty', {}).get(f)))
            add('any_flag', flagged)
        return found

    def _do_python_keypoint_eval(self, outfile_prefix: str) -> list:
        """The parent's results, then ``<part>AP_<stratum>`` and
        ``<part>AR_<stratum>`` of every stratum and COCOeval run."""
        results = list(super()._do_python_keypoint_eval(outfile_prefix))
        coco_det = self.coco.loadRes(f'{outfile_prefix}.keypoints.json')
        strata = self.members()
        counts = {
            name: 'area range' if ids is None else len(ids)
            for name, (ids, _) in strata.items()
        }
        print_log(f'{type(self).__name__}: people per stratum {counts}',
                  'current')
        per_run = {}
        for prefix, iou_type, sigmas in self._iou_types():
            evaluator = _StratumCOCOeval(self.coco, coco_det, iou_type, sigmas,
                                         self.use_area)
            evaluator.params.useSegm = None
            with contextlib.redirect_stdout(io.StringIO()):
                evaluator.evaluate()
            per_run[prefix] = {
                name: evaluator.stratum(ids, rng)
                for name, (ids, rng) in strata.items()
            }
        for prefix, values in per_run.items():
            for name, (ap, ar) in values.items():
                results += [(f'{prefix}AP_{name}', ap),
                            (f'{prefix}AR_{name}', ar)]
        return results + self._extra_results(per_run)

    def _extra_results(self, per_run: dict) -> List[Tuple[str, float]]:
        """Results derived from several runs (none here)."""
        return []


@METRICS.register_module()
class StratifiedCocoMetric(StratifiedMixin, CocoMetric):
    """:class:`CocoMetric` (same arguments, same ``AP``, ``AR``... values)
    plus AP/AR per stratum of the ground truth, e.g. ``coco/AP_occluded``,
    ``coco/AR_kpts_few``, ``coco/AP_area_M`` (strata, names and how a
    stratum is evaluated: module docstring).

    Args:
        heavy_occlusion (float): Share of labelled body keypoints with
            ``v = 1`` above which a person is ``occl_heavy``. Defaults to
            0.25.
        keypoint_edges (tuple[int, int]): Largest labelled body keypoint
            count of ``kpts_few`` and of ``kpts_mid``. Defaults to (5, 11).
        area_edges (tuple[float, float]): Area edges between ``area_S``,
            ``area_M`` and ``area_L``. Defaults to (32**2, 96**2), COCO's.
        strata (Sequence[str]): Groups of strata to report, any of
            ``'occlusion'``, ``'keypoints'``, ``'area'``, ``'flags'``.
            Defaults to all.
        **kwargs: Arguments of :class:`CocoMetric`.
    """


@METRICS.register_module()
class StratifiedCocoWholeBodyMetric(StratifiedMixin, CocoWholeBodyPartMetric):
    """:class:`CocoWholeBodyPartMetric` (whole body and per part) plus
    AP/AR per stratum of the whole body (``coco-wholebody/AP_occluded``)
    and of each part (``coco-wholebody/face_AP_occluded``, ...,
    ``hand_AP_occluded``: the mean of the two sides, as
    :class:`CocoWholeBodyPartMetric`'s ``hand_AP``).

    Args:
        As :class:`StratifiedCocoMetric`, with the arguments of
        :class:`CocoWholeBodyMetric`.
    """

    def _iou_types(self) -> List[Tuple[str, str, np.ndarray]]:
        sigmas = np.array(self.dataset_meta['sigmas'])
        cuts = np.cumsum([
            0, self.body_num, self.foot_num, self.face_num, self.left_hand_num,
            self.right_hand_num
        ])
        parts = ['body', 'foot', 'face', 'lefthand', 'righthand']
        return [('', 'keypoints_wholebody', sigmas)] + [
            (f'{part}_', f'keypoints_{part}', sigmas[cuts[i]:cuts[i + 1]])
            for i, part in enumerate(parts)
        ]

    def _extra_results(self, per_run: dict) -> List[Tuple[str, float]]:
        results = []
        for name in per_run['lefthand_']:
            for index, stat in enumerate(('AP', 'AR')):
                results.append(
                    (f'hand_{stat}_{name}',
                     hands_mean(per_run['lefthand_'][name][index],
                                per_run['righthand_'][name][index])))
        return results
