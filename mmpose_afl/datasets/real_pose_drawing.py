"""Drawing one image of people at given COCO keypoints (the ``--poses``
sets of :mod:`mmpose_afl.datasets.real_pose`).

A person is drawn only where it is labelled: limbs and torso between
labelled keypoints (``v > 0``), a head around the labelled head keypoints,
a disc at every labelled keypoint; an unlabelled keypoint (``v = 0``) is
not drawn, and nothing is drawn towards it. Every ``v = 1`` keypoint ends
up under a textured occluder, and every ``v = 2`` keypoint on its own
person, so the image agrees with the labels it copies.

Left and right look alike, as in a photograph: both joints of a flip pair
share one colour and limbs are drawn the same. Which side is which
follows from the body instead: a face (skin-coloured disc) is drawn at
the labelled nose and eyes, so it sits on the side of the head they are
on, and the torso carries a front or back mark by the body's handedness
(``facing``): a light V collar when the person's left shoulder (or hip)
is on the left of the neck-to-hip direction, i.e. facing the camera, a
dark spine line when facing away, nothing when side-on. Both marks are
mirror-symmetric and the handedness is unchanged by mirroring the image
and swapping the left/right labels, so under ``RandomFlip`` the cue and
the labels stay consistent.
"""
from typing import List, Optional, Sequence, Tuple

import cv2
import numpy as np

# each flip pair of COCO's 17 keypoints shares one colour (index of a type)
JOINT_TYPE = (0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8)
LIMBS = ((5, 7), (7, 9), (6, 8), (8, 10), (11, 13), (13, 15), (12, 14), (14,
                                                                         16))
TORSO = (5, 6, 12, 11)
HEAD = (0, 1, 2, 3, 4)
FACE_KPTS = (0, 1, 2)  # nose, eyes: where the face is
# |sin| of the angle between left-right and down below which the person
# is side-on and the torso gets no front / back mark
SIDE_ON = 0.25
FRONT_MARK = (235, 235, 235)
BACK_MARK = (20, 20, 20)
SKIN = (140, 180, 225)
HAIR = (40, 50, 70)


def _type_colours() -> List[Tuple[int, int, int]]:
    hsv = np.stack([np.arange(9) * 20,
                    np.full(9, 220),
                    np.full(9, 230)], 1).astype(np.uint8)[None]
    return [
        tuple(int(c) for c in bgr)
        for bgr in cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)[0]
    ]


TYPE_COLOURS = _type_colours()


def _mid(k: np.ndarray, lab: np.ndarray,
         idx: Sequence[int]) -> Optional[np.ndarray]:
    """Mean of the labelled keypoints among ``idx`` (``None``: none)."""
    idx = [i for i in idx if lab[i]]
    return k[idx].mean(0) if idx else None


def body_axes(k: np.ndarray, lab: np.ndarray
              ) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """(across, down) of a person: the sum of the labelled left-minus-right
    shoulder and hip vectors, and neck to hips (or head to neck); either
    ``None`` where the labels do not give it."""
    across = [k[a] - k[b] for a, b in ((5, 6), (11, 12)) if lab[a] and lab[b]]
    neck = _mid(k, lab, (5, 6)) if lab[5] and lab[6] else None
    hips = _mid(k, lab, (11, 12)) if lab[11] and lab[12] else None
    head = _mid(k, lab, HEAD)
    down = None
    if neck is not None and hips is not None:
        down = hips - neck
    elif neck is not None and head is not None:
        down = neck - head
    return (np.sum(across, 0) if across else None), down


def facing(k: np.ndarray, lab: np.ndarray) -> int:
    """+1 facing the camera, -1 facing away, 0 side-on or unknown: the sign
    of the cross product of ``body_axes`` (a person facing the camera,
    upright, has the left shoulder on the image's right)."""
    across, down = body_axes(k, lab)
    if across is None or down is None:
        return 0
    norm = np.linalg.norm(across) * np.linalg.norm(down)
    if norm < 1e-6:
        return 0
    z = (across[0] * down[1] - across[1] * down[0]) / norm
    return 0 if abs(z) < SIDE_ON else int(np.sign(z))


def _pt(p: np.ndarray) -> Tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))


class Canvas:
    """The image and a layer map of what was drawn last at each pixel
    (0 background, ``2 * person`` a person, odd numbers occluders)."""

    def __init__(self, img: np.ndarray) -> None:
        self.img = img
        self.layer = np.zeros(img.shape[:2], np.int32)

    def draw(self, fn, layer_id: int, *args, color, **kw) -> None:
        fn(self.img, *args, color=color, **kw)
        fn(self.layer, *args, color=layer_id, **kw)


def person_size(bbox: Sequence[float]) -> float:
    """The length limbs, head and discs are scaled by: the box's longer
    side (a whole standing person's height)."""
    return max(float(bbox[2]), float(bbox[3]), 8.0)


def draw_person(rng, canvas: Canvas, layer_id: int, k: np.ndarray,
                vis: np.ndarray, size: float) -> None:
    """One person's torso (with its front / back mark), limbs, head (with
    its face) and joint discs, at the labelled keypoints only."""
    lab = vis > 0
    thick = max(2, int(0.05 * size))
    c1 = tuple(int(c) for c in rng.integers(40, 256, 3))
    c2 = tuple(int(c) for c in rng.integers(0, 200, 3))
    torso = [i for i in TORSO if lab[i]]
    if len(torso) >= 3:
        canvas.draw(
            cv2.fillPoly,
            layer_id, [np.round(k[torso]).astype(np.int32)],
            color=c2)
    elif len(torso) == 2:
        canvas.draw(
            cv2.line,
            layer_id,
            _pt(k[torso[0]]),
            _pt(k[torso[1]]),
            color=c2,
            thickness=thick)
    _torso_mark(canvas, layer_id, k, lab, thick)
    head = _mid(k, lab, HEAD)
    neck = _mid(k, lab, (5, 6))
    if head is not None and neck is not None:
        canvas.draw(
            cv2.line,
            layer_id,
            _pt(neck),
            _pt(head),
            color=c1,
            thickness=thick)
    for a, b in LIMBS:
        if lab[a] and lab[b]:
            canvas.draw(
                cv2.line,
                layer_id,
                _pt(k[a]),
                _pt(k[b]),
                color=c1,
                thickness=thick)
            cv2.line(canvas.img, _pt(k[a]), _pt(k[b]), c2, max(1, thick // 3))
    if head is not None:
        spread = max(np.linalg.norm(k[i] - head) for i in HEAD if lab[i])
        radius = max(3, int(max(0.07 * size, 1.2 * spread)))
        canvas.draw(
            cv2.circle, layer_id, _pt(head), radius, color=HAIR, thickness=-1)
        face = _mid(k, lab, FACE_KPTS)
        if face is not None:
            canvas.draw(
                cv2.circle,
                layer_id,
                _pt(face),
                max(2, int(0.7 * radius)),
                color=SKIN,
                thickness=-1)
    for i in np.flatnonzero(lab):
        draw_disc(canvas, layer_id, k[i], i, size)


def draw_disc(canvas: Canvas, layer_id: int, p: np.ndarray, joint: int,
              size: float) -> None:
    canvas.draw(
        cv2.circle,
        layer_id,
        _pt(p),
        disc_radius(size),
        color=TYPE_COLOURS[JOINT_TYPE[joint]],
        thickness=-1)


def disc_radius(size: float) -> int:
    return max(1, int(0.025 * size))


def _torso_mark(canvas: Canvas, layer_id: int, k: np.ndarray, lab: np.ndarray,
                thick: int) -> None:
    """Front: a V from each shoulder to a point below the neck; back: a
    spine line from the neck down; side-on or unknown: nothing."""
    side = facing(k, lab)
    _, down = body_axes(k, lab)
    if side == 0 or not (lab[5] and lab[6]):
        return
    neck = (k[5] + k[6]) / 2
    width = np.linalg.norm(k[5] - k[6])
    unit = down / (np.linalg.norm(down) + 1e-9)
    tip = neck + unit * 0.6 * width
    line = max(1, thick // 2)
    if side > 0:
        for shoulder in (5, 6):
            cv2.line(canvas.img, _pt(k[shoulder]), _pt(tip), FRONT_MARK, line)
    else:
        cv2.line(canvas.img, _pt(neck), _pt(neck + unit * 1.2 * width),
                 BACK_MARK, line)


def textured_rect(rng, canvas: Canvas, layer_id: int, x: int, y: int, w: int,
                  h: int) -> None:
    """A textured rectangle (clipped to the image) that hides what is
    under it."""
    H, W = canvas.layer.shape
    x1, y1 = max(x, 0), max(y, 0)
    x2, y2 = min(x + w, W), min(y + h, H)
    if x2 <= x1 or y2 <= y1:
        return
    base = rng.integers(0, 256, 3)
    patch = rng.normal(0, 30, (y2 - y1, x2 - x1, 3)) + base
    canvas.img[y1:y2, x1:x2] = np.clip(patch, 0, 255).astype(np.uint8)
    canvas.layer[y1:y2, x1:x2] = layer_id


def occlude(rng, canvas: Canvas, layer_id: int, p: np.ndarray, size: float,
            keep: np.ndarray, margin: int) -> None:
    """Hide keypoint ``p`` under a textured rectangle of side 0.15-0.4 x
    ``size``, placed at random around it and shrunk until it covers no
    point of ``keep`` (with ``margin`` px); a 1 px rectangle at ``p`` if
    even a 3 px one would."""
    side = rng.uniform(0.15, 0.4) * size
    fx, fy = rng.uniform(0.15, 0.85, 2)
    px, py = _pt(p)
    while True:
        w = h = max(1, int(side))
        x, y = px - int(fx * w), py - int(fy * h)
        inside = ((keep[:, 0] >= x - margin) & (keep[:, 0] < x + w + margin)
                  & (keep[:, 1] >= y - margin)
                  & (keep[:, 1] < y + h + margin))
        if not inside.any():
            break
        if side <= 3:
            x, y, w, h = px, py, 1, 1
            break
        side *= 0.7
    textured_rect(rng, canvas, layer_id, x, y, w, h)
