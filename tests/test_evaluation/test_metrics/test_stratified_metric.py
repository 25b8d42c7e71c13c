"""StratifiedCocoMetric / StratifiedCocoWholeBodyMetric: AP/AR per stratum
on tiny hand-made ground truth, against hand-computed values, against the
unstratified metric on a data set holding only the stratum's people, and in
a real MMEngine Runner test on the synthetic set."""
import json

import numpy as np
import pytest
from mmpose.datasets.datasets.utils import parse_pose_metainfo
from mmpose.registry import METRICS

import mmpose_afl  # noqa: F401
from tests.e2e import REPO

COCO_META = parse_pose_metainfo(
    dict(from_file='configs/_base_/datasets/coco.py'))
WB_META = parse_pose_metainfo(
    dict(from_file='configs/_base_/datasets/coco_wholebody.py'))
WB_FIELDS = (('keypoints', 17), ('foot_kpts', 6), ('face_kpts', 68),
             ('lefthand_kpts', 21), ('righthand_kpts', 21))
THRESHOLDS = np.linspace(0.5, 0.95, 10)


def make_person(rng, origin, size=(100., 120.), v=None, num=17, **extra):
    """A person: ``num`` keypoints inside the box at ``origin``."""
    xy = np.asarray(origin) + rng.uniform(0, size, (num, 2))
    v = np.full(num, 2) if v is None else np.asarray(v)
    return dict(xy=xy, v=v, origin=list(origin), size=list(size), **extra)


def write_gt(path, people, wholebody=False):
    """``people``: dicts of :func:`make_person` with ``image`` (id) and
    optionally ``difficulty``; annotation ids are 1, 2, ... in order."""
    anns = []
    for n, p in enumerate(people):
        flat = np.concatenate(
            [np.where(p['v'][:, None] > 0, p['xy'], 0), p['v'][:, None]], 1)
        ann = dict(
            id=n + 1,
            image_id=p['image'],
            category_id=1,
            iscrowd=0,
            bbox=p['origin'] + p['size'],
            area=float(np.prod(p['size'])),
            num_keypoints=int((p['v'] > 0).sum()))
        start = 0
        for field, num in (WB_FIELDS if wholebody else WB_FIELDS[:1]):
            ann[field] = flat[start:start + num].ravel().tolist()
            start += num
        if 'difficulty' in p:
            ann['difficulty'] = p['difficulty']
        anns.append(ann)
    images = [
        dict(id=i, file_name=f'{i}.png', width=640, height=480)
        for i in sorted({p['image']
                         for p in people})
    ]
    path.write_text(
        json.dumps(
            dict(
                images=images,
                annotations=anns,
                categories=[
                    dict(
                        id=1,
                        name='person',
                        supercategory='person',
                        keypoints=[],
                        skeleton=[])
                ])))
    return str(path)


def evaluate(tmp_path, gt_file, predictions, metric_type, **kwargs):
    """The metric on ``predictions``: list of (image id, xy [K, 2], score),
    each a person box of score 1 whose keypoints all score ``score``."""
    wholebody = 'WholeBody' in metric_type
    metric = METRICS.build(
        dict(
            type=metric_type,
            ann_file=gt_file,
            outfile_prefix=str(tmp_path / 'results'),
            **kwargs))
    metric.dataset_meta = WB_META if wholebody else COCO_META
    metric.results = [(dict(
        id=n,
        img_id=image,
        category_id=1,
        keypoints=xy[None],
        keypoint_scores=np.full((1, len(xy)), score),
        bbox_scores=np.ones(1)), {})
                      for n, (image, xy, score) in enumerate(predictions)]
    return metric.evaluate(len(metric.results))


def shift_for_oks(oks, sigmas, area):
    """Distance d moving every keypoint so that the OKS
    ``mean_i exp(-d^2 / (2 area (2 sigma_i)^2))`` is ``oks`` (bisection)."""
    lo, hi = 0., 1000.
    for _ in range(200):
        d = (lo + hi) / 2
        value = np.mean(np.exp(-d**2 / (2 * area * (2 * sigmas)**2)))
        lo, hi = (d, hi) if value > oks else (lo, d)
    return d


def at_oks(person, oks, sigmas):
    pred = person['xy'].copy()
    pred[:, 0] += shift_for_oks(oks, sigmas, np.prod(person['size']))
    return pred


SIGMAS = np.array(COCO_META['sigmas'])
FLAGS = dict(occluded=False, truncated=False)


def three_people(rng):
    """A and B occluded (flag), C clean, far apart in one image; A has 2
    of its 17 keypoints at v = 1 (share 0.12), B 8 (0.47), C none."""
    v_a, v_b = np.full(17, 2), np.full(17, 2)
    v_a[:2], v_b[:8] = 1, 1
    return [
        make_person(
            rng, [20., 20.],
            v=v_a,
            image=1,
            difficulty=dict(FLAGS, occluded=True)),
        make_person(
            rng, [300., 20.],
            v=v_b,
            image=1,
            difficulty=dict(FLAGS, occluded=True)),
        make_person(rng, [20., 300.], image=1, difficulty=dict(FLAGS)),
    ]


def test_hand_computed_ap_overall_and_per_stratum(tmp_path):
    rng = np.random.RandomState(0)
    a, b, c = three_people(rng)
    gt_file = write_gt(tmp_path / 'gt.json', [a, b, c])
    # scores C > A > B; OKS A 0.92, B 0.62, C 0.77
    predictions = [(1, at_oks(c, 0.77, SIGMAS), 0.9),
                   (1, at_oks(a, 0.92, SIGMAS), 0.8),
                   (1, at_oks(b, 0.62, SIGMAS), 0.7)]
    values = evaluate(tmp_path, gt_file, predictions, 'StratifiedCocoMetric')
    # overall, per OKS threshold t (101-point interpolated precision):
    #   t <= 0.60: all three true positives              AP_t = 1
    #   t in .65-.75: C, A true, B false: recall 1/3, 2/3 at precision 1
    #                 -> recall thresholds 0..0.66 at 1   AP_t = 67/101
    #   t in .80-.90: C false, A true, B false: precision 1/2 up to recall
    #                 1/3 (thresholds 0..0.33)            AP_t = 17/101
    #   t = 0.95: nothing                                AP_t = 0
    ap = (3 + 3 * 67 / 101 + 3 * 17 / 101) / 10
    assert values['coco/AP'] == pytest.approx(ap)
    assert values['coco/AR'] == pytest.approx((3 + 3 * 2 / 3 + 3 / 3) / 10)
    # occluded = {A, B}: C's detection is ignored (matched to C, ignored
    # ground truth, for t <= .75; unmatched but C's for t >= .8), so
    #   t <= 0.60: 1;  t in .65-.90: A true, B false: 51/101;  0.95: 0
    occluded = (3 + 6 * 51 / 101) / 10
    assert values['coco/AP_occluded'] == pytest.approx(occluded)
    assert values['coco/AR_occluded'] == pytest.approx((3 + 6 * 0.5) / 10)
    assert values['coco/AP_any_flag'] == pytest.approx(occluded)
    # clean = {C}: true positive for t <= .75, false positive above
    assert values['coco/AP_clean'] == pytest.approx(0.6)
    assert values['coco/AR_clean'] == pytest.approx(0.6)
    assert values['coco/AP_truncated'] == -1  # nobody: COCO's empty value
    # occlusion shares: C none (= clean), A some (alone: 1 for t <= .9),
    # B heavy (alone: 1 for t <= .6)
    assert values['coco/AP_occl_none'] == pytest.approx(0.6)
    assert values['coco/AP_occl_some'] == pytest.approx(0.9)
    assert values['coco/AP_occl_heavy'] == pytest.approx(0.3)
    # 17 labelled keypoints each, area 12000 > 96^2: everyone is in
    # kpts_many and area_L, which equal the overall values
    for name in ('kpts_many', 'area_L'):
        assert values[f'coco/AP_{name}'] == pytest.approx(ap)
        assert values[f'coco/AR_{name}'] == pytest.approx(values['coco/AR'])
    for name in ('kpts_few', 'kpts_mid', 'area_S', 'area_M'):
        assert values[f'coco/AP_{name}'] == -1


def test_a_detection_of_nobody_is_a_false_positive_in_every_stratum(tmp_path):
    rng = np.random.RandomState(2)
    a, _, c = three_people(rng)
    gt_file = write_gt(tmp_path / 'gt.json', [a, c])
    stray = c['xy'] + [480., 0.]  # > 211 px from everyone: OKS 0
    predictions = [(1, stray, 0.9), (1, c['xy'], 0.6), (1, a['xy'], 0.5)]
    values = evaluate(tmp_path, gt_file, predictions, 'StratifiedCocoMetric')
    # overall: false, true, true -> precision 2/3 at every recall
    assert values['coco/AP'] == pytest.approx(2 / 3)
    # clean = {C}: the stray false positive, then C (A's detection is
    # ignored with A): precision 1/2 at every recall; occluded alike
    assert values['coco/AP_clean'] == pytest.approx(0.5)
    assert values['coco/AP_occluded'] == pytest.approx(0.5)


def test_a_stratum_is_the_metric_on_its_people_alone(tmp_path):
    """Several images, separated people of every kind, noisy predictions:
    each stratum's AP/AR equals plain CocoMetric's on a ground truth and
    predictions holding only that stratum's people; the partitions' AR
    add up to the overall AR; area strata equal COCO's AP (M) / AP (L)."""
    rng = np.random.RandomState(3)
    people, predictions = [], []
    origins = ([10., 10.], [220., 10.], [430., 10.], [10., 250.], [220., 250.])
    for image in range(1, 5):
        for origin in origins[:2 + image % 4]:
            size = [rng.uniform(40, 110), rng.uniform(60, 150)]
            v = np.where(rng.rand(17) < rng.choice([0, 0.1, 0.5]), 1, 2)
            v[rng.rand(17) < rng.choice([0, 0.3, 0.8])] = 0
            v[:1] = 2
            flags = dict(
                occluded=bool(rng.rand() < 0.4), small=bool(rng.rand() < 0.3))
            person = make_person(
                rng, origin, size, v=v, image=image, difficulty=flags)
            people.append(person)
            noise = rng.normal(0, rng.uniform(0.5, 9), (17, 2))
            predictions.append((image, person['xy'] + noise, rng.rand()))
    values = evaluate(tmp_path, write_gt(tmp_path / 'gt.json', people),
                      predictions, 'StratifiedCocoMetric')
    metric = METRICS.build(
        dict(type='StratifiedCocoMetric', ann_file=str(tmp_path / 'gt.json')))
    strata = {
        name: ids
        for name, (ids, _) in metric.members().items() if ids is not None
    }
    assert {len(ids) for ids in strata.values()} - {0}  # non-trivial
    checked = 0
    for name, ids in strata.items():
        if not ids:
            assert values[f'coco/AP_{name}'] == -1
            continue
        keep = [i for i, p in enumerate(people) if i + 1 in ids]
        sub = tmp_path / name
        sub.mkdir()
        alone = evaluate(sub,
                         write_gt(sub / 'gt.json', [people[i] for i in keep]),
                         [predictions[i] for i in keep], 'CocoMetric')
        assert values[f'coco/AP_{name}'] == pytest.approx(alone['coco/AP'])
        assert values[f'coco/AR_{name}'] == pytest.approx(alone['coco/AR'])
        checked += 1
    assert checked >= 8
    # the AP differs between strata, so each value is its own stratum's
    assert len({round(values[f'coco/AP_{n}'], 6) for n in strata}) >= 5
    for group in (('occl_none', 'occl_some', 'occl_heavy'),
                  ('kpts_few', 'kpts_mid', 'kpts_many'), ('clean',
                                                          'any_flag')):
        sizes = [len(strata[n]) for n in group]
        assert sum(sizes) == len(people)  # a partition
        weighted = sum(s * values[f'coco/AR_{n}']
                       for s, n in zip(sizes, group) if s)
        assert weighted / len(people) == pytest.approx(values['coco/AR'])
    assert values['coco/AP_area_M'] == pytest.approx(values['coco/AP (M)'])
    assert values['coco/AP_area_L'] == pytest.approx(values['coco/AP (L)'])
    assert values['coco/AR_area_M'] == pytest.approx(values['coco/AR (M)'])


def test_membership_by_hand(tmp_path):
    rng = np.random.RandomState(1)
    v = [np.full(17, 2) for _ in range(4)]
    v[0][:4] = 1  # 4 / 17 = 0.235 occluded: some; 17 labelled
    v[1][:5] = 1  # 5 / 17 = 0.294: heavy
    v[2][5:] = 0  # 5 labelled, none occluded: few
    v[3][:6], v[3][12:] = 0, 1  # 11 labelled, 5 of them occluded: mid
    people = [
        make_person(rng, [200. * i, 10.], v=vi, image=1)
        for i, vi in enumerate(v)
    ]
    metric = METRICS.build(
        dict(
            type='StratifiedCocoMetric',
            ann_file=write_gt(tmp_path / 'gt.json', people)))
    members = {n: ids for n, (ids, _) in metric.members().items()}
    assert members['occl_none'] == {3}
    assert members['occl_some'] == {1}
    assert members['occl_heavy'] == {2, 4}
    assert members['kpts_few'] == {3}
    assert members['kpts_mid'] == {4}
    assert members['kpts_many'] == {1, 2}
    assert 'clean' not in members  # no difficulty flags in these annotations
    assert metric.members()['area_M'] == (None, [32**2, 96**2])


@pytest.mark.parametrize('field, value', [('heavy_occlusion', 1.5),
                                          ('keypoint_edges', (11, 5)),
                                          ('area_edges', (0, 10)),
                                          ('strata', ('occlusion', 'pose'))])
def test_bad_arguments_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        METRICS.build(dict(type='StratifiedCocoMetric', **{field: value}))


def test_wholebody_per_part_strata_and_hand_mean(tmp_path):
    """The face AP of the occluded people equals CocoWholeBodyPartMetric's
    face AP on those people alone; hand_AP_<stratum> is the mean of the
    sides."""
    rng = np.random.RandomState(4)
    wb_sigmas = np.array(WB_META['sigmas'])
    people, predictions = [], []
    for i, occluded in enumerate([True, True, False, False]):
        person = make_person(
            rng, [150. * i, 20.],
            num=133,
            image=1 + i % 2,
            difficulty=dict(occluded=occluded))
        people.append(person)
        pred = person['xy'].copy()
        pred[23:91] = at_oks(
            dict(xy=person['xy'][23:91], size=person['size']),
            [0.92, 0.62, 0.82, 0.72][i], wb_sigmas[23:91])
        pred[91:112, 1] += 3. * i  # left hand worse and worse
        predictions.append((1 + i % 2, pred, [0.9, 0.5, 0.7, 0.6][i]))
    values = evaluate(
        tmp_path,
        write_gt(tmp_path / 'gt.json', people, wholebody=True),
        predictions,
        'StratifiedCocoWholeBodyMetric',
        strata=('flags', ))
    p = 'coco-wholebody/'
    # face alone: occluded OKS 0.92 (score .9) and 0.62 (score .5):
    # t <= .6 both (1), t in .65-.9 only the first (51/101), .95 none
    assert values[p + 'face_AP_occluded'] == pytest.approx(
        (3 + 6 * 51 / 101) / 10)
    sub = tmp_path / 'occluded'
    sub.mkdir()
    alone = evaluate(sub,
                     write_gt(sub / 'gt.json', people[:2], wholebody=True),
                     predictions[:2], 'CocoWholeBodyPartMetric')
    for part in ('face', 'lefthand', 'body', 'foot'):
        assert values[f'{p}{part}_AP_occluded'] == pytest.approx(
            alone[f'{p}{part}_AP'])
    assert values[p + 'AP_occluded'] == pytest.approx(alone[p + 'AP'])
    for stratum in ('occluded', 'clean', 'any_flag'):
        assert values[f'{p}hand_AP_{stratum}'] == pytest.approx(
            (values[f'{p}lefthand_AP_{stratum}'] +
             values[f'{p}righthand_AP_{stratum}']) / 2)
    assert values[p + 'lefthand_AP_clean'] < 1  # the sides really differ
    assert not any('occl_' in k or 'area_' in k for k in values)


@pytest.mark.parametrize('kind', ['coco', 'wholebody'])
def test_runner_test_on_the_synthetic_set(kind, request, tmp_path):
    """MMEngine's Runner with the metric in the config, on the generated
    synthetic val set (random weights: only the wiring is checked)."""
    from mmengine.config import Config
    from mmengine.runner import Runner
    data_root = request.getfixturevalue(f'synthetic_{kind}')
    name = dict(coco='coco', wholebody='coco-wholebody')[kind]
    cfg = Config.fromfile(
        str(REPO / f'configs/baseline/td-hm_res18_1xb16-20e_synthetic-{name}-'
            '128x96.py'))
    root = f'{data_root}/'
    cfg.test_dataloader.dataset.data_root = root
    cfg.test_dataloader.num_workers = 0
    cfg.test_dataloader.persistent_workers = False
    ann = dict(
        coco='person_keypoints_val2017.json',
        wholebody='coco_wholebody_val_v1.0.json')[kind]
    cfg.test_evaluator = dict(
        type=dict(
            coco='StratifiedCocoMetric',
            wholebody='StratifiedCocoWholeBodyMetric')[kind],
        ann_file=f'{root}annotations/{ann}')
    cfg.work_dir = str(tmp_path)
    cfg.default_hooks.logger.interval = 1
    values = Runner.from_cfg(cfg).test()
    flags = ('occluded', 'truncated', 'unusual_pose', 'small')
    parts = [''] if kind == 'coco' else ['', 'body_', 'face_', 'hand_']
    for part in parts:
        for stratum in ('occl_none', 'kpts_many', 'area_M', 'clean',
                        'any_flag', *flags):
            for stat in ('AP', 'AR'):
                value = values[f'{name}/{part}{stat}_{stratum}']
                assert value == -1 or 0 <= value <= 1
    assert f'{name}/AP' in values and f'{name}/AP (M)' in values
