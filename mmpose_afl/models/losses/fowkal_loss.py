"""Keypoint-wise Adaptive Loss (KAL) with Foreground-Weight Adaptive Heatmap
Regression (FWAHR) -- FoWKAL (Seong, Lee and Lee, "Keypoint-wise Adaptive
Loss for Whole-Body Human Pose Estimation") -- and the pieces of its
ablation: the heuristic loss, KAL alone, WAHR or FWAHR weighting.
Equations, decisions and their reasons: docs/fowkal.md."""
import contextlib
import math
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.logging import MessageHub
from mmpose.models.losses import AdaptiveWingLoss
from mmpose.registry import MODELS
from torch import Tensor, nn

from . import head_check  # noqa: F401 (checks the head that takes it)
from .fowkal_parts import WHOLEBODY_METAINFO, PartLayout, parts_from_metainfo
from .fowkal_pixels import awing_map, fowkal_keypoint_terms, pixel_weights
from .gaussian_support import GAUSSIAN_SUPPORT_FLOOR, check_support_floor
from .per_sample_loss import PerSampleHeatmapLoss
from .running_mean_norm import (check_running_mean_args,
                                running_mean_normalisers)

KAF_MODES = ('learned', 'heuristic')
WEIGHTINGS = (None, 'wahr', 'fwahr')


def float32_under_amp(device: torch.device):
    """A context in which autocast (AMP) leaves this loss in float32."""
    if device.type in ('cpu', 'cuda'):
        return torch.autocast(device.type, enabled=False)
    return contextlib.nullcontext()


@MODELS.register_module()
class FoWKALLoss(PerSampleHeatmapLoss):
    """FoWKAL: keypoint-wise mix of AWing and MSE, optionally (F)WAHR
    weighted, averaged per body part.

    With ``P`` the ground-truth heatmap and ``P^`` the prediction, per pixel
    of keypoint ``k``::

        l_k = W * [lambda_k AWing(P^, P) / m_awing
                   + (1 - lambda_k) (P^ - P)^2 / m_mse]

    and per sample ``L = sum_part 1/N_part sum_{k in part} mean_HW(l_k)``
    (``part_average=True``, the paper's sum; else ``1/K sum_k``).
    ``forward`` returns ``mean_batch(L) * loss_weight + L_reg``. The
    paper's ablation rows are options: heuristic ``kaf='heuristic',
    weighting=None, normalize=False``; KAL ``weighting=None``; FoWKAL
    (default) ``kaf='learned', weighting='fwahr'``.

    Pixel weights (``P`` a constant, ``P^`` not detached)::

        WAHR:  W = P^g |1 - P^| + |P^| (1 - P^g)
        FWAHR: W = the WAHR weight  where P^ >= 2^(-1/g),  else  tau * P

    Decisions where the paper is silent (reasons in docs/fowkal.md):
    ``tau = 1``; ``P`` below ``support_floor`` is background in the
    weights; AWing is MMPose's :class:`AdaptiveWingLoss` criterion written
    out element-wise; ``lambda_k = sigmoid(kaf_logits[k])``, a parameter
    of this loss; ``normalize`` divides each term by a detached running
    mean (:func:`running_mean_normalisers`: BatchNorm-like, all-reduced
    under DDP, clipped); ``L_reg = consistency_weight * sum_part sum_p
    (lambda_k - mean_p)^2 + boundary_weight * sum_part mean_p -log(4
    lambda_k (1 - lambda_k))``, added once; ``N_part`` counts unlabelled
    keypoints too. The loss computes in float32 also under AMP (autocast
    is switched off inside it), as its terms span orders of magnitude.

    Keypoint weights follow :class:`KeypointMSELoss`: ``target_weights``
    ([B, K] or [B, K, H, W]) and ``mask`` multiply the per-pixel loss
    whenever given, whatever ``use_target_weight`` says.

    Inside another loss (e.g. ``AFLHeatmapLoss``): :meth:`per_sample`
    returns ``L`` [B] without ``loss_weight`` and ``L_reg``, and
    :meth:`regularization` returns ``L_reg``. Each training-mode call of
    :meth:`per_sample` updates the running means once and logs each part's
    mean factor as ``train/kaf_<part>``. The parts must cover
    ``num_keypoints`` when it is given; a head that takes this loss checks
    its ``out_channels`` (:meth:`check_head`); the heatmaps' K is checked
    at every call.

    Args:
        kaf (str): ``'learned'`` (KAL) or ``'heuristic'`` (fixed factors, 1
            on ``dense_parts``, 0 elsewhere). Defaults to ``'learned'``
        weighting (str, optional): ``'fwahr'``, ``'wahr'`` or ``None`` (no
            pixel weights). Defaults to ``'fwahr'``
        gamma (float): Exponent of the (F)WAHR weight, > 0. Defaults to 0.01
        tau (float): Slope of FWAHR's second branch, >= 0. Defaults to 1.0
        support_floor (float): Target values below it are background in
            the (F)WAHR weights, in [0, 1); 0 means ``P > 0``. Defaults to
            :data:`GAUSSIAN_SUPPORT_FLOOR` (``exp(-4.5)``)
        parts (dict, optional): Part name -> keypoint indices, covering
            every keypoint exactly once. ``None`` derives them from
            ``metainfo`` with :func:`parts_from_metainfo`. Defaults to
            ``None``
        metainfo (str): Dataset metainfo file the parts are derived from
            when ``parts`` is ``None``. Defaults to MMPose's
            ``'configs/_base_/datasets/coco_wholebody.py'``
        dense_parts (Sequence[str]): Parts with dense keypoints (AWing in
            the heuristic, high initial factor). Defaults to
            ``('face', 'left_hand', 'right_hand')``
        num_keypoints (int, optional): The head's ``out_channels``, checked
            against the parts at build time. Defaults to ``None``
        part_average (bool): Average per part, then sum over parts (the
            paper) instead of a flat mean over keypoints. Defaults to
            ``True``
        lambda_init (float | dict): Initial factors, in (0, 1): one value,
            or a dict with the keys ``'dense'`` and ``'coarse'``, or with
            every part name. Defaults to ``dict(dense=0.8, coarse=0.2)``
        normalize (bool): Divide each term by its running mean. Defaults to
            ``True``
        norm_momentum (float): Weight of the batch in the running means, in
            (0, 1]. Defaults to 0.01
        norm_clip (float): A batch statistic counts as at most this many
            times the running mean in its update, >= 1. Defaults to 4.0
        consistency_weight (float): Weight of the within-part consistency
            term of ``L_reg``, >= 0. Defaults to 1.0
        boundary_weight (float): Weight of the boundary term of ``L_reg``,
            >= 0. Defaults to 0.1
        use_target_weight (bool): Kept for config compatibility (see
            above). Defaults to ``False``
        skip_empty_channel (bool): If ``True``, channels whose target is all
            zero do not contribute. Defaults to ``False``
        loss_weight (float): Weight of the data term. Defaults to 1.0
    """

    def __init__(self,
                 kaf: str = 'learned',
                 weighting: Optional[str] = 'fwahr',
                 gamma: float = 0.01,
                 tau: float = 1.0,
                 support_floor: float = GAUSSIAN_SUPPORT_FLOOR,
                 parts: Optional[Dict[str, Sequence[int]]] = None,
                 metainfo: str = WHOLEBODY_METAINFO,
                 dense_parts: Sequence[str] = ('face', 'left_hand',
                                               'right_hand'),
                 num_keypoints: Optional[int] = None,
                 part_average: bool = True,
                 lambda_init: Union[float,
                                    Dict[str,
                                         float]] = dict(dense=0.8, coarse=0.2),
                 normalize: bool = True,
                 norm_momentum: float = 0.01,
                 norm_clip: float = 4.0,
                 consistency_weight: float = 1.0,
                 boundary_weight: float = 0.1,
                 use_target_weight: bool = False,
                 skip_empty_channel: bool = False,
                 loss_weight: float = 1.):
        super().__init__(
            use_target_weight=use_target_weight,
            skip_empty_channel=skip_empty_channel,
            loss_weight=loss_weight)
        if kaf not in KAF_MODES:
            raise ValueError(
                f'FoWKALLoss: `kaf` must be one of {KAF_MODES}, got {kaf!r}')
        if weighting not in WEIGHTINGS:
            raise ValueError(f'FoWKALLoss: `weighting` must be one of '
                             f'{WEIGHTINGS}, got {weighting!r}')
        if not gamma > 0:
            raise ValueError(
                f'FoWKALLoss: `gamma` must be > 0 (e.g. 0.01), got {gamma}')
        if not tau >= 0:
            raise ValueError(
                f'FoWKALLoss: `tau` must be >= 0 (e.g. 1.0), got {tau}')
        check_support_floor('FoWKALLoss', support_floor)
        check_running_mean_args(norm_momentum, norm_clip)
        for field, value in (('consistency_weight', consistency_weight),
                             ('boundary_weight', boundary_weight)):
            if not value >= 0:
                raise ValueError(
                    f'FoWKALLoss: `{field}` must be >= 0, got {value}')
        layout = PartLayout(
            parts_from_metainfo(metainfo) if parts is None else parts,
            dense_parts, num_keypoints)
        self.parts = layout.parts
        self.dense_parts = layout.dense_parts
        self.num_keypoints = k = layout.num_keypoints
        self.kaf_mode = kaf
        self.weighting = weighting
        self.gamma = gamma
        self.tau = tau
        self.support_floor = support_floor
        self.part_average = part_average
        self.normalize = normalize
        self.norm_momentum = norm_momentum
        self.norm_clip = norm_clip
        self.consistency_weight = consistency_weight
        self.boundary_weight = boundary_weight
        self.awing = AdaptiveWingLoss()

        # constants rebuilt from the config: not part of the state_dict
        part_share = layout.part_share()
        self.register_buffer('part_onehot', layout.onehot(), persistent=False)
        self.register_buffer('part_share', part_share, persistent=False)
        self.register_buffer(
            'keypoint_share',
            part_share if part_average else torch.full((k, ), 1 / k),
            persistent=False)
        self.register_buffer('running_means', torch.zeros(2))
        if kaf == 'learned':
            init = layout.initial_factors(lambda_init)
            self.kaf_logits = nn.Parameter(torch.log(init / (1 - init)))
        else:
            self.register_buffer(
                'fixed_factors', layout.dense(), persistent=False)

    def check_head(self, head: nn.Module) -> None:
        """Raise a ``ValueError`` when ``head`` (the head that takes this
        loss, see :mod:`.head_check`) has ``out_channels`` other than the
        number of keypoints in ``parts``."""
        out_channels = getattr(head, 'out_channels', None)
        if out_channels is not None and out_channels != self.num_keypoints:
            raise ValueError(
                f'FoWKALLoss: `parts` hold {self.num_keypoints} keypoint '
                f"indices but the head's `out_channels` is {out_channels}; "
                'they must cover every keypoint of the heatmaps exactly '
                'once (set `parts` or `metainfo` for this dataset)')

    def keypoint_factors(self) -> Tensor:
        """The factors lambda_k, shape [K]: ``sigmoid(kaf_logits)`` when
        learned, else the heuristic's 0/1."""
        if self.kaf_mode == 'learned':
            return torch.sigmoid(self.kaf_logits)
        return self.fixed_factors

    def pixel_weights(self, output: Tensor,
                      target: Tensor) -> Optional[Tensor]:
        """The WAHR / FWAHR weights W [B, K, H, W], or ``None`` when
        ``weighting`` is ``None`` (:func:`.fowkal_pixels.pixel_weights`)."""
        return pixel_weights(output, target, self.weighting, self.gamma,
                             self.tau, self.support_floor)

    def awing_map(self, output: Tensor, target: Tensor) -> Tensor:
        """MMPose's AWing, element-wise (:func:`.fowkal_pixels.awing_map`)."""
        return awing_map(output, target, self.awing)

    def keypoint_terms(self,
                       output: Tensor,
                       target: Tensor,
                       target_weights: Optional[Tensor] = None,
                       mask: Optional[Tensor] = None
                       ) -> Tuple[Tensor, Tensor, Tensor]:
        """Per-keypoint terms before normalisation and mixing.

        Arguments as in :meth:`forward`.

        Returns:
            tuple: ``(awing, mse, active)``: ``mean_HW(W * mask * AWing)``
            and ``mean_HW(W * mask * (P^ - P)^2)``, each [B, K] in at least
            float32, and the [B, K] bool of keypoints with a non-zero mask.
        """
        batch, k = output.shape[:2]
        if k != self.num_keypoints:
            raise ValueError(
                f'FoWKALLoss: the heatmaps have K={k} channels but `parts` '
                f'cover {self.num_keypoints} keypoints; set `parts` (or '
                '`metainfo`) for this dataset')
        _mask = self._get_mask(target, target_weights, mask)
        if _mask is not None:
            active = (_mask != 0).flatten(2).any(-1).expand(batch, k)
        else:
            active = output.new_ones((batch, k), dtype=torch.bool)
        terms = fowkal_keypoint_terms(output, target, _mask, self.awing,
                                      self.weighting, self.gamma, self.tau,
                                      self.support_floor)
        return (*terms, active)

    def sample_losses(self,
                      output: Tensor,
                      target: Tensor,
                      target_weights: Optional[Tensor] = None,
                      mask: Optional[Tensor] = None) -> Tensor:
        """The loss ``L`` of each sample, without ``loss_weight`` and
        ``L_reg``: shape [B], at least float32 (see :meth:`per_sample`)."""
        with float32_under_amp(output.device):
            awing, mse, active = self.keypoint_terms(output, target,
                                                     target_weights, mask)
            if self.normalize:
                norm = running_mean_normalisers(self.running_means,
                                                torch.stack([awing, mse]),
                                                active, self.norm_momentum,
                                                self.norm_clip, self.training)
                tiny = torch.finfo(norm.dtype).tiny
                awing = awing / norm[0].clamp(min=tiny)
                mse = mse / norm[1].clamp(min=tiny)
            if self.training and self.kaf_mode == 'learned':
                self._log_factors()
            factors = self.keypoint_factors()
            loss = factors * awing + (1 - factors) * mse
            return (loss * self.keypoint_share).sum(1)

    def regularization(self) -> Tensor:
        """``L_reg`` of the learned factors, already weighted (a scalar; 0
        for the heuristic)."""
        if self.kaf_mode != 'learned':
            return self.part_share.new_zeros(())
        with float32_under_amp(self.kaf_logits.device):
            factors = torch.sigmoid(self.kaf_logits)
            part_mean = (self.part_onehot @ factors) / self.part_onehot.sum(1)
            deviation = factors - self.part_onehot.t() @ part_mean
            consistency = (deviation**2).sum()  # sum_part sum_k
            # -log(4 lambda (1 - lambda)), stable in theta
            boundary = -(
                F.logsigmoid(self.kaf_logits) +
                F.logsigmoid(-self.kaf_logits) + math.log(4.))
            boundary = (boundary * self.part_share).sum()
            return (self.consistency_weight * consistency +
                    self.boundary_weight * boundary)

    def part_factors(self) -> Dict[str, float]:
        """The mean factor lambda of each part."""
        means = (self.part_onehot @ self.keypoint_factors().detach()) / \
            self.part_onehot.sum(1)
        return dict(zip(self.parts, means.tolist()))

    def _log_factors(self) -> None:
        hub = MessageHub.get_current_instance()
        for name, value in self.part_factors().items():
            hub.update_scalar(f'train/kaf_{name}', value)

    def forward(self,
                output: Tensor,
                target: Tensor,
                target_weights: Optional[Tensor] = None,
                mask: Optional[Tensor] = None) -> Tensor:
        """:meth:`PerSampleHeatmapLoss.forward` (shapes and arguments as
        there; the data term is 0 for an empty batch) plus
        :meth:`regularization`, ``L_reg``."""
        return super().forward(output, target, target_weights,
                               mask) + self.regularization()
