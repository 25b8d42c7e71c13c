"""The OKS error of one training sample's heatmap prediction: the
per-sample signal that knows the answer, against which a hard-example
signal (AFL's difficulty, the base loss) is measured by
``tools/afl_difficulty_report.py`` (docs/hard_examples.md, "The oracle").

How it is computed, in heatmap space:

1. For each keypoint ``k`` the offset from the ground-truth peak to the
   predicted peak (the argmax pixels of the target and of the predicted
   heatmap, as :func:`keypoint_peak_error` takes them), divided by the
   heatmap's width and height: ``(dx_k / W, dy_k / H)``
   (:func:`heatmap_peak_offsets`; NaN for a keypoint whose target weight is
   0, i.e. unlabelled or outside the crop).
2. Back to image pixels with the crop the heatmap covers, the sample's
   ``input_scale`` ``(s_w, s_h)`` (the box after MMPose's ``TopdownAffine``,
   padding and aspect ratio included): ``d_k^2 = (dx_k / W * s_w)^2 +
   (dy_k / H * s_h)^2``. A rotation of the crop does not change a length.
3. COCO's OKS (``COCOeval.computeOks``) with the annotation's ``area``
   (what COCO's evaluation uses) and the dataset's ``sigmas``::

       OKS = mean_{k labelled} exp(-d_k^2 / (2 * area * (2 sigma_k)^2))

   and the error is ``1 - OKS`` (0: every labelled peak on its ground
   truth; towards 1: all far off). ``None`` without a labelled keypoint.

Decision: peaks, not a sub-pixel decoder, so that the error needs nothing
but the two heatmaps and is the same quantity as the peak distance that
AFLCriticHook already records; its resolution is one heatmap pixel (4 input
pixels at the usual stride).
"""
from typing import Optional, Sequence

import numpy as np
import torch
from torch import Tensor


def heatmap_peak_offsets(output: Tensor,
                         target: Tensor,
                         keypoint_weights: Optional[Tensor] = None
                         ) -> Tensor:
    """Offsets of the predicted from the ground-truth heatmap peaks, as
    fractions of the heatmap's width and height.

    Args:
        output (Tensor): Predicted heatmaps [B, K, H, W].
        target (Tensor): Target heatmaps, same shape.
        keypoint_weights (Tensor, optional): [B, K]; a keypoint of weight
            0 gets NaN offsets. Defaults to ``None`` (all labelled)

    Returns:
        Tensor: [B, K, 2] float32 ``(dx / W, dy / H)``, detached.
    """
    batch, num, height, width = output.shape

    def peaks(heatmaps: Tensor) -> Tensor:
        index = heatmaps.detach().flatten(2).argmax(dim=2)
        return torch.stack([index % width, index // width], dim=-1).float()

    offsets = (peaks(output) - peaks(target)) / output.new_tensor(
        [width, height], dtype=torch.float32)
    if keypoint_weights is not None:
        labelled = keypoint_weights.detach().reshape(batch, num, 1) > 0
        offsets = torch.where(labelled, offsets, float('nan'))
    return offsets


def oks_error(offsets: Sequence[Sequence[float]], input_scale: Sequence[float],
              area: float, sigmas: Sequence[float]) -> Optional[float]:
    """``1 - OKS`` of one sample (see the module docstring).

    Args:
        offsets: [K, 2] of :func:`heatmap_peak_offsets` for this sample
            (NaN for unlabelled keypoints).
        input_scale: ``(s_w, s_h)`` in image pixels, the crop the heatmap
            covers (MMPose's ``input_scale`` meta key).
        area (float): The annotation's ``area`` in image pixels (> 0).
        sigmas: The K keypoint sigmas of the dataset (its metainfo's
            ``sigmas``).

    Returns:
        float or None: ``1 - OKS`` in [0, 1]; ``None`` when no keypoint is
        labelled or ``area`` is not a positive number.
    """
    offsets = np.asarray(offsets, dtype=np.float64).reshape(-1, 2)
    sigmas = np.asarray(sigmas, dtype=np.float64).reshape(-1)
    if len(sigmas) != len(offsets):
        raise ValueError(f'oks_error: {len(offsets)} keypoint offsets but '
                         f'{len(sigmas)} sigmas')
    labelled = np.isfinite(offsets).all(axis=1)
    if not labelled.any() or not (area is not None and area > 0):
        return None
    scale = np.asarray(input_scale, dtype=np.float64).reshape(2)
    squared = ((offsets[labelled] * scale)**2).sum(axis=1)
    variances = (2 * sigmas[labelled])**2
    oks = np.exp(-squared / (2 * float(area) * variances)).mean()
    return float(1 - oks)
