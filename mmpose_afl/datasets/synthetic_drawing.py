"""Drawing the people of the synthetic generator
(:mod:`mmpose_afl.datasets.synthetic`).

An image is a textured background (gradient, noise, random shapes). A
person's limbs are thick two-tone bars, the torso a polygon, and every
joint a small disc whose colour identifies the joint, so that a small
network learns them from scratch in minutes. Whatever is drawn into the
image is drawn with its layer id into a layer map as well, from which the
visibility of every keypoint is read
(:mod:`mmpose_afl.datasets.synthetic_annotation`).
"""
import cv2
import numpy as np


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
