"""CocoWholeBodyPartMetric on tiny hand-made COCO-WholeBody ground truth and
predictions: per-part AP/AR derived by hand from the OKS, and equal to what
xtcocotools' COCOeval gives with each part's sigmas."""
import json

import numpy as np
import pytest
from mmpose.datasets.datasets.utils import parse_pose_metainfo
from mmpose.registry import METRICS
from xtcocotools.coco import COCO
from xtcocotools.cocoeval import COCOeval

import mmpose_afl  # noqa: F401

META = parse_pose_metainfo(
    dict(from_file='configs/_base_/datasets/coco_wholebody.py'))
SIGMAS = np.array(META['sigmas'])
# part -> (annotation field, keypoint slice), in MMPose's keypoint order
PARTS = {
    'body': ('keypoints', slice(0, 17)),
    'foot': ('foot_kpts', slice(17, 23)),
    'face': ('face_kpts', slice(23, 91)),
    'lefthand': ('lefthand_kpts', slice(91, 112)),
    'righthand': ('righthand_kpts', slice(112, 133)),
}
THRESHOLDS = np.linspace(0.5, 0.95, 10)  # COCO's OKS thresholds
AREA = 100 * 120


def person(rng, origin, visible=None):
    """133 keypoints inside a 100 x 120 box at ``origin``, all visible
    unless ``visible`` ([133] bool) says otherwise."""
    xy = origin + rng.uniform(0, [100, 120], (133, 2))
    v = np.full(133, 2) if visible is None else np.where(visible, 2, 0)
    return xy, v


def annotation(ann_id, image_id, xy, v, origin):
    flat = np.concatenate([np.where(v[:, None] > 0, xy, 0), v[:, None]], 1)
    ann = dict(
        id=ann_id,
        image_id=image_id,
        category_id=1,
        iscrowd=0,
        bbox=[float(origin[0]), float(origin[1]), 100., 120.],
        area=float(AREA),
        num_keypoints=int((v > 0).sum()))
    for field, part in PARTS.values():
        ann[field] = flat[part].ravel().tolist()
    return ann


def write_gt(path, people):
    """``people``: list of (image id, xy, v, origin)."""
    images = [
        dict(id=i, file_name=f'{i}.png', width=640, height=480)
        for i in sorted({p[0]
                         for p in people})
    ]
    anns = [annotation(n + 1, *p) for n, p in enumerate(people)]
    categories = [
        dict(
            id=1,
            name='person',
            supercategory='person',
            keypoints=[],
            skeleton=[])
    ]
    path.write_text(
        json.dumps(
            dict(images=images, annotations=anns, categories=categories)))
    return str(path)


def evaluate(tmp_path, gt_file, predictions):
    """The metric on ``predictions``: list of (image id, xy [133, 2],
    keypoint scores [133]), each a person box of score 1."""
    metric = METRICS.build(
        dict(
            type='CocoWholeBodyPartMetric',
            ann_file=gt_file,
            outfile_prefix=str(tmp_path / 'results')))
    metric.dataset_meta = META
    # (prediction, ground truth) pairs as CocoMetric.process makes them;
    # the ground truth comes from ann_file
    results = [(dict(
        id=n,
        img_id=image_id,
        category_id=1,
        keypoints=xy[None],
        keypoint_scores=scores[None],
        bbox_scores=np.ones(1),
        areas=np.array([AREA])), {})
               for n, (image_id, xy, scores) in enumerate(predictions)]
    metric.results = results
    return metric.evaluate(len(results))  # adds the 'coco-wholebody/' prefix


def shift_for_oks(oks, sigmas):
    """The distance d that moves every keypoint of a part so that its OKS
    ``mean_i exp(-d^2 / (2 area (2 sigma_i)^2))`` is ``oks`` (bisection)."""
    lo, hi = 0., 500.
    for _ in range(200):
        d = (lo + hi) / 2
        value = np.mean(np.exp(-d**2 / (2 * AREA * (2 * sigmas)**2)))
        lo, hi = (d, hi) if value > oks else (lo, d)
    return d


def test_single_person_matches_the_hand_computed_ap(tmp_path):
    # one person, one prediction: at each OKS threshold t the prediction
    # is a true positive iff OKS >= t, so AP = AR = (# t <= OKS) / 10
    rng = np.random.RandomState(0)
    origin = np.array([200., 150.])
    xy, v = person(rng, origin)
    gt_file = write_gt(tmp_path / 'gt.json', [(1, xy, v, origin)])
    part_oks = dict(
        body=1.0, foot=0.725, face=0.575, lefthand=0.875, righthand=0.3)
    pred = xy.copy()
    for part, oks in part_oks.items():
        ids = PARTS[part][1]
        if oks < 1:
            pred[ids, 0] += shift_for_oks(oks, SIGMAS[ids])
    values = evaluate(tmp_path, gt_file, [(1, pred, np.ones(133))])

    def ap(oks):
        return np.mean(THRESHOLDS <= oks)

    expected = {part: ap(oks) for part, oks in part_oks.items()}
    assert expected == pytest.approx(
        dict(body=1.0, foot=0.5, face=0.2, lefthand=0.8, righthand=0.0))
    sizes = dict(body=17, foot=6, face=68, lefthand=21, righthand=21)
    whole_oks = sum(part_oks[p] * n for p, n in sizes.items()) / 133
    assert ap(whole_oks) == pytest.approx(0.3)  # OKS 0.640
    prefix = 'coco-wholebody/'
    for part, value in expected.items():
        assert values[f'{prefix}{part}_AP'] == pytest.approx(value)
        assert values[f'{prefix}{part}_AR'] == pytest.approx(value)
    # hand: the mean of the two sides (MMPose zoo / COCO-WholeBody)
    assert values[prefix + 'hand_AP'] == pytest.approx(0.4)
    assert values[prefix + 'hand_AR'] == pytest.approx(0.4)
    # whole body under the stock CocoWholeBodyMetric's names
    assert values[prefix + 'AP'] == pytest.approx(0.3)
    assert values[prefix + 'AR'] == pytest.approx(0.3)
    assert values[prefix + 'AP .5'] == pytest.approx(1.0)
    assert values[prefix + 'AP .75'] == pytest.approx(0.0)
    assert values[prefix + 'AP (L)'] == pytest.approx(0.3)  # area 12000
    assert values[prefix + 'AP (M)'] == -1


def test_several_people_match_xtcocotools_per_part(tmp_path):
    rng = np.random.RandomState(1)
    people, predictions = [], []
    for image_id in (1, 2, 3):
        for origin in ([20., 30.], [300., 200.])[:1 + image_id % 2]:
            origin = np.array(origin)
            visible = rng.rand(133) > 0.2
            xy, v = person(rng, origin, visible)
            people.append((image_id, xy, v, origin))
            noise = rng.normal(0, rng.uniform(1, 8), (133, 2))
            predictions.append((image_id, xy + noise, rng.uniform(0.3, 1,
                                                                  133)))
    gt_file = write_gt(tmp_path / 'gt.json', people)
    values = evaluate(tmp_path, gt_file, predictions)

    coco = COCO(gt_file)
    detections = coco.loadRes(str(tmp_path / 'results.keypoints.json'))
    stats = {}
    for part, (_, ids) in PARTS.items():
        stats[part] = run_cocoeval(coco, detections, f'keypoints_{part}',
                                   SIGMAS[ids])
    whole = run_cocoeval(coco, detections, 'keypoints_wholebody', SIGMAS)
    prefix = 'coco-wholebody/'
    for part, part_stats in stats.items():
        assert values[f'{prefix}{part}_AP'] == part_stats[0]
        assert values[f'{prefix}{part}_AR'] == part_stats[5]
    assert values[prefix + 'hand_AP'] == pytest.approx(
        (stats['lefthand'][0] + stats['righthand'][0]) / 2)
    assert values[prefix + 'hand_AR'] == pytest.approx(
        (stats['lefthand'][5] + stats['righthand'][5]) / 2)
    names = [
        'AP', 'AP .5', 'AP .75', 'AP (M)', 'AP (L)', 'AR', 'AR .5', 'AR .75',
        'AR (M)', 'AR (L)'
    ]
    assert [values[prefix + n] for n in names] == list(whole)
    # the parts really differ here, so each value comes from its own part
    assert len({round(s[0], 6) for s in stats.values()}) >= 3


def run_cocoeval(coco, detections, iou_type, sigmas):
    evaluator = COCOeval(coco, detections, iou_type, sigmas, use_area=True)
    evaluator.params.useSegm = None
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    return list(evaluator.stats)


def test_a_side_without_ground_truth_is_left_out_of_hand(tmp_path):
    rng = np.random.RandomState(2)
    origin = np.array([100., 100.])
    visible = np.ones(133, bool)
    visible[PARTS['righthand'][1]] = False
    xy, v = person(rng, origin, visible)
    gt_file = write_gt(tmp_path / 'gt.json', [(1, xy, v, origin)])
    values = evaluate(tmp_path, gt_file, [(1, xy, np.ones(133))])
    assert values['coco-wholebody/righthand_AP'] == -1
    assert values['coco-wholebody/lefthand_AP'] == pytest.approx(1.0)
    assert values['coco-wholebody/hand_AP'] == pytest.approx(1.0)
