"""Random 2D skeletons of the synthetic generator
(:mod:`mmpose_afl.datasets.synthetic`).

A person is a torso of random tilt, a head, and arms and legs with random
joint angles, at a given body height, around the origin (neck at 0).
WholeBody adds feet (toes, heel), a 68-point face laid out like the
68-landmark scheme on the head, and 21-point hands fanned out at the
wrists. An unusual pose (one of ``UNUSUAL_POSES``) widens the tilt and the
joint angles; every option draws the same random numbers, so the options
give the same people wherever no unusual person is drawn.
"""
from typing import Optional, Tuple

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
# torso tilt (degrees) of an unusual pose, per ``unusual_pose`` option
UNUSUAL_TILT = dict(any_angle=(0, 360), mild=(-90, 90))
UNUSUAL_POSES = tuple(UNUSUAL_TILT)

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
