"""Synthetic images of people at the poses of a COCO keypoint file.

The random skeletons of :mod:`mmpose_afl.datasets.synthetic` carry no
human structure: their "plausible topology" and "unusual pose" are
properties of the generator. This module keeps the structure of real
people instead: it reads a COCO person keypoint annotation file (such as
the COCO val2017 labels shipped under ``benchmarks/coco_poses``) and
re-draws each of its images synthetically, with the same size, every
labelled person at exactly its keypoints, box and visibility flags, and
the people overlapping as in the photograph (drawn from the back, taken
to be the person whose box ends highest, to the front). How a person,
its occluders and its left/right cue are drawn:
:mod:`mmpose_afl.datasets.real_pose_drawing`.

Each annotation is copied unchanged (so the evaluation's strata by
occlusion, labelled keypoints and area are those of the file), with the
box as its ``segmentation`` where it has none (MMPose's WholeBody dataset
reads that field); there are no ``difficulty`` flags.

COCO-WholeBody: no real whole-body labels are at hand, so feet, face
and hands are synthetic, attached to the real body: feet at labelled
knee + ankle (toes pointing outwards, perpendicular to the shin), a
68-point face at a labelled nose with both eyes or both ears (oriented
and sized by them), 21-point hands at labelled elbow + wrist (along the
forearm, the two hands mirror images). A part point is
visible (``v = 2``) where its own person is on top at its pixel, hidden
(``v = 1``) where something else is, unlabelled where its part is not
attached or it leaves the image.

Train and val images are a seeded random split of the file's images;
each image is drawn with its own generator seeded by (``seed``, image
id), so an image looks the same in any split and the same seed writes the
same bytes. Docs: docs/synthetic_data.md, "People at real poses".
"""
import json
import os.path as osp
from pathlib import Path
from typing import Dict, List, Optional, Tuple, Union

import cv2
import numpy as np

from .real_pose_drawing import (Canvas, _pt, body_axes, disc_radius, draw_disc,
                                draw_person, occlude, person_size)
from .synthetic_annotation import CATEGORIES, _xywh
from .synthetic_drawing import _background
from .synthetic_pose import PARTS, _face

FINGER_SPREAD = (-50, -22, 0, 20, 40)  # left hand; the right one mirrored
PART_COLOURS = dict(
    foot=(0, 200, 255), face=(255, 255, 255), hand=(255, 120, 0))


def _rot(v: np.ndarray, deg: float) -> np.ndarray:
    a = np.deg2rad(deg)
    return np.array([
        np.cos(a) * v[0] - np.sin(a) * v[1],
        np.sin(a) * v[0] + np.cos(a) * v[1]
    ])


def _unit(v: np.ndarray) -> np.ndarray:
    return v / (np.linalg.norm(v) + 1e-9)


def _feet(k: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """6 foot points (left big toe, small toe, heel, then right), NaN where
    the knee or ankle of that leg is unlabelled."""
    across, _ = body_axes(k, lab)
    out = np.full((6, 2), np.nan)
    legs = ((15, 13, 16, 1), (16, 14, 15, -1))
    for j, (ank, knee, other, sign) in enumerate(legs):
        if not (lab[ank] and lab[knee]):
            continue
        shin = k[ank] - k[knee]
        length, down = np.linalg.norm(shin), _unit(shin)
        if across is not None:
            outward = sign * across
        elif lab[other]:
            outward = k[ank] - k[other]
        else:
            outward = _rot(down, -90 * sign)
        perp = _rot(down, 90)
        perp = perp if perp @ outward >= 0 else -perp
        toe = _unit(perp * 0.98 + down * 0.17)
        out[3 * j:3 * j + 3] = [
            k[ank] + (toe * 0.32 + down * 0.08) * length,
            k[ank] + (toe * 0.24 + down * 0.12) * length,
            k[ank] + (-toe * 0.09 + down * 0.09) * length
        ]
    return out


def _face68(k: np.ndarray, lab: np.ndarray, size: float) -> np.ndarray:
    """68 face points around a labelled nose, across the eyes (or ears)
    and down towards the neck; NaN without them."""
    if not lab[0]:
        return np.full((68, 2), np.nan)
    if lab[1] and lab[2]:
        across = (k[1] - k[2]) / 0.8  # the layout's eyes are 0.8 apart
    elif lab[3] and lab[4]:
        across = (k[3] - k[4]) / 1.8  # and its ears about 1.8
    else:
        return np.full((68, 2), np.nan)
    down = _rot(_unit(across), 90)
    neck = (k[5] + k[6]) / 2 if lab[5] and lab[6] else None
    if neck is not None and (neck - k[0]) @ down < 0:
        down = -down
    r_down = max(np.linalg.norm(across), 0.03 * size)
    # (u, v) of synthetic's layout: u to the person's left, v down
    uv = _face(np.zeros(2), np.array([0.0, 1.0]), 1.0) * [-1, 1]
    origin = k[0] - down * 0.2 * r_down
    return origin + uv[:, :1] * across + uv[:, 1:] * down * r_down


def _hands(k: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """2 x 21 hand points along each labelled forearm, NaN without it."""
    out = np.full((42, 2), np.nan)
    for j, (wrist, elbow, sign) in enumerate(((9, 7, 1), (10, 8, -1))):
        if not (lab[wrist] and lab[elbow]):
            continue
        fore = k[wrist] - k[elbow]
        size, d = 0.7 * np.linalg.norm(fore), _unit(fore)
        pts = [k[wrist]]
        for spread in FINGER_SPREAD:
            f = _rot(d, sign * spread)
            pts += [k[wrist] + f * size * (0.4 + 0.2 * i) for i in range(4)]
        out[21 * j:21 * j + 21] = pts
    return out


def _draw_parts(canvas: Canvas, layer_id: int, parts: np.ndarray,
                size: float) -> None:
    """Feet as heel-to-toe bars, hands as finger lines, every part point a
    1 px disc (foot, face, hand colours; alike on both sides)."""
    thick = max(1, int(0.02 * size))
    for j in range(2):
        foot = parts[3 * j:3 * j + 3]
        if not np.isnan(foot).any():
            canvas.draw(
                cv2.line,
                layer_id,
                _pt(foot[2]),
                _pt(foot[0]),
                color=PART_COLOURS['foot'],
                thickness=thick)
        hand = parts[74 + 21 * j:95 + 21 * j]
        if not np.isnan(hand).any():
            for finger in range(5):
                canvas.draw(
                    cv2.line,
                    layer_id,
                    _pt(hand[0]),
                    _pt(hand[4 + 4 * finger]),
                    color=PART_COLOURS['hand'],
                    thickness=1)
    names = ['foot'] * 6 + ['face'] * 68 + ['hand'] * 42
    for p, name in zip(parts, names):
        if not np.isnan(p).any():
            canvas.draw(
                cv2.circle,
                layer_id,
                _pt(p),
                1,
                color=PART_COLOURS[name],
                thickness=-1)


def draw_image(rng, image: dict, anns: List[dict], wholebody: bool
               ) -> Tuple[np.ndarray, List[dict], np.ndarray, List[int]]:
    """One image at the people of ``anns``: (BGR image, the annotations
    (copies; for WholeBody with the parts added), the layer map, each
    annotation's layer id)."""
    w, h = int(image['width']), int(image['height'])
    canvas = Canvas(_background(rng, w, h))
    order = sorted(
        range(len(anns)),
        key=lambda i: (anns[i]['bbox'][1] + anns[i]['bbox'][3], i))
    people = []
    for rank, i in enumerate(order):
        kv = np.array(anns[i]['keypoints'], float).reshape(17, 3)
        k, vis = kv[:, :2], kv[:, 2]
        size = person_size(anns[i]['bbox'])
        layer_id = 2 * (rank + 1)
        draw_person(rng, canvas, layer_id, k, vis, size)
        parts = None
        if wholebody:
            lab = vis > 0
            parts = np.concatenate(
                [_feet(k, lab),
                 _face68(k, lab, size),
                 _hands(k, lab)])
            _draw_parts(canvas, layer_id, parts, size)
        people.append((i, layer_id, k, vis, size, parts))
    for _, layer_id, k, vis, size, _ in people:  # v = 2 on top
        for j in np.flatnonzero(vis == 2):
            draw_disc(canvas, layer_id, k[j], j, size)
    keep = np.array([
        _pt(p[2][j]) for p in people for j in np.flatnonzero(p[3] == 2)
    ]).reshape(-1, 2)
    occluder = 1
    for _, _, k, vis, size, _ in people:
        for j in np.flatnonzero(vis == 1):
            x, y = _pt(k[j])
            if 0 <= x < w and 0 <= y < h and canvas.layer[y, x] % 2:
                continue  # already under an occluder
            occlude(rng, canvas, occluder, k[j], size, keep, disc_radius(size))
            occluder += 2
    out = [dict(a) for a in anns]
    for ann in out:  # CocoWholeBodyDataset reads it: the box, as a polygon
        x, y, bw, bh = ann['bbox']
        ann.setdefault('segmentation',
                       [[x, y, x + bw, y, x + bw, y + bh, x, y + bh]])
    ids = [0] * len(anns)
    for i, layer_id, _, _, size, parts in people:
        ids[i] = layer_id
        if wholebody:
            out[i].update(_part_fields(parts, canvas.layer, layer_id, size))
    return canvas.img, out, canvas.layer, ids


def _part_fields(parts: np.ndarray, layer: np.ndarray, layer_id: int,
                 size: float) -> dict:
    """The COCO-WholeBody fields of one person's 116 part points."""
    h, w = layer.shape
    vis = np.zeros(len(parts), int)
    for j, p in enumerate(parts):
        if np.isnan(p).any():
            continue
        x, y = _pt(p)
        if 0 <= x < w and 0 <= y < h:
            vis[j] = 2 if layer[y, x] == layer_id else 1
    xy = np.where(vis[:, None] > 0, np.nan_to_num(parts), 0.0)
    flat = np.concatenate([xy, vis[:, None]], 1)
    fields, start = {}, 0
    for name, num in PARTS:
        part = flat[start:start + num]
        start += num
        fields[name] = [round(float(v), 2) for v in part.ravel()]
        short = name.replace('_kpts', '')
        valid = bool((part[:, 2] > 0).any())
        fields[f'{short}_valid'] = valid
        if short != 'foot':
            fields[f'{short}_box'] = ([
                round(v, 2)
                for v in _xywh(part[part[:, 2] > 0, :2], 0.02 * size, w, h)
            ] if valid else [0.0, 0.0, 0.0, 0.0])
    return fields


def split_images(images: List[dict], num_train: Optional[int], num_val: int,
                 seed: int) -> Tuple[List[dict], List[dict]]:
    """A seeded random (train, val) split of ``images``, each sorted by id;
    ``num_train=None``: every image not in val."""
    rest = len(images) - num_val
    num_train = rest if num_train is None else num_train
    if num_val < 1 or num_train < 1 or num_train > rest:
        raise ValueError(
            f'num_train and num_val must be >= 1 and together at most the '
            f'{len(images)} images of the poses file, got {num_train} and '
            f'{num_val}')
    order = np.random.default_rng(seed).permutation(len(images))
    pick = [
        sorted((images[i] for i in order[a:b]), key=lambda im: im['id'])
        for a, b in ((num_val, num_val + num_train), (0, num_val))
    ]
    return pick[0], pick[1]


def generate_from_poses(out_dir: Union[str, Path],
                        poses: Union[str, Path],
                        kind: str = 'coco',
                        num_train: Optional[int] = None,
                        num_val: int = 50,
                        seed: int = 0) -> Dict[str, str]:
    """Write a train/val set of synthetic images of the people of a COCO
    keypoint file, in the layout of ``generate_dataset``.

    Args:
        out_dir (str | Path): Root folder; created if missing.
        poses (str | Path): A COCO person keypoint annotation file.
        kind (str): ``'coco'`` (17 keypoints) or ``'wholebody'`` (133, the
            parts synthetic). Defaults to ``'coco'``.
        num_train (int, optional): Training images; ``None``: every image
            of the file not in val. Defaults to None.
        num_val (int): Validation images. Defaults to 50.
        seed (int): Seed of the split and the drawing. Defaults to 0.

    Returns:
        dict: ``{'train': ann_file, 'val': ann_file}`` paths.
    """
    if kind not in ('coco', 'wholebody'):
        raise ValueError(f"kind must be 'coco' or 'wholebody', got {kind!r}")
    data = json.loads(Path(poses).read_text())
    by_image: Dict[int, List[dict]] = {}
    for ann in data['annotations']:
        if len(ann.get('keypoints', [])) != 51:
            raise ValueError(f'poses: annotation {ann.get("id")} must have '
                             '17 COCO keypoints (51 numbers)')
        by_image.setdefault(ann['image_id'], []).append(ann)
    images = [im for im in data['images'] if im['id'] in by_image]
    train, val = split_images(images, num_train, num_val, seed)
    wholebody = kind == 'wholebody'
    out = Path(out_dir)
    (out / 'annotations').mkdir(parents=True, exist_ok=True)
    written = {}
    for split, split_images_ in (('train', train), ('val', val)):
        folder = out / f'{split}2017'
        folder.mkdir(exist_ok=True)
        images_out, anns_out = [], []
        for image in split_images_:
            rng = np.random.default_rng([seed, image['id']])
            img, anns, _, _ = draw_image(rng, image, by_image[image['id']],
                                         wholebody)
            name = f'{Path(image["file_name"]).stem}.png'
            cv2.imwrite(str(folder / name), img)
            images_out.append(
                dict(
                    id=image['id'],
                    file_name=name,
                    width=image['width'],
                    height=image['height']))
            anns_out += anns
        ann_name = (f'coco_wholebody_{split}_v1.0.json'
                    if wholebody else f'person_keypoints_{split}2017.json')
        path = out / 'annotations' / ann_name
        info = dict(
            description=f'mmpose-afl synthetic {kind} at the poses '
            f'of {Path(poses).name}',
            seed=seed,
            poses=Path(poses).name)
        path.write_text(
            json.dumps(
                dict(
                    info=info,
                    images=images_out,
                    annotations=anns_out,
                    categories=CATEGORIES)))
        written[split] = osp.abspath(path)
    return written
