"""COCO-WholeBody evaluation that returns each body part's AP and AR as
metric values (MMPose's ``CocoWholeBodyMetric`` only prints them);
docs/evaluation.md."""
from typing import List, Tuple

import numpy as np
from mmpose.evaluation.metrics import CocoWholeBodyMetric
from mmpose.registry import METRICS
from xtcocotools.cocoeval import COCOeval

STATS_NAMES = ('AP', 'AP .5', 'AP .75', 'AP (M)', 'AP (L)', 'AR', 'AR .5',
               'AR .75', 'AR (M)', 'AR (L)')


def hands_mean(left: float, right: float) -> float:
    """The ``hand`` value of the two sides' values: the mean of those that
    were evaluated (>= 0); -1 when neither was."""
    sides = [value for value in (left, right) if value >= 0]
    return float(np.mean(sides)) if sides else -1.


@METRICS.register_module()
class CocoWholeBodyPartMetric(CocoWholeBodyMetric):
    """COCO-WholeBody AP/AR of the whole body and of each part.

    Evaluates exactly as :class:`CocoWholeBodyMetric` (xtcocotools'
    ``COCOeval`` with the iou types ``keypoints_body``, ``_foot``,
    ``_face``, ``_lefthand``, ``_righthand`` and ``_wholebody`` and the
    matching slices of the dataset's sigmas) but returns the results
    instead of only printing them. Metric names (after the
    ``coco-wholebody/`` prefix):

    - whole body: ``AP``, ``AP .5``, ``AP .75``, ``AP (M)``, ``AP (L)``,
      ``AR``, ``AR .5``, ``AR .75``, ``AR (M)``, ``AR (L)`` -- the names
      :class:`CocoWholeBodyMetric` returns, so the stock configs'
      ``save_best='coco-wholebody/AP'`` keeps working;
    - per part: ``body_AP``, ``body_AR``, ``foot_AP``, ``foot_AR``,
      ``face_AP``, ``face_AR``, ``lefthand_AP``, ``lefthand_AR``,
      ``righthand_AP``, ``righthand_AR``, ``hand_AP``, ``hand_AR``.

    ``hand`` follows the convention of MMPose's model zoo and the
    COCO-WholeBody benchmark (the "Hand AP / AR" columns): the mean of the
    left-hand and right-hand results, each evaluated separately (answer of
    the dataset's author in the COCO-WholeBody repository,
    https://github.com/jin-s13/COCO-WholeBody/issues/38 and
    https://github.com/jin-s13/COCO-WholeBody/issues/40). A side
    without any ground truth (xtcocotools reports -1) is left out of the
    mean; with neither side, ``hand_*`` is -1 too.

    Args:
        As :class:`CocoWholeBodyMetric`.
    """

    def _do_python_keypoint_eval(self, outfile_prefix: str
                                 ) -> List[Tuple[str, float]]:
        """Evaluate every part with COCOeval.

        Args:
            outfile_prefix (str): The prefix of the result json files
                (``<prefix>.keypoints.json`` is read).

        Returns:
            list: (name, value) of the whole-body stats, then per-part AP
            and AR.
        """
        coco_det = self.coco.loadRes(f'{outfile_prefix}.keypoints.json')
        sigmas = np.array(self.dataset_meta['sigmas'])
        cuts = np.cumsum([
            0, self.body_num, self.foot_num, self.face_num, self.left_hand_num,
            self.right_hand_num
        ])
        parts = ['body', 'foot', 'face', 'lefthand', 'righthand']
        stats = {}
        for i, part in enumerate(parts):
            stats[part] = self._evaluate(coco_det, f'keypoints_{part}',
                                         sigmas[cuts[i]:cuts[i + 1]])
        stats['wholebody'] = self._evaluate(coco_det, 'keypoints_wholebody',
                                            sigmas)

        results = list(zip(STATS_NAMES, stats['wholebody']))
        for part in parts:
            results += [(f'{part}_AP', stats[part][0]),
                        (f'{part}_AR', stats[part][5])]
        for name, index in (('AP', 0), ('AR', 5)):
            results.append((f'hand_{name}',
                            hands_mean(stats['lefthand'][index],
                                       stats['righthand'][index])))
        return results

    def _evaluate(self, coco_det, iou_type: str,
                  sigmas: np.ndarray) -> List[float]:
        """The 10 summary stats of one COCOeval run (it prints them)."""
        coco_eval = COCOeval(
            self.coco, coco_det, iou_type, sigmas, use_area=self.use_area)
        coco_eval.params.useSegm = None
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
        return [float(v) for v in coco_eval.stats]
