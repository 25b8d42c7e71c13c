"""Synthetic people at the poses of a COCO keypoint file
(mmpose_afl/datasets/real_pose.py): labels copied exactly, images that
agree with them (v = 1 under an occluder, v = 0 not drawn), a left/right
cue that follows the body and mirrors with a flip."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from mmpose_afl.datasets.real_pose import (_face68, _feet, _hands, draw_image,
                                           generate_from_poses)
from mmpose_afl.datasets.real_pose_drawing import (BACK_MARK, FRONT_MARK, SKIN,
                                                   Canvas, draw_person, facing)
from tests.e2e import REPO

POSES = (
    REPO / 'benchmarks' / 'coco_poses' /
    'person_keypoints_val2017_labels_only.json')
ANN = dict(
    coco='person_keypoints_{}2017.json',
    wholebody='coco_wholebody_{}_v1.0.json')
FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]
# a person facing the camera (its left on the image's right), 200 x 160
FRONT = np.array([[100, 30], [106, 25], [94, 25], [112, 28], [88, 28], [
    118, 50
], [82, 50], [124, 75], [76, 75], [128, 98], [72, 98], [112, 100], [88, 100],
                  [114, 125], [86, 125], [116, 150], [84, 150]], float)
# the same person, not left/right symmetric (so that a mirror image differs)
ASYM = FRONT + np.array([[1, 0], [1, 0], [1, 0], [0, 1], [0, -1], [0, 2],
                         [0, -3], [6, -10], [-3, 4], [14, -22], [-2, 6],
                         [1, 0], [0, 1], [5, -2], [-4, 3], [9, -1], [-6, 2]],
                        float)


def _ann(ann_id, image_id, kpts, vis, bbox):
    flat = np.concatenate([kpts, np.asarray(vis, float)[:, None]], 1)
    return dict(
        id=ann_id,
        image_id=image_id,
        category_id=1,
        iscrowd=0,
        bbox=bbox,
        area=bbox[2] * bbox[3] * 0.5,
        num_keypoints=int((np.asarray(vis) > 0).sum()),
        keypoints=[float(v) for v in flat.ravel()])


def _hand_made(path):
    """Two overlapping people in one 200 x 160 image: the front one with
    its left knee and left wrist hidden (v = 1) and its right ankle
    unlabelled but given coordinates (v = 0, to see that nothing is drawn
    there); the back one further up and right, facing away. A second image
    holds one person."""
    vis_a = np.full(17, 2)
    vis_a[[13, 9]] = 1
    vis_a[16] = 0
    back = FRONT * [-1, 1] + [230, -12]  # mirrored, unswapped: away
    vis_b = np.full(17, 2)
    vis_b[[0, 1, 2]] = 0  # facing away: no face labelled
    data = dict(
        images=[
            dict(id=7, file_name='000000000007.jpg', width=200, height=160),
            dict(id=9, file_name='000000000009.jpg', width=200, height=160)
        ],
        annotations=[
            _ann(1, 7, FRONT, vis_a, [70., 20., 62., 135.]),
            _ann(2, 7, back, vis_b, [128., 5., 62., 135.]),
            _ann(3, 9, FRONT, np.full(17, 2), [70., 20., 62., 135.])
        ],
        categories=[dict(id=1, name='person')])
    path.write_text(json.dumps(data))
    return data


@pytest.mark.parametrize('kind', ['coco', 'wholebody'])
def test_hand_made_file_labels_are_copied_exactly(kind, tmp_path):
    data = _hand_made(tmp_path / 'poses.json')
    written = generate_from_poses(
        tmp_path / 'out',
        tmp_path / 'poses.json',
        kind,
        num_train=1,
        num_val=1,
        seed=3)
    out = [json.loads(open(written[s]).read()) for s in ('train', 'val')]
    anns = {a['id']: a for o in out for a in o['annotations']}
    assert set(anns) == {1, 2, 3}
    for ann in data['annotations']:
        got = anns[ann['id']]
        for key, value in ann.items():
            assert got[key] == value, (ann['id'], key)
    for o in out:
        for im in o['images']:
            img = cv2.imread(
                str(tmp_path / 'out' /
                    ('train2017' if o is out[0] else 'val2017') /
                    im['file_name']))
            assert img.shape == (160, 200, 3)
            assert (im['width'], im['height']) == (200, 160)
    if kind == 'wholebody':
        front = anns[1]
        feet = np.array(front['foot_kpts']).reshape(6, 3)
        assert feet[:3, 2].all() and not feet[3:].any()  # right ankle v=0
        face = np.array(front['face_kpts']).reshape(68, 3)
        assert (face[:, 2] > 0).all() and front['face_valid']
        assert not np.array(anns[2]['face_kpts']).any()  # no nose: no face


def _layers(data, kind='coco'):
    """(image, annotations, layer map) of the first hand-made image."""
    image = data['images'][0]
    anns = [a for a in data['annotations'] if a['image_id'] == image['id']]
    return draw_image(
        np.random.default_rng(0), image, anns, kind == 'wholebody')


def test_v1_is_under_an_occluder_v2_on_its_person_v0_not_drawn(tmp_path):
    data = _hand_made(tmp_path / 'poses.json')
    _, anns, layer, ids = _layers(data)
    for ann, own in zip(anns, ids):
        assert own % 2 == 0 and own > 0
        kv = np.array(ann['keypoints']).reshape(17, 3)
        for x, y, v in kv:
            at = layer[int(round(y)), int(round(x))]
            if v == 1:
                assert at % 2 == 1, 'v=1 must be under an occluder'
            elif v == 2:
                assert at == own
    # the front person's right ankle (v=0) and its shin are not drawn:
    # the ankle's place and the shin's lower half are background
    front = ids[0]
    ankle, knee = FRONT[16], FRONT[14]
    for t in (1.0, 0.8, 0.6):
        x, y = np.round(knee + t * (ankle - knee)).astype(int)
        assert layer[y, x] != front


def test_real_file_slice_labels_exact_and_drawn_as_labelled(tmp_path):
    data = json.loads(POSES.read_text())
    images = data['images'][:12]
    ids = {im['id'] for im in images}
    anns = [a for a in data['annotations'] if a['image_id'] in ids]
    poses = tmp_path / 'slice.json'
    poses.write_text(json.dumps(dict(data, images=images, annotations=anns)))
    written = generate_from_poses(
        tmp_path / 'out', poses, 'wholebody', num_train=9, num_val=3, seed=0)
    got = {
        a['id']: a
        for s in ('train', 'val')
        for a in json.loads(open(written[s]).read())['annotations']
    }
    assert len(got) == len(anns) > 12
    for ann in anns:
        assert {k: got[ann['id']][k] for k in ann} == ann
    sizes = {im['id']: (im['width'], im['height']) for im in images}
    for s in ('train', 'val'):
        for im in json.loads(open(written[s]).read())['images']:
            assert (im['width'], im['height']) == sizes[im['id']]
    # drawn as labelled: every v=1 keypoint under an occluder, v=2 ones on
    # their own person (an occluder may only miss a v=2 keypoint that lies
    # within a few px of a v=1 one)
    hidden, shown, on_top = 0, 0, 0
    for image in images:
        people = [a for a in anns if a['image_id'] == image['id']]
        _, out, layer, ids = draw_image(
            np.random.default_rng(1), image, people, False)
        for ann, own in zip(out, ids):
            for x, y, v in np.array(ann['keypoints']).reshape(17, 3):
                at = layer[int(round(y)), int(round(x))]
                if v == 1:
                    hidden += 1
                    assert at % 2 == 1
                elif v == 2:
                    shown += 1
                    on_top += at == own
    assert hidden > 10 and on_top >= 0.97 * shown


def test_facing_follows_the_body_and_survives_flip_and_swap():
    lab = np.ones(17, bool)
    assert facing(FRONT, lab) == 1
    mirrored = FRONT * [-1, 1] + [200, 0]
    assert facing(mirrored, lab) == -1  # left on the image's left: back
    assert facing(mirrored[FLIP], lab) == 1  # RandomFlip: mirror + swap
    upside_down = FRONT * [1, -1]  # rotated 180 deg about y: still front
    assert facing(upside_down * [-1, 1], lab) == 1
    side_on = FRONT.copy()
    side_on[[5, 6, 11, 12], 0] = 100
    assert facing(side_on, lab) == 0
    no_hips = lab.copy()
    no_hips[[11, 12]] = False
    assert facing(FRONT, no_hips) == 1  # head to neck gives down


def _person_image(kpts, vis, seed=0):
    canvas = Canvas(np.zeros((160, 200, 3), np.uint8))
    draw_person(np.random.default_rng(seed), canvas, 2, kpts, vis, 135.)
    return canvas.img


def _colour_mask(img, colour):
    return (np.abs(img.astype(int) - colour).sum(2) < 10)


def test_face_is_drawn_where_nose_and_eyes_are():
    vis = np.full(17, 2)
    img = _person_image(FRONT, vis)
    skin = np.argwhere(_colour_mask(img, SKIN))[:, ::-1]
    assert np.allclose(skin.mean(0), FRONT[:3].mean(0), atol=1.5)
    # a profile: nose and eyes shifted to the right of the head, the ears
    # left behind: the face moves with them, off the head's centre
    profile = FRONT.copy()
    profile[:3] += [8, 0]
    skin = np.argwhere(_colour_mask(_person_image(profile, vis), SKIN))
    assert skin[:, 1].mean() > FRONT[:5, 0].mean() + 5
    away = vis.copy()
    away[:3] = 0  # nose and eyes unlabelled: no face
    assert not _colour_mask(_person_image(FRONT, away), SKIN).any()


def test_torso_mark_front_back_and_mirror_consistent():
    vis = np.full(17, 2)
    front = _person_image(FRONT, vis)
    assert _colour_mask(front, FRONT_MARK).sum() > 20
    assert not _colour_mask(front, BACK_MARK).any()
    mirrored = FRONT * [-1, 1] + [199, 0]
    back = _person_image(mirrored, vis)  # not swapped: facing away
    assert _colour_mask(back, BACK_MARK).sum() > 20
    assert not _colour_mask(back, FRONT_MARK).any()
    # RandomFlip of the person (mirror + swap) is the mirror image: the
    # same mark, on the same body
    asym = _person_image(ASYM, vis)
    flipped = _person_image((ASYM * [-1, 1] + [199, 0])[FLIP], vis)
    assert _colour_mask(flipped, FRONT_MARK).sum() > 20
    differ = np.abs(flipped.astype(int) - asym[:, ::-1]).sum(2) > 0
    assert differ.mean() < 0.01


def test_wholebody_parts_hang_off_the_real_body():
    lab = np.ones(17, bool)
    feet, face, hands = _feet(FRONT, lab), _face68(FRONT, lab, 135.), \
        _hands(FRONT, lab)
    # feet at the ankles, toes pointing outwards (left foot to the person's
    # left = image right for this frontal person)
    assert np.linalg.norm(feet[:3] - FRONT[15], axis=1).max() < 12
    assert feet[0, 0] > FRONT[15, 0] and feet[3, 0] < FRONT[16, 0]
    # the face around the nose, its jaw below the eyes
    assert np.linalg.norm(face.mean(0) - FRONT[0]) < 6
    assert face[8, 1] > FRONT[1, 1]
    # hands start at the wrists and point along the forearms
    assert np.allclose(hands[0], FRONT[9]) and np.allclose(
        hands[21], FRONT[10])
    assert hands[1:21, 1].mean() > FRONT[9, 1]
    # flip consistency: the parts of the mirrored, swapped person are the
    # mirror image of the parts (left and right exchanged)
    m = (ASYM * [-1, 1] + [200, 0])[FLIP]
    feet, hands = _feet(ASYM, lab), _hands(ASYM, lab)
    assert np.allclose(
        _feet(m, lab), feet[[3, 4, 5, 0, 1, 2]] * [-1, 1] + [200, 0])
    assert np.allclose(
        _hands(m, lab),
        np.concatenate([hands[21:], hands[:21]]) * [-1, 1] + [200, 0])


def test_same_seed_same_bytes_and_bad_sizes_named(tmp_path):
    _hand_made(tmp_path / 'poses.json')

    def files(root, seed):
        generate_from_poses(root, tmp_path / 'poses.json', 'coco', 1, 1, seed)
        return {
            p.relative_to(root): p.read_bytes()
            for p in sorted(root.rglob('*')) if p.is_file()
        }

    a, b = files(tmp_path / 'a', 4), files(tmp_path / 'b', 4)
    assert a == b and len(a) == 4
    assert files(tmp_path / 'c', 5) != a
    with pytest.raises(ValueError, match='num_train and num_val'):
        generate_from_poses(
            tmp_path / 'd', tmp_path / 'poses.json', num_train=2, num_val=1)


def test_cli_draws_every_image_and_loads_in_mmpose(tmp_path):
    from mmpose.registry import DATASETS
    from mmpose.utils import register_all_modules
    register_all_modules()
    _hand_made(tmp_path / 'poses.json')
    proc = subprocess.run([
        sys.executable, 'tools/make_synthetic_data.py', '--kind', 'wholebody',
        '--poses',
        str(tmp_path / 'poses.json'), '--num-val', '1', '--out',
        str(tmp_path / 'out')
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    dataset = DATASETS.build(
        dict(
            type='CocoWholeBodyDataset',
            data_root=str(tmp_path / 'out'),
            data_mode='topdown',
            ann_file='annotations/' + ANN['wholebody'].format('train'),
            data_prefix=dict(img='train2017/'),
            pipeline=[dict(type='LoadImage')]))
    assert len(dataset) == 1 or len(dataset) == 2
    assert dataset[0]['img'].shape == (160, 200, 3)
