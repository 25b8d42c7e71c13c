"""Weight-Adaptive Heatmap Regression loss (WAHR) of SWAHR (Luo et al.,
CVPR 2021), as in the official code (greatlog/SWAHR-HumanPose);
docs/sahr_wahr.md."""
from typing import Optional

import torch
import torch.nn.functional as F
from mmpose.registry import MODELS
from torch import Tensor

from ..compiled import one_pass
from .gaussian_support import (GAUSSIAN_SUPPORT_FLOOR, check_support_floor,
                               gaussian_support)
from .per_sample_loss import PerSampleHeatmapLoss


@MODELS.register_module()
class WAHRLoss(PerSampleHeatmapLoss):
    """Weight-adaptive L2 loss for heatmaps (WAHR).

    Per pixel, with prediction ``P`` and ground-truth heatmap ``G``::

        W = |1 - P| * G^gamma + |P| * (1 - G^gamma)
        loss = W * (P - T)^2

    where ``T`` is the regression target (``target``; the scale-adapted
    heatmap when :class:`SAHRHead` uses this loss) and ``G`` is the heatmap
    the weight comes from (``weight_target``, by default ``target``).

    **Gaussian support.** ``G^gamma`` is taken as 0 outside the Gaussian's
    support, ``G < support_floor`` (:func:`gaussian_support`), so there
    ``W = |P|``, the background weight. Decision: the paper and official
    code assume a background of exact zeros, but MMPose's DARK encoder
    (``MSRAHeatmap(unbiased=True)``) never cuts its Gaussian off, and with
    ``gamma = 0.01`` even a tiny ``G`` has ``G^gamma`` near 1, so DARK's
    background would be weighted like foreground. The default floor
    ``exp(-4.5)`` (:data:`GAUSSIAN_SUPPORT_FLOOR`), the value 3 sigma from
    the centre, keeps the 3-sigma disc, the same pixels under the standard
    encoder, UDP and DARK (measurements: docs/sahr_wahr.md).
    ``support_floor=0`` gives ``G > 0``. The regression target ``T``
    itself is not changed.

    ``P`` is not detached: the weight is part of the loss, as in the official
    code. ``G`` enters the weight as a constant (detached, as the data's
    ground truth is in the official code), so ``G^gamma`` at ``G = 0`` is
    exactly 0 and its infinite derivative never reaches a gradient: nothing
    becomes NaN, also in fp16.

    Computed in float32 under autocast (at least): ``W (P - T)^2``
    overflows fp16 once ``|P - T|`` passes 256.

    The loss of a sample is the mean over ``K, H, W``; the loss is the batch
    mean of those, times ``loss_weight`` (= the mean over all elements, like
    :class:`KeypointMSELoss`), and 0 for an empty batch. Inputs of the wrong
    shape raise a ``ValueError`` naming the shapes (see
    :class:`PerSampleHeatmapLoss`).

    Keypoint weights follow :class:`KeypointMSELoss` (whose mask handling
    this class reuses): ``target_weights`` ([B, K] or [B, K, H, W]) and
    ``mask`` multiply the per-pixel loss whenever they are given, whatever
    ``use_target_weight`` says; ``use_target_weight`` is accepted so that
    configs can switch the loss type of a stock head without other changes.

    Args:
        gamma (float): Exponent on the ground truth in the weight; must be
            > 0. Defaults to 0.01 (the paper's and official code's value)
        use_target_weight (bool): Kept for config compatibility with
            :class:`KeypointMSELoss` (see above). Defaults to ``False``
        skip_empty_channel (bool): If ``True``, channels whose target is all
            zero do not contribute. Defaults to ``False``
        loss_weight (float): Weight of the loss. Defaults to 1.0
        support_floor (float): ``G`` below it is background (see above); in
            [0, 1). Defaults to :data:`GAUSSIAN_SUPPORT_FLOOR`
            (``exp(-4.5)`` = 0.0111)
    """

    def __init__(self,
                 gamma: float = 0.01,
                 use_target_weight: bool = False,
                 skip_empty_channel: bool = False,
                 loss_weight: float = 1.,
                 support_floor: float = GAUSSIAN_SUPPORT_FLOOR):
        super().__init__(
            use_target_weight=use_target_weight,
            skip_empty_channel=skip_empty_channel,
            loss_weight=loss_weight)
        if not gamma > 0:
            raise ValueError(
                f'WAHRLoss: `gamma` must be > 0 (e.g. 0.01), got {gamma}')
        check_support_floor('WAHRLoss', support_floor)
        self.gamma = gamma
        self.support_floor = support_floor

    def weight(self, output: Tensor, weight_target: Tensor) -> Tensor:
        """The WAHR weight ``W`` of every pixel (see the class docstring),
        from the predictions ``output`` and the heatmaps ``weight_target``
        (``G``, treated as a constant), both [B, K, H, W]."""
        return wahr_weight(output, weight_target, self.gamma,
                           self.support_floor)

    def sample_losses(self,
                      output: Tensor,
                      target: Tensor,
                      target_weights: Optional[Tensor] = None,
                      mask: Optional[Tensor] = None,
                      weight_target: Optional[Tensor] = None) -> Tensor:
        """The loss of each sample [B] (see :meth:`per_sample`)."""
        if weight_target is not None and weight_target.shape != target.shape:
            raise ValueError(
                f'WAHRLoss: `weight_target` {list(weight_target.shape)} must '
                f'have the shape of `target` {list(target.shape)}')
        return wahr_sample_losses(
            output, target, target if weight_target is None else weight_target,
            self._get_mask(target, target_weights, mask), self.gamma,
            self.support_floor)

    def forward(self,
                output: Tensor,
                target: Tensor,
                target_weights: Optional[Tensor] = None,
                mask: Optional[Tensor] = None,
                weight_target: Optional[Tensor] = None) -> Tensor:
        """:meth:`PerSampleHeatmapLoss.forward` (shapes and arguments as
        there; 0 for an empty batch) with one more input.

        Args:
            weight_target (Tensor, optional): The heatmaps [B, K, H, W] the
                WAHR weight is computed from; ``None`` means ``target``.
                :class:`SAHRHead` passes the original Gaussian heatmaps here
                and the scale-adapted ones as ``target``. Defaults to
                ``None``
        """
        return super().forward(
            output, target, target_weights, mask, weight_target=weight_target)


def wahr_weight(output: Tensor, weight_target: Tensor, gamma: float,
                support_floor: float) -> Tensor:
    """``W = |1 - P| G^gamma + |P| (1 - G^gamma)`` per pixel, ``G`` =
    ``weight_target`` treated as a constant and 0 outside its Gaussian
    support (:func:`gaussian_support`); shared with :class:`FoWKALLoss`."""
    source = weight_target.detach()
    gt_pow = torch.where(
        gaussian_support(source, support_floor),
        source.clamp(min=0).pow(gamma), torch.zeros_like(source))
    # |P| (1 - G^g) + |1 - P| G^g, in fewer ops
    abs_output = output.abs()
    return abs_output + gt_pow * ((1 - output).abs() - abs_output)


@one_pass
def wahr_sample_losses(output: Tensor, target: Tensor, weight_target: Tensor,
                       mask: Optional[Tensor], gamma: float,
                       support_floor: float) -> Tensor:
    """The per-sample means [B] of ``W (P - T)^2 mask`` (:class:`WAHRLoss`;
    ``mask`` from ``_get_mask`` or ``None``) in one pass over the pixels
    (see :func:`one_pass`)."""
    # at least float32: (P - T)^2 overflows fp16 past |P - T| = 256
    dtype = torch.promote_types(output.dtype, torch.float32)
    output, target = output.to(dtype), target.to(dtype)
    weight_target = weight_target.to(dtype)
    loss = F.mse_loss(
        output, target, reduction='none') * wahr_weight(
            output, weight_target, gamma, support_floor)
    if mask is not None:
        loss = loss * mask
    return loss.flatten(1).mean(dim=1)
