"""What SAHR (Luo et al., CVPR 2021) adds to a heatmap head, top-down or
bottom-up: the scale branch, its build-time checks, the scale-adapted
target with the heatmap loss, and the scale regulariser."""
import inspect
from typing import Dict, Optional, Sequence, Tuple

import torch
from mmengine.model import Sequential
from torch import Tensor, nn

from ..compiled import one_pass
from ..losses.gaussian_support import (GAUSSIAN_SUPPORT_FLOOR,
                                       check_support_floor, gaussian_support)
from ..losses.per_sample_loss import check_heatmap_shapes

SCALE_TARGETS = ('power', 'taylor')


def scale_heatmaps(heatmaps: Tensor,
                   scales: Tensor,
                   mode: str = 'power',
                   min_exponent: float = 0.1,
                   support_floor: float = GAUSSIAN_SUPPORT_FLOOR) -> Tensor:
    """The scale-adapted target ``gt^(1 + s)`` inside the Gaussian support
    (``gt >= support_floor``, see :func:`gaussian_support`), 0 outside.

    A Gaussian of std ``sigma`` becomes one of std ``sigma / sqrt(1 + s)``.
    Outside the support the target is background (0), as with the official
    code's Gaussians, which are cut off at 3 sigma: with the default floor
    (``exp(-4.5)``, the value 3 sigma from the centre) the support is the
    disc of radius 3 sigma under MMPose's standard, UDP and DARK encoders
    alike, where ``gt > 0`` would be most of a DARK heatmap
    (docs/sahr_wahr.md).

    Args:
        heatmaps (Tensor): Ground-truth heatmaps ``gt`` in [0, 1],
            [B, K, H, W]
        scales (Tensor): Scale maps ``s``, [B, K, H, W]; not detached
        mode (str): ``'power'``: the exact power ``exp((1 + s) ln gt)`` with
            ``1 + s`` clamped to at least ``min_exponent``; ``'taylor'``:
            the official code's 2nd-order expansion in ``s``,
            ``gt (1 + s ln gt + (s ln gt)^2 / 2)``. Defaults to ``'power'``
        min_exponent (float): Lower clamp of ``1 + s`` in ``'power'`` mode
            (> 0). Defaults to 0.1
        support_floor (float): The smallest ``gt`` inside the support; 0
            gives ``gt > 0``. Defaults to :data:`GAUSSIAN_SUPPORT_FLOOR`

    Returns:
        Tensor: The scaled heatmaps, [B, K, H, W].
    """
    support = gaussian_support(heatmaps, support_floor)
    # ln(gt) inside the support, 0 outside: no -inf and no NaN gradient
    log_gt = torch.log(
        torch.where(support, heatmaps, torch.ones_like(heatmaps)))
    if mode == 'taylor':
        log_scaled = log_gt * scales
        scaled = heatmaps * (1 + log_scaled + 0.5 * log_scaled.pow(2))
    else:
        exponent = (1 + scales).clamp(min=min_exponent)
        scaled = torch.exp(exponent * log_gt)
    return torch.where(support, scaled, torch.zeros_like(scaled))


def final_layer_channels(in_channels: int,
                         deconv_out_channels: Optional[Sequence[int]],
                         conv_out_channels: Optional[Sequence[int]]) -> int:
    """Channels of the features a :class:`HeatmapHead`'s final layer sees
    (after its deconv and conv layers), where the scale branch starts."""
    if conv_out_channels:
        return conv_out_channels[-1]
    if deconv_out_channels:
        return deconv_out_channels[-1]
    return in_channels


class ScaleAdaptiveMixin:
    """The SAHR part of a heatmap head (an ``nn.Module``).

    :meth:`init_scale_branch` checks the SAHR config values and builds
    ``scale_layers``, which predict one scale map ``s`` per keypoint type
    from the features the head's final layer sees (official code)::

        Conv1x1(C -> K) + BN + ReLU + depthwise ConvNxN (K -> K)

    with no activation on ``s`` and the last conv zero-initialised, so that
    ``s = 0`` at the start (at construction and after ``init_weights()``).
    :meth:`sahr_losses` returns ``loss_kpt`` (the heatmap loss against
    ``scale_heatmaps(gt, s)``, :func:`scale_heatmaps`; ``s`` not detached;
    the original ``gt`` passed as ``weight_target`` to a loss that takes it,
    so the WAHR weight comes from the original heatmaps, as in the official
    code) and ``loss_scale``, the regulariser
    ``mean_{B,K,H,W}(s^2 [gt in support] mask) * scale_loss_weight``
    (``mask`` 1 where not given; the support is
    :func:`gaussian_support`'s). The target and the regulariser are
    computed in float32 under autocast: ``s^2`` overflows fp16 past 256.
    """

    def init_scale_branch(self, feat_channels: int, num_keypoints: int,
                          heatmap_loss: nn.Module, loss_field: str,
                          scale_kernel_size: int, scale_target: str,
                          min_scale_exponent: float, scale_loss_weight: float,
                          support_floor: float) -> None:
        """Check the SAHR config values (a ``ValueError`` naming the head,
        the field and the expected value) and build ``scale_layers``.

        Args:
            feat_channels (int): Channels of the features the final layer
                sees
            num_keypoints (int): Number of keypoint types K
            heatmap_loss (nn.Module): The head's heatmap loss; a
                ``support_floor`` of its own must equal ``support_floor``
            loss_field (str): The head's config field of that loss, named
                in the error (``'loss'``, ``'keypoint_loss'``)
            scale_kernel_size (int): Kernel size of the depthwise conv; odd
            scale_target (str): ``'power'`` or ``'taylor'`` (see
                :func:`scale_heatmaps`)
            min_scale_exponent (float): Lower clamp of ``1 + s``; > 0
            scale_loss_weight (float): Weight of the regulariser; >= 0
            support_floor (float): Smallest ``gt`` in the Gaussian
                support; in [0, 1)
        """
        owner = type(self).__name__
        if not (isinstance(scale_kernel_size, int) and scale_kernel_size > 0
                and scale_kernel_size % 2 == 1):
            raise ValueError(f'{owner}: `scale_kernel_size` must be a '
                             f'positive odd int (e.g. 9), got '
                             f'{scale_kernel_size!r}')
        if scale_target not in SCALE_TARGETS:
            raise ValueError(f'{owner}: `scale_target` must be one of '
                             f'{SCALE_TARGETS}, got {scale_target!r}')
        if not min_scale_exponent > 0:
            raise ValueError(
                f'{owner}: `min_scale_exponent` (the lower clamp of 1 + s) '
                f'must be > 0 (e.g. 0.1), got {min_scale_exponent}')
        if not scale_loss_weight >= 0:
            raise ValueError(f'{owner}: `scale_loss_weight` must be >= 0 '
                             f'(e.g. 1.0), got {scale_loss_weight}')
        check_support_floor(owner, support_floor)
        loss_floor = getattr(heatmap_loss, 'support_floor', support_floor)
        if loss_floor != support_floor:
            raise ValueError(
                f'{owner}: `{loss_field}.support_floor` ({loss_floor}) must '
                f'equal the head\'s `support_floor` ({support_floor}), so '
                'that the loss and the scaled target share one Gaussian '
                'support')

        self.scale_target = scale_target
        self.min_scale_exponent = min_scale_exponent
        self.scale_loss_weight = scale_loss_weight
        self.support_floor = support_floor
        self._loss_takes_weight_target = 'weight_target' in inspect.signature(
            heatmap_loss.forward).parameters
        # the head's init_cfg (Normal on every Conv2d) runs first, then this
        # one zeroes the last conv: s = 0 after init_weights()
        self.scale_layers = Sequential(
            nn.Conv2d(feat_channels, num_keypoints, kernel_size=1),
            nn.BatchNorm2d(num_keypoints),
            nn.ReLU(inplace=True),
            nn.Conv2d(
                num_keypoints,
                num_keypoints,
                kernel_size=scale_kernel_size,
                padding=scale_kernel_size // 2,
                groups=num_keypoints),
            init_cfg=dict(type='Constant', val=0, override=dict(name='3')))
        nn.init.zeros_(self.scale_layers[3].weight)
        nn.init.zeros_(self.scale_layers[3].bias)

    def effective_sigma(self, scales: Tensor) -> Tensor:
        """The std ``sigma / sqrt(1 + s)`` (heatmap pixels) of the target
        that scale maps ``scales`` give to the codec's Gaussian of std
        ``sigma``, with ``1 + s`` clamped as in training (exact for
        ``scale_target='power'``, a small-``s`` approximation for
        ``'taylor'``). Needs ``decoder``."""
        if self.decoder is None:
            raise RuntimeError(f'{type(self).__name__}.effective_sigma needs '
                               '`decoder` (its Gaussian sigma)')
        exponent = (1 + scales).clamp(min=self.min_scale_exponent)
        return self.decoder.sigma / exponent.sqrt()

    def sahr_losses(self,
                    heatmap_loss: nn.Module,
                    heatmaps: Tensor,
                    scales: Tensor,
                    gt_heatmaps: Tensor,
                    target_weights: Optional[Tensor] = None,
                    mask: Optional[Tensor] = None) -> Dict[str, Tensor]:
        """``loss_kpt`` and ``loss_scale`` (see the class docstring).

        Args:
            heatmap_loss (nn.Module): An MMPose heatmap loss
            heatmaps (Tensor): Predicted heatmaps [B, K, H, W]
            scales (Tensor): Predicted scale maps [B, K, H, W]
            gt_heatmaps (Tensor): Ground-truth heatmaps [B, K, H, W]
            target_weights (Tensor, optional): Keypoint weights [B, K] for
                the heatmap loss. Defaults to ``None``
            mask (Tensor, optional): Valid pixels [B, 1, H, W] or
                [B, K, H, W], for the heatmap loss and the regulariser.
                Defaults to ``None``

        Returns:
            dict: ``loss_kpt`` and ``loss_scale``.
        """
        check_heatmap_shapes(
            type(self).__name__, heatmaps, gt_heatmaps, target_weights, mask)
        if scales.shape != heatmaps.shape:
            raise ValueError(
                f'{type(self).__name__}: the scale maps {list(scales.shape)} '
                f'must have the shape of the heatmaps {list(heatmaps.shape)}')
        scaled, penalty = scaled_target_and_penalty(gt_heatmaps, scales, mask,
                                                    self.scale_target,
                                                    self.min_scale_exponent,
                                                    self.support_floor)
        extra = {}
        if self._loss_takes_weight_target:  # WAHR weight from the original
            extra['weight_target'] = gt_heatmaps
        return dict(
            loss_kpt=heatmap_loss(heatmaps, scaled, target_weights, mask,
                                  **extra),
            loss_scale=penalty * self.scale_loss_weight)


@one_pass
def scaled_target_and_penalty(gt_heatmaps: Tensor, scales: Tensor,
                              mask: Optional[Tensor], mode: str,
                              min_exponent: float,
                              support_floor: float) -> Tuple[Tensor, Tensor]:
    """:func:`scale_heatmaps` and the scale regulariser
    ``mean(s^2 [gt in support] mask)`` (``mask`` 1 when ``None``) in one
    pass over the pixels (see :func:`one_pass`)."""
    # at least float32: s^2 and (s ln gt)^2 overflow fp16 past |s| = 256
    dtype = torch.promote_types(scales.dtype, torch.float32)
    gt_heatmaps, scales = gt_heatmaps.to(dtype), scales.to(dtype)
    scaled = scale_heatmaps(gt_heatmaps, scales, mode, min_exponent,
                            support_floor)
    penalty = scales.pow(2) * gaussian_support(gt_heatmaps, support_floor)
    if mask is not None:
        penalty = penalty * mask
    return scaled, penalty.mean()
