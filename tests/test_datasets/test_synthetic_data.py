"""The generated datasets, read by MMPose's own datasets, pipelines and
metric."""
import hashlib
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from mmpose.utils import register_all_modules

from mmpose_afl.datasets.synthetic import (PARTS, UNUSUAL_POSES, _body,
                                           generate_dataset)
from tests.e2e import REPO

register_all_modules()  # default scope 'mmpose' for datasets and pipelines

ANN = dict(
    coco='annotations/person_keypoints_{}2017.json',
    wholebody='annotations/coco_wholebody_{}_v1.0.json')
NUM_KEYPOINTS = dict(coco=17, wholebody=133)


def _pipeline():
    codec = dict(
        type='MSRAHeatmap',
        input_size=(96, 128),
        heatmap_size=(24, 32),
        sigma=2)
    return [
        dict(type='LoadImage'),
        dict(type='GetBBoxCenterScale'),
        dict(type='TopdownAffine', input_size=codec['input_size']),
        dict(type='GenerateTarget', encoder=codec),
        dict(type='PackPoseInputs')
    ]


@pytest.mark.parametrize('kind', ['coco', 'wholebody'])
def test_loads_through_mmpose_dataset_and_pipeline(kind, request):
    from mmpose.registry import DATASETS
    root = request.getfixturevalue('synthetic_coco' if kind ==
                                   'coco' else 'synthetic_wholebody')
    dataset = DATASETS.build(
        dict(
            type='CocoDataset' if kind == 'coco' else 'CocoWholeBodyDataset',
            data_root=str(root),
            data_mode='topdown',
            ann_file=ANN[kind].format('train'),
            data_prefix=dict(img='train2017/'),
            pipeline=_pipeline()))
    raw = json.loads((root / ANN[kind].format('train')).read_text())
    labelled = [a for a in raw['annotations'] if a['num_keypoints'] > 0]
    assert len(dataset) == len(labelled) > 0
    sample = dataset[0]
    k = NUM_KEYPOINTS[kind]
    assert sample['inputs'].shape == (3, 128, 96)
    assert sample['data_samples'].gt_fields.heatmaps.shape == (k, 32, 24)
    assert sample['data_samples'].gt_instances.keypoints.shape == (1, k, 2)


@pytest.mark.parametrize('kind', ['coco', 'wholebody'])
def test_annotations_are_consistent(kind, request):
    root = request.getfixturevalue('synthetic_coco' if kind ==
                                   'coco' else 'synthetic_wholebody')
    for split in ('train', 'val'):
        data = json.loads((root / ANN[kind].format(split)).read_text())
        images = {im['id']: im for im in data['images']}
        assert data['categories'][0]['keypoints'][0] == 'nose'
        for ann in data['annotations']:
            im = images[ann['image_id']]
            parts = [np.array(ann['keypoints']).reshape(-1, 3)]
            if kind == 'wholebody':
                parts += [np.array(ann[n]).reshape(-1, 3) for n, _ in PARTS]
            kpts = np.concatenate(parts)
            assert len(kpts) == NUM_KEYPOINTS[kind]
            assert set(np.unique(kpts[:, 2])) <= {0, 1, 2}
            hidden = kpts[:, 2] == 0
            assert not kpts[hidden, :2].any(), 'v=0 must have x=y=0'
            assert ann['num_keypoints'] == int((kpts[:, 2] > 0).sum())
            x, y, w, h = ann['bbox']
            assert x >= 0 and y >= 0 and w > 0 and h > 0
            assert x + w <= im['width'] and y + h <= im['height']
            shown = kpts[~hidden, :2]
            assert (shown >= [x - 0.5, y - 0.5]).all()
            assert (shown <= [x + w + 0.5, y + h + 0.5]).all()
            assert ann['area'] == pytest.approx(w * h, abs=0.1)
            if kind == 'wholebody':
                for name, _ in PARTS:
                    part = np.array(ann[name]).reshape(-1, 3)
                    short = name.replace('_kpts', '')
                    assert ann[f'{short}_valid'] == bool(part[:, 2].any())
                    if short == 'foot' or not ann[f'{short}_valid']:
                        continue
                    bx, by, bw, bh = ann[f'{short}_box']
                    pts = part[part[:, 2] > 0, :2]
                    assert (pts >= [bx - 0.5, by - 0.5]).all()
                    assert (pts <= [bx + bw + 0.5, by + bh + 0.5]).all()


def test_difficulty_is_uneven_and_labelled(synthetic_coco, tmp_path):
    generate_dataset(tmp_path, 'coco', num_train=60, num_val=1, seed=3)
    data = json.loads((tmp_path / ANN['coco'].format('train')).read_text())
    anns = data['annotations']
    flags = {
        k: sum(a['difficulty'][k] for a in anns)
        for k in anns[0]['difficulty']
    }
    easy = sum(not any(a['difficulty'].values()) for a in anns)
    assert all(count > 0 for count in flags.values()), flags
    assert 0.3 * len(anns) < easy < 0.8 * len(anns)
    vis = np.concatenate(
        [np.array(a['keypoints']).reshape(-1, 3)[:, 2] for a in anns])
    # occluded (v=1) and truncated (v=0) keypoints both occur, but most
    # keypoints are visible
    assert (vis == 1).mean() > 0.02 and (vis == 0).mean() > 0.01
    assert (vis == 2).mean() > 0.6
    truncated = [a for a in anns if a['difficulty']['truncated']]
    assert np.mean([a['num_keypoints'] for a in truncated
                    ]) < np.mean([a['num_keypoints'] for a in anns])


def _digest(root):
    return {
        p.relative_to(root).as_posix():
        hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob('*')) if p.is_file()
    }


@pytest.mark.parametrize('kind', ['coco', 'wholebody'])
def test_same_seed_same_bytes(kind, tmp_path):
    a = _digest_of(tmp_path / 'a', kind, seed=1)
    b = _digest_of(tmp_path / 'b', kind, seed=1)
    c = _digest_of(tmp_path / 'c', kind, seed=2)
    assert a == b
    assert len(a) == 2 + 3 + 2  # 2 json, 3 train + 2 val images
    assert all(a[f] != c[f] for f in a)


def _digest_of(root, kind, seed):
    generate_dataset(root, kind, num_train=3, num_val=2, seed=seed)
    return _digest(root)


def test_bad_arguments_are_named(tmp_path):
    with pytest.raises(ValueError, match='kind'):
        generate_dataset(tmp_path, 'mpii')
    with pytest.raises(ValueError, match='num_train'):
        generate_dataset(tmp_path, 'coco', num_train=0)


@pytest.mark.parametrize('kind', ['coco', 'wholebody'])
def test_ground_truth_scores_perfectly_with_the_real_metric(kind, request):
    """The val file works as the metric's ann_file: the ground truth, fed
    back as predictions, gets AP = 1 from MMPose's CocoMetric /
    CocoWholeBodyMetric (xtcocotools underneath)."""
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    from mmpose.registry import METRICS
    root = request.getfixturevalue('synthetic_coco' if kind ==
                                   'coco' else 'synthetic_wholebody')
    ann_file = root / ANN[kind].format('val')
    data = json.loads(ann_file.read_text())
    metric = METRICS.build(
        dict(
            type='CocoMetric' if kind == 'coco' else 'CocoWholeBodyMetric',
            ann_file=str(ann_file)))
    base = 'coco' if kind == 'coco' else 'coco_wholebody'
    metric.dataset_meta = parse_pose_metainfo(
        dict(from_file=f'configs/_base_/datasets/{base}.py'))
    for ann in data['annotations']:
        if ann['num_keypoints'] == 0:
            continue
        parts = [ann['keypoints']]
        if kind == 'wholebody':
            parts += [ann[n] for n, _ in PARTS]
        kpts = np.concatenate([np.array(p).reshape(-1, 3) for p in parts])
        x, y, w, h = ann['bbox']
        pred = dict(
            keypoints=kpts[None, :, :2],
            keypoint_scores=np.ones((1, len(kpts))),
            bbox_scores=np.ones(1),
            bboxes=np.array([[x, y, x + w, y + h]]))
        sample = dict(
            id=ann['id'],
            img_id=ann['image_id'],
            category_id=1,
            pred_instances=pred,
            gt_instances=dict(),
            ori_shape=(240, 320))
        metric.process([], [sample])
    results = metric.evaluate(size=len(metric.results))
    key = 'coco/AP' if kind == 'coco' else 'coco-wholebody/AP'
    assert results[key] == pytest.approx(1.0)


# the default layout's annotation files of generate_dataset(root, kind,
# num_train=3, num_val=2, seed=1) as the generator wrote them before the
# 'multi_scale' layout existed (other configs and tests depend on them)
DEFAULT_JSON_SHA256 = {
    ('coco', 'train'):
    'b4292fb1ac58e00125f4110c8496f7380b8fe3f748d47bc55943aa9e8679d2bd',
    ('coco', 'val'):
    '8b2d38298588d9b24fcbbc480af675a6a46b9be45ac9d8ad8ade30b8d35b4f6b',
    ('wholebody', 'train'):
    'b9f0e0680182b709142658a82db13c9465d9c97eeab77f0d42c49ec6600c047b',
    ('wholebody', 'val'):
    'c47463509761c97c83bede46c4f04fb17536040812bed23223bc3904644675fc',
}


@pytest.mark.parametrize('kind', ['coco', 'wholebody'])
def test_default_layout_is_unchanged(kind, tmp_path):
    written = generate_dataset(tmp_path, kind, num_train=3, num_val=2, seed=1)
    for split, path in written.items():
        digest = hashlib.sha256(open(path, 'rb').read()).hexdigest()
        assert digest == DEFAULT_JSON_SHA256[kind, split], split


def _multi(tmp_path, **kwargs):
    generate_dataset(tmp_path, 'coco', layout='multi_scale', **kwargs)
    return [
        json.loads((tmp_path / ANN['coco'].format(split)).read_text())
        for split in ('train', 'val')
    ]


def _extent(ann):
    """Vertical extent of the labelled keypoints: about the body height
    for an upright, untruncated person (nose to ankles)."""
    kpts = np.array(ann['keypoints']).reshape(-1, 3)
    ys = kpts[kpts[:, 2] > 0, 1]
    return ys.max() - ys.min()


def test_multi_scale_people_have_clearly_different_sizes(tmp_path):
    train, _ = _multi(tmp_path, num_train=40, num_val=2, seed=5)
    anns = train['annotations']
    assert train['info']['layout'] == 'multi_scale'
    by_image = {}
    for ann in anns:
        by_image.setdefault(ann['image_id'], []).append(ann)
    counts = [len(people) for people in by_image.values()]
    assert max(counts) == 4 and np.mean(counts) > 2.5

    def upright(ann):
        return not (ann['difficulty']['unusual_pose']
                    or ann['difficulty']['truncated'])

    ratios = []
    for people in by_image.values():
        extents = sorted(_extent(a) for a in people if upright(a))
        if len(extents) >= 2:
            ratios.append(extents[-1] / extents[0])
    # tiers 35-60 / 75-110 / 130-190 px: people of one image differ > 2x
    assert np.median(ratios) > 2
    flags = {
        k: sum(a['difficulty'][k] for a in anns)
        for k in anns[0]['difficulty']
    }
    assert set(flags) == {'occluded', 'truncated', 'unusual_pose', 'small'}
    assert all(count > 0 for count in flags.values()), flags
    # 'small' is the small tier (about a third of the people), the shortest
    assert 0.2 < flags['small'] / len(anns) < 0.5
    small = [
        _extent(a) for a in anns if upright(a) and a['difficulty']['small']
    ]
    other = [
        _extent(a) for a in anns if upright(a) and not a['difficulty']['small']
    ]
    assert max(small) < 60 < np.percentile(other, 10)


def test_multi_scale_is_deterministic_and_differs_from_default(tmp_path):
    a = _digest_of_layout(tmp_path / 'a', 'multi_scale')
    b = _digest_of_layout(tmp_path / 'b', 'multi_scale')
    c = _digest_of_layout(tmp_path / 'c', 'default')
    assert a == b and a.keys() == c.keys()
    assert all(a[f] != c[f] for f in a)


def _digest_of_layout(root, layout):
    generate_dataset(
        root, 'coco', num_train=3, num_val=2, seed=1, layout=layout)
    return _digest(root)


def test_bad_layout_is_named(tmp_path):
    with pytest.raises(ValueError, match='layout'):
        generate_dataset(tmp_path, 'coco', layout='crowd')


def _angle(a, b):
    """Signed angle in degrees from vector ``a`` to vector ``b``."""
    return np.degrees(np.arctan2(a[0] * b[1] - a[1] * b[0], a @ b))


@pytest.mark.parametrize('unusual', [None, *UNUSUAL_POSES])
def test_unusual_poses_stay_in_their_angle_ranges(unusual):
    # re-derived from the keypoints: the torso's tilt (neck at the origin
    # to the hips' centre, against straight down) and each limb's upper
    # angle (against the torso's down) and bend (lower against upper part)
    rng, twin = np.random.default_rng(0), np.random.default_rng(0)
    tilts, uppers, bends = [], {'arm': [], 'leg': []}, []
    for _ in range(300):
        k = _body(rng, 100.0, unusual)
        _body(twin, 100.0, None)  # every option draws as many numbers
        assert rng.random() == twin.random()
        down = (k[11] + k[12]) / 2
        tilts.append(_angle(np.array([0.0, 1.0]), down))
        for root, mid, end, sign, limb in ((5, 7, 9, 1, 'arm'), (6, 8, 10, -1,
                                                                 'arm'),
                                           (11, 13, 15, 1,
                                            'leg'), (12, 14, 16, -1, 'leg')):
            upper = _angle(down, k[mid] - k[root]) * sign
            uppers[limb].append(upper)
            bends.append(abs(_angle(k[mid] - k[root], k[end] - k[mid])))
    tilts, bends = np.abs(tilts), np.array(bends)
    arm, leg = np.array(uppers['arm']), np.array(uppers['leg'])
    eps = 1e-6
    if unusual is None:  # tilt +-12, arm 5..70, leg -5..25, bend <= 110
        assert tilts.max() <= 12 + eps
        assert arm.min() >= 5 - eps and arm.max() <= 70 + eps
        assert leg.min() >= -5 - eps and leg.max() <= 25 + eps
        assert bends.max() <= 110 + eps
    elif unusual == 'mild':  # each range widened by 45 degrees
        assert 60 < tilts.max() <= 90 + eps
        assert arm.min() >= -40 - eps and arm.max() <= 115 + eps
        assert leg.min() >= -50 - eps and leg.max() <= 70 + eps
        assert arm.min() < 0 and leg.max() > 40
        assert bends.max() <= 155 + eps and bends.max() > 120
    else:  # any angle
        assert tilts.max() > 150 and abs(arm).max() > 150
        assert bends.max() > 170


def test_mild_unusual_pose_changes_only_the_unusual_people(tmp_path):

    def read(root, split):
        data = json.loads((root / ANN['coco'].format(split)).read_text())
        by_image = {i['id']: [] for i in data['images']}
        for ann in data['annotations']:
            by_image[ann['image_id']].append(ann)
        return data['info'], by_image

    generate_dataset(tmp_path / 'any', 'coco', num_train=30, num_val=2, seed=4)
    generate_dataset(
        tmp_path / 'mild',
        'coco',
        num_train=30,
        num_val=2,
        seed=4,
        unusual_pose='mild')
    info_any, any_pose = read(tmp_path / 'any', 'train')
    info_mild, mild = read(tmp_path / 'mild', 'train')
    assert 'unusual_pose' not in info_any
    assert info_mild['unusual_pose'] == 'mild'
    same = changed = 0
    for image_id, people in any_pose.items():
        png = f'train2017/{image_id:012d}.png'
        a = (tmp_path / 'any' / png).read_bytes()
        b = (tmp_path / 'mild' / png).read_bytes()
        unusual = any(p['difficulty']['unusual_pose']
                      for p in people + mild[image_id])
        if unusual:
            changed += a != b
        else:  # the same people, keypoints and pixels
            assert a == b and people == mild[image_id], image_id
            same += 1
    assert same > 10 and changed > 3


def test_bad_unusual_pose_is_named(tmp_path):
    with pytest.raises(ValueError, match='unusual_pose'):
        generate_dataset(tmp_path, 'coco', unusual_pose='upside_down')


def test_cli_mild_set_does_not_overwrite_make_datas(tmp_path):
    # without --out, a mild set goes next to make data's, not over it
    proc = subprocess.run([
        sys.executable,
        str(REPO / 'tools' / 'make_synthetic_data.py'), '--kind', 'coco',
        '--num-train', '1', '--num-val', '1', '--unusual-pose', 'mild'
    ],
                          cwd=tmp_path,
                          capture_output=True,
                          text=True,
                          timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.returncode == 0, proc.stderr
    written = tmp_path / 'data' / 'synthetic_coco_mild'
    info = json.loads((written / ANN['coco'].format('val')).read_text())
    assert info['info']['unusual_pose'] == 'mild'
    assert not (tmp_path / 'data' / 'synthetic_coco').exists()


# generate_dataset(root, kind, num_train=3, num_val=2, seed=1, **options)
# as the random-skeleton generator writes it, for every option the
# committed results and configs use: sha256 of the (train, val) annotation
# files and of the decoded pixels of every image (the pixels, not the PNG
# bytes, so that another zlib inside OpenCV does not fail the test)
OLD_SETS = {
    ('coco', ()):
    ('b4292fb1ac58e00125f4110c8496f7380b8fe3f748d47bc55943aa9e8679d2bd',
     '8b2d38298588d9b24fcbbc480af675a6a46b9be45ac9d8ad8ade30b8d35b4f6b',
     '5622a9cad0dfa591b82b2ec3c603a50a243ea25200887c780a8ce5ea976d5215'),
    ('wholebody', ()):
    ('b9f0e0680182b709142658a82db13c9465d9c97eeab77f0d42c49ec6600c047b',
     'c47463509761c97c83bede46c4f04fb17536040812bed23223bc3904644675fc',
     'b0a8f106ffc3fae2a04058244d2332f4ea3134e44d6e347c9b390d048e832244'),
    ('coco', (('layout', 'multi_scale'), )):
    ('7f75dd5ee734f37383e516b1e5694d0a801d67123c282f393ffaff0e620820dc',
     '8eafd5a070f0227dafd6d091c7de5abfa36aede2b80db821648b37e6b265aece',
     '258af2fb715be1c15aa3ab1d07e274805b96ec32b4498f14b3aa11813f485025'),
    ('coco', (('unusual_pose', 'mild'), )):
    ('63fcba4230265d979e148351cd48fcc3a9ecc9820cee9145c5fa5ebf2b8ee696',
     '04f055b5c43a4b7fda32430351802c7daa1451abead40dab6e5bcda11b49d867',
     '79157f1e11177898a469f9628c029de25cf00c3c7ab53cfdb7b6f6a055c8fd90'),
    ('wholebody', (('unusual_pose', 'mild'), )):
    ('62c2812d8c1373f741ff49505bb37bd389960eff4c76171eefc4e23318b84f3a',
     '73bb46a896efa5362c11072925f4adee2da61a1d2d4e1d292de301f7049e5a1d',
     '1c42e650bea3e7661bf5eecca88bb26b99d7c396818cc606151399f830e2e878'),
}


@pytest.mark.parametrize('kind, options', list(OLD_SETS))
def test_old_options_write_the_same_sets(kind, options, tmp_path):
    import cv2
    written = generate_dataset(
        tmp_path, kind, num_train=3, num_val=2, seed=1, **dict(options))
    digests = [
        hashlib.sha256(open(written[split], 'rb').read()).hexdigest()
        for split in ('train', 'val')
    ]
    pixels = hashlib.sha256()
    for path in sorted(tmp_path.rglob('*.png')):
        pixels.update(path.relative_to(tmp_path).as_posix().encode())
        pixels.update(cv2.imread(str(path), cv2.IMREAD_UNCHANGED).tobytes())
    assert (*digests, pixels.hexdigest()) == OLD_SETS[kind, options]
