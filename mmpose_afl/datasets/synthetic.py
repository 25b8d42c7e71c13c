"""Synthetic COCO-format keypoint datasets with deliberately uneven difficulty.

The real COCO cannot be downloaded on the machines this project is tested
on, and a user should be able to try a method in minutes, so this module
draws people from a 2D kinematic skeleton and writes COCO (17 keypoints) or
COCO-WholeBody (133 keypoints) train and val splits in exactly the format
MMPose's ``CocoDataset`` / ``CocoWholeBodyDataset`` and the COCO metrics
read.

Layout (the configs under ``configs/_base_/datasets`` rely on it)::

    <out>/annotations/person_keypoints_{train,val}2017.json      (coco)
    <out>/annotations/coco_wholebody_{train,val}_v1.0.json       (wholebody)
    <out>/train2017/*.png, <out>/val2017/*.png

How a person is made: a torso of random tilt, head, arms and legs with random
joint angles, at a random scale, 1-3 people per image on a textured
background (gradient, noise, random shapes). Limbs are thick two-tone bars,
the torso a polygon, and every joint a small disc whose colour identifies the
joint, so that a small network learns them from scratch in minutes.
WholeBody adds feet (toes, heel), a 68-point face laid out like the
68-landmark scheme on the head, and 21-point hands fanned out at the wrists.

How difficulty is made (each person independently; the flags are stored in
the annotation's extra ``difficulty`` field, which MMPose ignores):

- ``occluded`` (p = 0.25): a textured rectangle is drawn over part of the
  person; keypoints under it keep their coordinates with ``v = 1``. People
  drawn later also hide earlier ones, with the same rule.
- ``truncated`` (p = 0.15): the person is shifted so that part of the body
  leaves the image; keypoints outside it get ``v = 0`` and ``x = y = 0``.
- ``unusual_pose`` (p = 0.15): torso tilt anywhere in 360 degrees and joint
  angles from the full circle instead of the usual ranges (option
  ``unusual_pose='any_angle'``, the default). ``unusual_pose='mild'``: tilt
  within +-90 degrees (lying, leaning), each limb's upper angle from its
  usual range widened by 45 degrees on either side and its bend up to 45
  degrees beyond the usual maximum. ``mild`` exists because a small
  network at the accuracy benchmark's budget learns nothing of the
  ``any_angle`` poses, so that stratum could not tell methods apart
  (docs/synthetic_data.md). Both draw the same random numbers, so the two
  options give the same people, flags and images wherever no unusual
  person is drawn.
- ``small`` (p = 0.15): body height 35-60 px instead of 110-190 px.

About 45 % of people carry at least one flag; the rest are easy, upright,
fully visible people.

Layouts (``layout``): ``'default'`` is the above. ``'multi_scale'`` is for
bottom-up models, which see the whole image: 2-4 people per image from
clearly different size tiers (body height ``small`` 35-60 px, ``medium``
75-110 px, ``large`` 130-190 px; the first three people of an image take
the three tiers in random order, a fourth a random tier), each placed in
its own vertical slot of the image (random order, random position in the
slot) so that they overlap only partly. ``occluded``, ``truncated`` and
``unusual_pose`` are drawn as above; ``small`` is the ``small`` tier (the
same heights as the default layout's flag). The option draws its own
random numbers only in its own branch, so the default layout's files do
not depend on it (results and tests rest on those bytes).
Visibility of every keypoint is read off a layer map of what was drawn
last at its pixel, so the labels are exact.
Generation is deterministic: the same seed gives the same bytes (PNG images
and JSON). Options, the command line and the known flaws (the left/right
colour cue under flips): docs/synthetic_data.md. People at the poses of a
real COCO keypoint file instead of random skeletons:
:mod:`mmpose_afl.datasets.real_pose`.
"""
import json
import os.path as osp
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import cv2
import numpy as np

COCO_NAMES = [
    'nose', 'left_eye', 'right_eye', 'left_ear', 'right_ear', 'left_shoulder',
    'right_shoulder', 'left_elbow', 'right_elbow', 'left_wrist', 'right_wrist',
    'left_hip', 'right_hip', 'left_knee', 'right_knee', 'left_ankle',
    'right_ankle'
]
COCO_SKELETON = [[16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12],
                 [7, 13], [6, 7], [6, 8], [7, 9], [8, 10], [9, 11], [2, 3],
                 [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7]]
# WholeBody parts after the 17 body keypoints, in the annotation's order
PARTS = (('foot_kpts', 6), ('face_kpts', 68), ('lefthand_kpts', 21),
         ('righthand_kpts', 21))
DIFFICULTY_P = dict(
    occluded=0.25, truncated=0.15, unusual_pose=0.15, small=0.15)
# body heights of the 'multi_scale' layout; 'small' as the default's flag
SIZE_TIERS = dict(small=(35, 60), medium=(75, 110), large=(130, 190))
LAYOUTS = ('default', 'multi_scale')
# torso tilt (degrees) of an unusual pose, per ``unusual_pose`` option
UNUSUAL_TILT = dict(any_angle=(0, 360), mild=(-90, 90))
UNUSUAL_POSES = tuple(UNUSUAL_TILT)
IMAGE_SIZE = (320, 240)

Point = np.ndarray


def _rot(v: Point, deg: float) -> Point:
    a = np.deg2rad(deg)
    c, s = np.cos(a), np.sin(a)
    return np.array([c * v[0] - s * v[1], s * v[0] + c * v[1]])


def _limb(rng, start: Point, down: Point, length: float, spread: float,
          bend: float, unusual: Optional[str]) -> Tuple[Point, Point]:
    """Two joints of a limb hanging from ``start`` around ``down``; angles
    from the usual ranges, or from an ``unusual`` pose (one of
    ``UNUSUAL_POSES``). Every case draws the same two numbers."""
    lo, hi = sorted(spread)
    if unusual == 'any_angle':
        a1, a2 = rng.uniform(-180, 180), rng.uniform(-180, 180)
    elif unusual == 'mild':
        a1, a2 = rng.uniform(lo - 45, hi + 45), rng.uniform(0, bend + 45)
    else:
        a1, a2 = rng.uniform(lo, hi), rng.uniform(0, bend)
    d1 = _rot(down, a1)
    mid = start + d1 * length
    end = mid + _rot(d1, a2 * np.sign(a1 + 1e-6)) * length * 0.9
    return mid, end


def _body(rng, height: float, unusual: Optional[str]) -> np.ndarray:
    """17 COCO keypoints of one person around the origin (neck at 0), in a
    usual pose (``unusual=None``) or an unusual one (``UNUSUAL_POSES``)."""
    tilt = rng.uniform(*UNUSUAL_TILT.get(unusual, (-12, 12)))
    down = _rot(np.array([0.0, 1.0]), tilt)
    side = _rot(down, 90)  # towards the person's left (image right)
    s = height
    hip_c = down * 0.32 * s
    head = -down * 0.12 * s
    k = np.zeros((17, 2))
    k[0] = head - down * 0.01 * s
    k[1], k[2] = head - down * 0.04 * s + side * 0.03 * s, head - down * \
        0.04 * s - side * 0.03 * s
    k[3], k[4] = head - down * 0.02 * s + side * 0.06 * s, head - down * \
        0.02 * s - side * 0.06 * s
    k[5], k[6] = side * 0.11 * s, -side * 0.11 * s
    k[11], k[12] = hip_c + side * 0.08 * s, hip_c - side * 0.08 * s
    for sh, el, wr, sign in ((5, 7, 9, 1), (6, 8, 10, -1)):
        k[el], k[wr] = _limb(rng, k[sh], down, 0.17 * s, (sign * 5, sign * 70),
                             110, unusual)
    for hip, kn, an, sign in ((11, 13, 15, 1), (12, 14, 16, -1)):
        k[kn], k[an] = _limb(rng, k[hip], down, 0.25 * s,
                             (sign * -5, sign * 25), 50, unusual)
    return k


def _face(head: Point, down: Point, r: float) -> np.ndarray:
    """68 face landmarks (jaw 17, brows 10, nose 9, eyes 12, mouth 20)."""
    side = _rot(down, 90)

    def at(u, v):  # u across (left +), v down, in head radii
        return head + side * u * r + down * v * r

    pts = [
        at(0.9 * np.cos(t), 0.9 * np.sin(t))
        for t in np.linspace(np.pi * 0.95, np.pi * 0.05, 17)
    ]  # jaw
    pts += [at(u, -0.45) for u in np.linspace(0.7, 0.15, 5)]  # brow
    pts += [at(u, -0.45) for u in np.linspace(-0.15, -0.7, 5)]
    pts += [at(0, v) for v in np.linspace(-0.3, 0.15, 4)]  # nose bridge
    pts += [at(u, 0.25) for u in np.linspace(0.25, -0.25, 5)]
    for cx in (0.4, -0.4):  # eyes, 6 points each
        pts += [
            at(cx + 0.15 * np.cos(t), -0.2 + 0.07 * np.sin(t))
            for t in np.linspace(0, 2 * np.pi, 6, endpoint=False)
        ]
    pts += [
        at(0.35 * np.cos(t), 0.55 + 0.15 * np.sin(t))
        for t in np.linspace(0, 2 * np.pi, 12, endpoint=False)
    ]
    pts += [
        at(0.2 * np.cos(t), 0.55 + 0.06 * np.sin(t))
        for t in np.linspace(0, 2 * np.pi, 8, endpoint=False)
    ]
    return np.array(pts)


def _hand(wrist: Point, direction: Point, size: float) -> np.ndarray:
    """21 hand keypoints: wrist, then 4 joints for each of 5 fingers."""
    d = direction / (np.linalg.norm(direction) + 1e-9)
    pts = [wrist]
    for spread in (-50, -22, 0, 20, 40):
        f = _rot(d, spread)
        base = wrist + f * size * 0.4
        pts += [base + f * size * 0.2 * j for j in range(4)]
    return np.array(pts)


def _wholebody(k: np.ndarray, height: float) -> np.ndarray:
    """All 133 keypoints from the 17 body keypoints."""
    s = height
    down = (k[11] + k[12]) / 2 - (k[5] + k[6]) / 2
    down = down / (np.linalg.norm(down) + 1e-9)
    side = _rot(down, 90)
    feet = []
    for ank, knee, sign in ((15, 13, 1), (16, 14, -1)):
        shin = k[ank] - k[knee]
        shin = shin / (np.linalg.norm(shin) + 1e-9)
        toe_dir = _rot(shin, -sign * 80)
        feet += [
            k[ank] + toe_dir * 0.07 * s + side * 0.01 * s * sign,
            k[ank] + toe_dir * 0.06 * s - side * 0.01 * s * sign,
            k[ank] - toe_dir * 0.02 * s + shin * 0.02 * s
        ]
    head = k[0] + down * 0.01 * s
    face = _face(head, down, 0.07 * s)
    hands = [_hand(k[w], k[w] - k[e], 0.08 * s) for w, e in ((9, 7), (10, 8))]
    return np.concatenate([k, np.array(feet), face, *hands])


def _palette(num: int) -> np.ndarray:
    hsv = np.stack([(np.arange(num) * 37) % 180,
                    np.full(num, 200), 150 + (np.arange(num) * 53) % 106],
                   1).astype(np.uint8)[None]
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0].astype(int)


def _background(rng, w: int, h: int) -> np.ndarray:
    c0, c1 = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    t = np.linspace(0, 1, w)[None, :, None]
    img = (c0 * (1 - t) + c1 * t) * np.ones((h, 1, 1))
    img += rng.normal(0, 18, (h, w, 3))
    img = np.clip(img, 0, 255).astype(np.uint8)
    for _ in range(rng.integers(3, 9)):
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, w)), int(rng.integers(0, h))
        if rng.random() < 0.5:
            cv2.circle(img, (x, y), int(rng.integers(5, 40)), color, -1)
        else:
            cv2.rectangle(img, (x, y), (x + int(rng.integers(5, 60)),
                                        y + int(rng.integers(5, 60))), color,
                          -1)
    return img


def _textured_rect(rng, img, layer, layer_id, x, y, w, h) -> None:
    x2, y2 = x + w, y + h
    base = rng.integers(0, 256, 3)
    patch = np.clip(base + rng.normal(0, 30, (max(h, 1), max(w, 1), 3)), 0,
                    255).astype(np.uint8)
    ys, xs = slice(max(y, 0), max(y2, 0)), slice(max(x, 0), max(x2, 0))
    region = img[ys, xs]
    region[:] = patch[:region.shape[0], :region.shape[1]]
    layer[ys, xs] = layer_id


def _draw_person(rng, img, layer, layer_id, kpts, height, num_body) -> None:
    """Draw limbs, torso, head and joint discs into ``img`` and ``layer``."""
    s = height
    thick = max(2, int(0.06 * s))
    c1 = tuple(int(c) for c in rng.integers(40, 256, 3))
    c2 = tuple(int(c) for c in rng.integers(0, 200, 3))

    def draw(fn, *args, **kw):
        fn(img, *args, **kw)
        kw_layer = dict(kw)
        kw_layer['color'] = layer_id
        fn(layer, *args, **kw_layer)

    torso = np.round(kpts[[5, 6, 12, 11]]).astype(np.int32)
    draw(cv2.fillPoly, [torso], color=c2)
    for a, b in [(5, 7), (7, 9), (6, 8), (8, 10), (11, 13), (13, 15), (12, 14),
                 (14, 16)]:
        pa = tuple(int(v) for v in np.round(kpts[a]))
        pb = tuple(int(v) for v in np.round(kpts[b]))
        draw(cv2.line, pa, pb, color=c1, thickness=thick)
        cv2.line(img, pa, pb, c2, max(1, thick // 3))
    head = tuple(int(v) for v in np.round(kpts[0]))
    draw(cv2.circle, head, max(3, int(0.07 * s)), color=c1, thickness=-1)
    palette = _palette(len(kpts))
    for i, (x, y) in enumerate(kpts):
        radius = max(1, int(0.025 * s)) if i < num_body else 1
        draw(
            cv2.circle, (int(round(x)), int(round(y))),
            radius,
            color=tuple(int(c) for c in palette[i]),
            thickness=-1)


def _xywh(points: np.ndarray, pad: float, w: int, h: int) -> List[float]:
    x1, y1 = np.maximum(points.min(0) - pad, 0)
    x2, y2 = np.minimum(points.max(0) + pad, [w - 1, h - 1])
    return [float(x1), float(y1), float(x2 - x1), float(y2 - y1)]


def _multi_scale_people(rng) -> List[Tuple[str, int, int]]:
    """(size tier, slot, number of slots) of each person of a
    ``'multi_scale'`` image."""
    num = int(rng.integers(2, 5))
    names = list(SIZE_TIERS)
    tiers = [names[i] for i in rng.permutation(len(names))]
    tiers.append(names[int(rng.integers(len(names)))])
    slots = rng.permutation(num)
    return [(tiers[i], int(slots[i]), num) for i in range(num)]


def _person_spec(rng, tier_slot) -> Tuple[Dict[str, bool], float]:
    """Difficulty flags and body height of one person (``tier_slot`` from
    :func:`_multi_scale_people`, ``None`` in the default layout)."""
    if tier_slot is None:
        flags = {k: bool(rng.random() < p) for k, p in DIFFICULTY_P.items()}
        height = rng.uniform(35, 60) if flags['small'] else rng.uniform(
            110, 190)
        return flags, height
    tier = tier_slot[0]
    flags = {
        k: (tier == 'small') if k == 'small' else bool(rng.random() < p)
        for k, p in DIFFICULTY_P.items()
    }
    return flags, rng.uniform(*SIZE_TIERS[tier])


def _make_image(rng,
                wholebody: bool,
                w: int,
                h: int,
                layout: str = 'default',
                unusual_pose: str = 'any_angle'):
    """One image and the annotations of its people (without ids)."""
    img = _background(rng, w, h)
    layer = np.zeros((h, w), np.int32)  # 0 = background
    people = []
    if layout == 'default':
        specs = [None] * int(rng.integers(1, 4))
    else:
        specs = _multi_scale_people(rng)
    for pid, tier_slot in enumerate(specs, 1):
        flags, height = _person_spec(rng, tier_slot)
        body = _body(rng, height,
                     unusual_pose if flags['unusual_pose'] else None)
        kpts = _wholebody(body, height) if wholebody else body
        lo, hi = kpts.min(0), kpts.max(0)
        if flags['truncated']:  # centre the body on an image edge
            centre = np.array([rng.uniform(0, w), rng.uniform(0, h)])
            axis = int(rng.integers(2))
            centre[axis] = (0, (w, h)[axis])[int(rng.integers(2))]
            offset = centre - (lo + hi) / 2
        elif tier_slot is not None:  # centre x in the person's own slot
            _, slot, num = tier_slot
            x = rng.uniform(slot * w / num, (slot + 1) * w / num)
            offset = np.array([
                np.clip(x - (lo[0] + hi[0]) / 2, -lo[0],
                        max(-lo[0], w - hi[0])),
                rng.uniform(-lo[1], max(-lo[1], h - hi[1]))
            ])
        else:
            offset = np.array([
                rng.uniform(-lo[0], max(-lo[0], w - hi[0])),
                rng.uniform(-lo[1], max(-lo[1], h - hi[1]))
            ])
        kpts = kpts + offset
        _draw_person(rng, img, layer, pid * 2, kpts, height, 17)
        if flags['occluded']:
            lo, hi = kpts.min(0), kpts.max(0)
            ow, oh = (hi - lo) * rng.uniform(0.3, 0.6, 2)
            ox = int(rng.uniform(lo[0], hi[0] - ow))
            oy = int(rng.uniform(lo[1], hi[1] - oh))
            _textured_rect(rng, img, layer, pid * 2 + 1, ox, oy, int(ow),
                           int(oh))
        people.append((pid * 2, kpts, height, flags))

    annotations = []
    for layer_id, kpts, height, flags in people:
        xi = np.round(kpts[:, 0]).astype(int)
        yi = np.round(kpts[:, 1]).astype(int)
        inside = (xi >= 0) & (xi < w) & (yi >= 0) & (yi < h)
        vis = np.zeros(len(kpts), int)
        on_top = np.zeros(len(kpts), bool)
        on_top[inside] = layer[yi[inside], xi[inside]] == layer_id
        vis[inside] = np.where(on_top[inside], 2, 1)
        if (vis[:17] > 0).sum() < 3:
            continue  # nearly all of the person is outside the image
        xy = np.where(vis[:, None] > 0, kpts, 0.0)
        labelled = kpts[vis > 0]
        bbox = [round(v, 2) for v in _xywh(labelled, 0.08 * height, w, h)]
        flat = np.concatenate([xy, vis[:, None]], 1)
        ann = dict(
            keypoints=[round(float(v), 2) for v in flat[:17].ravel()],
            num_keypoints=int((vis > 0).sum()),
            bbox=bbox,
            area=round(bbox[2] * bbox[3], 2),
            iscrowd=0,
            category_id=1,
            segmentation=[[
                bbox[0], bbox[1], bbox[0] + bbox[2], bbox[1],
                bbox[0] + bbox[2], bbox[1] + bbox[3], bbox[0],
                bbox[1] + bbox[3]
            ]],
            difficulty=flags)
        if wholebody:
            start = 17
            for name, num in PARTS:
                part = flat[start:start + num]
                ann[name] = [round(float(v), 2) for v in part.ravel()]
                valid = bool((part[:, 2] > 0).any())
                short = name.replace('_kpts', '')
                ann[f'{short}_valid'] = valid
                if short != 'foot':
                    pts = part[part[:, 2] > 0, :2]
                    ann[f'{short}_box'] = ([
                        round(v, 2) for v in _xywh(pts, 0.02 * height, w, h)
                    ] if valid else [0.0, 0.0, 0.0, 0.0])
                start += num
        annotations.append(ann)
    return img, annotations


CATEGORIES = [
    dict(
        id=1,
        name='person',
        supercategory='person',
        keypoints=COCO_NAMES,
        skeleton=COCO_SKELETON)
]


def generate_dataset(out_dir: Union[str, Path],
                     kind: str = 'coco',
                     num_train: int = 200,
                     num_val: int = 50,
                     seed: int = 0,
                     image_size: Tuple[int, int] = IMAGE_SIZE,
                     layout: str = 'default',
                     unusual_pose: str = 'any_angle') -> Dict:
    """Write a synthetic train/val keypoint dataset in COCO format.

    Args:
        out_dir (str | Path): Root folder; created if missing.
        kind (str): ``'coco'`` (17 keypoints) or ``'wholebody'`` (133).
            Defaults to ``'coco'``.
        num_train (int): Number of training images. Defaults to 200.
        num_val (int): Number of validation images. Defaults to 50.
        seed (int): Seed of everything drawn; same seed, same bytes.
            Defaults to 0.
        image_size (tuple[int, int]): ``(width, height)`` of every image.
            Defaults to ``(320, 240)``.
        layout (str): ``'default'`` (1-3 people, 15 % of them small) or
            ``'multi_scale'`` (2-4 people of clearly different sizes per
            image, for bottom-up models; see the module docstring; the
            annotation files' ``info`` says ``layout``). Defaults to
            ``'default'``.
        unusual_pose (str): How the ``unusual_pose`` people are posed:
            ``'any_angle'`` (any torso tilt, any joint angle) or ``'mild'``
            (tilt within +-90 degrees, joint angles 45 degrees beyond the
            usual ranges; see the module docstring; ``info`` says
            ``unusual_pose``). Defaults to ``'any_angle'``.

    Returns:
        dict: ``{'train': ann_file, 'val': ann_file}`` paths.
    """
    if kind not in ('coco', 'wholebody'):
        raise ValueError(f"kind must be 'coco' or 'wholebody', got {kind!r}")
    if num_train < 1 or num_val < 1:
        raise ValueError('num_train and num_val must be >= 1, got '
                         f'{num_train} and {num_val}')
    if layout not in LAYOUTS:
        raise ValueError(f'layout must be one of {LAYOUTS}, got {layout!r}')
    if unusual_pose not in UNUSUAL_POSES:
        raise ValueError(f'unusual_pose must be one of {UNUSUAL_POSES}, got '
                         f'{unusual_pose!r}')
    wholebody = kind == 'wholebody'
    w, h = image_size
    out = Path(out_dir)
    (out / 'annotations').mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    written = {}
    ann_id = 1
    for split, num, image_id in (('train', num_train, 1), ('val', num_val,
                                                           1_000_000)):
        folder = out / f'{split}2017'
        folder.mkdir(exist_ok=True)
        images, annotations = [], []
        for i in range(num):
            img, anns = _make_image(rng, wholebody, w, h, layout, unusual_pose)
            name = f'{image_id + i:012d}.png'
            cv2.imwrite(str(folder / name), img)
            images.append(
                dict(id=image_id + i, file_name=name, width=w, height=h))
            for ann in anns:
                ann.update(id=ann_id, image_id=image_id + i)
                ann_id += 1
                annotations.append(ann)
        ann_name = (f'coco_wholebody_{split}_v1.0.json'
                    if wholebody else f'person_keypoints_{split}2017.json')
        path = out / 'annotations' / ann_name
        info = dict(description=f'mmpose-afl synthetic {kind}', seed=seed)
        if layout != 'default':  # the default layout's info has no key
            info['layout'] = layout
        if unusual_pose != 'any_angle':
            info['unusual_pose'] = unusual_pose
        with open(path, 'w') as f:
            json.dump(
                dict(
                    info=info,
                    images=images,
                    annotations=annotations,
                    categories=CATEGORIES), f)
        written[split] = osp.abspath(path)
    return written
