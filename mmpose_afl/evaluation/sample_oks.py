"""The OKS error of one training sample's keypoint prediction: the
per-sample signal that knows the answer, against which a hard-example
signal (AFL's difficulty, the base loss) is measured by
``tools/afl_difficulty_report.py`` (docs/hard_examples.md, "The oracle").

How it is computed, in heatmap space:

1. For each keypoint ``k`` the offset of the predicted from the
   ground-truth keypoint, divided by the width and height of the frame
   they lie in: ``(dx_k / W, dy_k / H)`` (:func:`sample_offsets`). For
   heatmaps the keypoints are the argmax peaks of the predicted and the
   target heatmap (:func:`heatmap_peak_offsets`, the points the recorded
   ``error`` uses and MMPose's decoders start from), in heatmap pixels; for
   SimCC and regression heads the coordinates AFL's adapter gives (a
   labelled keypoint the prediction lacks counts as infinitely far off).
   A keypoint whose ground truth does not exist (target weight 0, e.g.
   unlabelled or outside the crop) does not count.
2. Back to image pixels with the crop the heatmap covers, the sample's
   ``input_scale`` ``(s_w, s_h)`` (the box after MMPose's ``TopdownAffine``,
   padding and aspect ratio included): ``d_k^2 = (dx_k / W * s_w)^2 +
   (dy_k / H * s_h)^2``. A rotation of the crop does not change a length.
3. COCO's OKS (``COCOeval.computeOks``) with the annotation's ``area``
   (what COCO's evaluation uses) and the dataset's ``sigmas``::

       OKS = mean_{k labelled} exp(-d_k^2 / (2 * area * (2 sigma_k)^2))

   and the error is ``1 - OKS`` (0: every labelled keypoint on its
   ground truth; towards 1: all far off). ``None`` without a labelled
   keypoint.

Decision: peaks rather than the thresholded centroids the critic sees, so
that a correctly placed but faint prediction (below the centroid
threshold, common early in training) still gets its OKS instead of counting
as missing; the resolution is one heatmap pixel (4 input pixels at the
usual stride).
"""
from typing import Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor


def keypoint_offsets(pred: Tensor,
                     gt: Tensor,
                     size: Sequence[float],
                     labelled: Optional[Tensor] = None,
                     pred_present: Optional[Tensor] = None) -> Tensor:
    """Offsets of predicted from ground-truth keypoint coordinates as
    fractions of the frame they lie in (heatmap pixels, SimCC bins, input
    pixels), ``((x' - x) / W, (y' - y) / H)``.

    Args:
        pred (Tensor): Predicted coordinates [B, K, 2] as (x, y).
        gt (Tensor): Ground-truth coordinates, same shape.
        size (Sequence[float]): ``(W, H)`` of the frame.
        labelled (Tensor, optional): [B, K] bool; an unlabelled keypoint
            gets NaN offsets. Defaults to ``None`` (all labelled)
        pred_present (Tensor, optional): [B, K] bool; a labelled keypoint
            that the prediction does not have gets infinite offsets (it
            adds 0 to the OKS, as a prediction infinitely far off).
            Defaults to ``None`` (all predicted)

    Returns:
        Tensor: [B, K, 2] float32, detached.
    """
    offsets = (pred.detach().float() - gt.detach().float()) / torch.tensor(
        [float(size[0]), float(size[1])], device=pred.device)
    if pred_present is not None:
        offsets = torch.where(
            pred_present.unsqueeze(-1), offsets, float('inf'))
    if labelled is not None:
        offsets = torch.where(labelled.unsqueeze(-1), offsets, float('nan'))
    return offsets


def heatmap_peak_offsets(output: Tensor,
                         target: Tensor,
                         labelled: Optional[Tensor] = None) -> Tensor:
    """:func:`keypoint_offsets` of the predicted and the ground-truth
    heatmap peaks (argmax pixels, as MMPose's decoders take them before
    their sub-pixel shift) in the heatmap's ``(W, H)`` frame.

    Args:
        output (Tensor): Predicted heatmaps [B, K, H, W].
        target (Tensor): Target heatmaps, same shape.
        labelled (Tensor, optional): [B, K] bool; unlabelled keypoints get
            NaN offsets. Defaults to ``None`` (all labelled)

    Returns:
        Tensor: [B, K, 2] float32 ``(dx / W, dy / H)``, detached.
    """
    height, width = output.shape[2:]
    return keypoint_offsets(
        heatmap_peaks(output), heatmap_peaks(target), (width, height),
        labelled)


def mean_keypoint_distance(pred: Tensor,
                           gt: Tensor,
                           labelled: Optional[Tensor] = None
                           ) -> Tuple[Tensor, Tensor]:
    """The mean distance ``||pred_k - gt_k||`` over each sample's labelled
    keypoints, in the coordinates' units.

    Args:
        pred (Tensor): Predicted coordinates [B, K, 2].
        gt (Tensor): Ground-truth coordinates [B, K, 2].
        labelled (Tensor, optional): [B, K] (weights or bool); keypoints
            with 0 / False do not count. Defaults to ``None`` (all)

    Returns:
        tuple:
        - error (Tensor): [B]; 0 for a sample without labelled keypoints.
        - labels (Tensor): [B] number of labelled keypoints (int64).
    """
    batch, num = pred.shape[:2]
    labelled = torch.ones(batch, num, dtype=torch.bool,
                          device=pred.device) if labelled is None \
        else labelled.reshape(batch, num) > 0
    distance = (pred.detach().float() - gt.detach().float()).norm(dim=-1)
    distance = torch.where(labelled, distance, distance.new_zeros(()))
    labels = labelled.sum(dim=1)
    error = distance.sum(dim=1) / labels.clamp_min(1)
    return error, labels


def heatmap_peaks(heatmaps: Tensor) -> Tensor:
    """The argmax pixel (x, y) of each heatmap [B, K, H, W]: [B, K, 2]."""
    width = heatmaps.shape[-1]
    index = heatmaps.detach().flatten(2).argmax(dim=2)
    return torch.stack([index % width, index // width], dim=-1).float()


def keypoint_peak_error(output: Tensor,
                        target: Tensor,
                        keypoint_weights: Optional[Tensor] = None
                        ) -> Tuple[Tensor, Tensor]:
    """How wrong each sample's prediction is, independently of the critic:
    the mean distance (heatmap pixels) between the predicted and the
    ground-truth heatmap peaks over the labelled keypoints (weight > 0);
    see :func:`mean_keypoint_distance` for what it returns."""
    return mean_keypoint_distance(
        heatmap_peaks(output), heatmap_peaks(target), keypoint_weights)


def sample_diagnostics(adapter, context: Sequence) -> dict:
    """What the difficulty recorder keeps of each sample of a batch besides
    its weight: ``error`` (the prediction's mean keypoint distance over the
    labelled keypoints: heatmap pixels for heatmaps, input pixels
    otherwise), ``labels`` and the ``offsets`` [B, K, 2] the OKS error is
    computed from (module docstring). Computed on demand, never in a
    plain training step.

    Args:
        adapter: The AFL loss's adapter (``afl_adapters.py``).
        context (Sequence): The head's loss arguments of the batch.

    Returns:
        dict: ``error`` [B], ``labels`` [B], ``offsets`` [B, K, 2].
    """
    keypoints = adapter.keypoints(*context)
    labelled = keypoints.labelled
    if adapter.family == 'heatmap':
        output, target = keypoints.raw[:2]
        error, labels = keypoint_peak_error(output, target, labelled)
        offsets = heatmap_peak_offsets(output, target, keypoints.gt_present)
    else:
        if adapter.family == 'simcc':
            ratio = adapter.simcc_split_ratio
            raw = keypoints.raw
            pred, gt = (
                torch.stack([t.detach().argmax(-1) for t in pair], -1) / ratio
                for pair in (raw[:2], raw[2:]))
        else:
            pred, gt = keypoints.pred, keypoints.gt
        error, labels = mean_keypoint_distance(pred, gt, labelled)
        offsets = keypoint_offsets(keypoints.pred, keypoints.gt,
                                   keypoints.size, keypoints.gt_present,
                                   keypoints.pred_present)
    return dict(error=error, labels=labels, offsets=offsets)


def oks_error(offsets: Sequence[Sequence[float]], input_scale: Sequence[float],
              area: float, sigmas: Sequence[float]) -> Optional[float]:
    """``1 - OKS`` of one sample (see the module docstring).

    Args:
        offsets: [K, 2] of :func:`keypoint_offsets` for this sample
            (NaN: unlabelled, left out; inf: labelled but not predicted,
            adds 0 to the OKS).
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
    labelled = ~np.isnan(offsets).any(axis=1)  # inf: labelled, not predicted
    if not labelled.any() or not (area is not None and area > 0):
        return None
    scale = np.asarray(input_scale, dtype=np.float64).reshape(2)
    squared = ((offsets[labelled] * scale)**2).sum(axis=1)
    variances = (2 * sigmas[labelled])**2
    oks = np.exp(-squared / (2 * float(area) * variances)).mean()
    return float(1 - oks)


def sample_oracle(base_loss: Optional[float], offsets: Optional[Sequence],
                  metainfo: dict, sigmas: Optional[Sequence[float]]) -> dict:
    """The oracle fields the difficulty recorder writes for one tracked
    sample:
    ``base_loss`` as given and ``oks_error`` (:func:`oks_error` from the
    sample's ``input_scale`` and its annotation's ``area`` in
    ``raw_ann_info``, MMPose's default meta keys). ``oks_error`` is
    ``None`` when any of them, the offsets or the dataset's ``sigmas`` is
    missing.

    Args:
        base_loss (float, optional): The sample's base loss.
        offsets (Sequence, optional): Its [K, 2] peak offsets.
        metainfo (dict): The data sample's meta information.
        sigmas (Sequence[float], optional): The dataset's keypoint sigmas.

    Returns:
        dict: ``base_loss`` and ``oks_error``.
    """
    area = (metainfo.get('raw_ann_info') or {}).get('area')
    scale = metainfo.get('input_scale')
    error = None
    if all(v is not None for v in (offsets, area, scale, sigmas)) and \
            len(sigmas) == len(offsets):
        error = oks_error(offsets, scale, float(area), sigmas)
    return dict(base_loss=base_loss, oks_error=error)
