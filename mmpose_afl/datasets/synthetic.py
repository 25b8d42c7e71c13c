"""Synthetic COCO-format keypoint datasets with deliberately uneven difficulty.

So that a method can be tried in minutes without the real COCO, this module
draws people from a 2D kinematic skeleton and writes COCO (17 keypoints) or
COCO-WholeBody (133 keypoints) train and val splits in exactly the format
MMPose's ``CocoDataset`` / ``CocoWholeBodyDataset`` and the COCO metrics
read.

Layout (the configs under ``configs/_base_/datasets`` rely on it)::

    <out>/annotations/person_keypoints_{train,val}2017.json      (coco)
    <out>/annotations/coco_wholebody_{train,val}_v1.0.json       (wholebody)
    <out>/train2017/*.png, <out>/val2017/*.png

1-3 people per image, each at a random scale and place. How a person is
posed: :mod:`mmpose_afl.datasets.synthetic_pose`; drawn:
:mod:`mmpose_afl.datasets.synthetic_drawing`; labelled (visibility from a
layer map of what was drawn last, so the labels are exact):
:mod:`mmpose_afl.datasets.synthetic_annotation`.

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
random numbers only in its own branch, so that the default layout's files,
on which the benchmark results rest, do not depend on it.
Generation is deterministic: the same seed gives the same files (PNG
images and JSON). Options, the command line and the known flaws (the
left/right colour cue under flips): docs/synthetic_data.md. People at the
poses of a real COCO keypoint file instead of random skeletons:
:mod:`mmpose_afl.datasets.real_pose`.
"""
import json
import os.path as osp
from pathlib import Path
from typing import Dict, List, Tuple, Union

import cv2
import numpy as np

from .synthetic_annotation import CATEGORIES, _annotations
from .synthetic_drawing import _background, _draw_person, _textured_rect
from .synthetic_pose import PARTS, UNUSUAL_POSES, _body, _wholebody

__all__ = [
    'CATEGORIES', 'DIFFICULTY_P', 'IMAGE_SIZE', 'LAYOUTS', 'PARTS',
    'SIZE_TIERS', 'UNUSUAL_POSES', 'generate_dataset'
]

DIFFICULTY_P = dict(
    occluded=0.25, truncated=0.15, unusual_pose=0.15, small=0.15)
# body heights of the 'multi_scale' layout; 'small' as the default's flag
SIZE_TIERS = dict(small=(35, 60), medium=(75, 110), large=(130, 190))
LAYOUTS = ('default', 'multi_scale')
IMAGE_SIZE = (320, 240)


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

    return img, _annotations(layer, people, wholebody)


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
