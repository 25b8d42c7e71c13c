"""The generated datasets, read by MMPose's own datasets, pipelines and
metric."""
import hashlib
import json

import numpy as np
import pytest

from mmpose.utils import register_all_modules

from mmpose_afl.datasets.synthetic import PARTS, generate_dataset

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
    root = request.getfixturevalue(
        'synthetic_coco' if kind == 'coco' else 'synthetic_wholebody')
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
    root = request.getfixturevalue(
        'synthetic_coco' if kind == 'coco' else 'synthetic_wholebody')
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
    flags = {k: sum(a['difficulty'][k] for a in anns)
             for k in anns[0]['difficulty']}
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
    assert np.mean([a['num_keypoints'] for a in truncated]) < np.mean(
        [a['num_keypoints'] for a in anns])


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
    root = request.getfixturevalue(
        'synthetic_coco' if kind == 'coco' else 'synthetic_wholebody')
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
