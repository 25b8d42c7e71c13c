"""Keypoint-wise Adaptive Loss (KAL) with Foreground-Weight Adaptive Heatmap
Regression (FWAHR) -- FoWKAL (Seong, Lee and Lee, "Keypoint-wise Adaptive
Loss for Whole-Body Human Pose Estimation") -- and the pieces of its
ablation: the heuristic loss, KAL alone, WAHR or FWAHR weighting.
Equations, decisions and their reasons: docs/fowkal.md."""
import math
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.dist import all_reduce
from mmengine.logging import MessageHub
from mmpose.datasets.datasets.utils import parse_pose_metainfo
from mmpose.models.losses import AdaptiveWingLoss
from mmpose.registry import MODELS
from torch import Tensor, nn

from ..compiled import one_pass
from .building_head import building_head
from .gaussian_support import (GAUSSIAN_SUPPORT_FLOOR, check_support_floor,
                               gaussian_support)
from .per_sample_loss import PerSampleHeatmapLoss
from .wahr_loss import wahr_weight

WHOLEBODY_METAINFO = 'configs/_base_/datasets/coco_wholebody.py'
KAF_MODES = ('learned', 'heuristic')
WEIGHTINGS = (None, 'wahr', 'fwahr')


def parts_from_metainfo(metainfo: str) -> Dict[str, List[int]]:
    """Body parts of a dataset from the keypoint names in its metainfo.

    Names as in MMPose's ``coco_wholebody.py`` are sorted into ``face``
    (``face-*``), ``left_hand`` / ``right_hand`` (``left_`` / ``right_``
    followed by ``hand_root``, ``thumb*`` or ``*finger*``), ``foot``
    (``*_toe``, ``*_heel``) and ``body`` (all others); parts no keypoint
    falls into are left out, so COCO's metainfo gives the single part
    ``body``. For COCO-WholeBody this gives body 0-16, foot 17-22, face
    23-90, left hand 91-111 and right hand 112-132.

    Args:
        metainfo (str): A dataset metainfo config file, looked up as MMPose's
            datasets do (a relative path that does not exist is taken from
            the MMPose package, e.g.
            ``'configs/_base_/datasets/coco_wholebody.py'``)

    Returns:
        Dict[str, List[int]]: part name -> keypoint indices.
    """
    names = parse_pose_metainfo(dict(from_file=metainfo))['keypoint_id2name']
    parts = dict(body=[], foot=[], face=[], left_hand=[], right_hand=[])
    for index, name in sorted(names.items()):
        if name.startswith('face-'):
            part = 'face'
        elif 'hand_root' in name or 'thumb' in name or 'finger' in name:
            side = name.split('_')[0]
            if side not in ('left', 'right'):
                raise ValueError(
                    f'FoWKALLoss: cannot tell the side of hand keypoint '
                    f'{name!r} in `metainfo` {metainfo!r}; give `parts`')
            part = f'{side}_hand'
        elif name.endswith(('_toe', '_heel')):
            part = 'foot'
        else:
            part = 'body'
        parts[part].append(index)
    return {name: ids for name, ids in parts.items() if ids}


def _check_parts(parts: Dict[str, Sequence[int]],
                 num_keypoints: Optional[int],
                 num_keypoints_field: str = '`num_keypoints`'
                 ) -> Dict[str, List[int]]:
    """``parts`` as lists, after checking they cover every keypoint once
    (``num_keypoints`` of them, when given, named ``num_keypoints_field``
    in the error)."""
    if not isinstance(parts, dict) or not parts:
        raise ValueError('FoWKALLoss: `parts` must be a non-empty dict of '
                         f'part name -> keypoint indices, got {parts!r}')
    parts = {name: list(ids) for name, ids in parts.items()}
    flat = [i for ids in parts.values() for i in ids]
    empty = [name for name, ids in parts.items() if not ids]
    not_int = [
        i for i in flat if isinstance(i, bool) or not isinstance(i, int)
    ]
    if empty or not_int:
        raise ValueError(f'FoWKALLoss: every part in `parts` needs integer '
                         f'keypoint indices; empty parts {empty}, '
                         f'non-integers {not_int}')
    if num_keypoints is not None and num_keypoints != len(flat):
        raise ValueError(
            f'FoWKALLoss: `parts` hold {len(flat)} keypoint indices but '
            f'{num_keypoints_field} is {num_keypoints}; they must cover '
            'every keypoint of the heatmaps exactly once (set `parts` or '
            '`metainfo` for this dataset)')
    repeated = sorted(i for i, n in Counter(flat).items() if n > 1)
    missing = sorted(set(range(len(flat))) - set(flat))
    if repeated or missing:
        raise ValueError(
            f'FoWKALLoss: `parts` must cover keypoints 0..{len(flat) - 1} '
            f'exactly once; repeated {repeated}, missing {missing}')
    return parts


@MODELS.register_module()
class FoWKALLoss(PerSampleHeatmapLoss):
    """FoWKAL: keypoint-wise mix of AWing and MSE, optionally (F)WAHR
    weighted, averaged per body part.

    With ``P`` the ground-truth heatmap and ``P^`` the prediction (the hat
    is the estimate), per pixel of keypoint ``k``::

        l_k = W * [lambda_k AWing(P^, P) / m_awing
                   + (1 - lambda_k) (P^ - P)^2 / m_mse]

    and per sample ``L = sum_part 1/N_part sum_{k in part} mean_HW(l_k)``
    (``part_average=True``, the paper's sum; else ``1/K sum_k``).
    ``forward`` returns ``mean_batch(L) * loss_weight + L_reg``. The
    paper's ablation rows are options (docs/fowkal.md has the table):
    heuristic ``kaf='heuristic', weighting=None, normalize=False``; KAL
    ``weighting=None``; FoWKAL (default) ``kaf='learned',
    weighting='fwahr'``.

    Pixel weights (``P`` a constant, ``P^`` not detached, as in WAHR's
    official code)::

        WAHR:  W = P^g |1 - P^| + |P^| (1 - P^g)
        FWAHR: W = the WAHR weight  where P^ >= 2^(-1/g),  else  tau * P

    Decisions where the paper is silent (reasons in docs/fowkal.md):

    - ``tau = 1``: the one value for which the weight is continuous at the
      keypoint's peak and FWAHR's second branch never weights a pixel more
      than WAHR would at the switch.
    - ``P`` below ``support_floor`` (default ``exp(-4.5)``, the 3-sigma
      value) is background in the weights, so DARK's uncut Gaussian tails
      weigh like the standard and UDP encoders' background; the regression
      target itself is unchanged.
    - AWing is MMPose's :class:`AdaptiveWingLoss` criterion (alpha 2.1,
      omega 14, epsilon 1, theta 0.5), written out element-wise
      (:meth:`awing_map`; tested equal in value and gradient), computed in
      at least float32.
    - ``lambda_k = sigmoid(kaf_logits[k])``: a parameter of this loss, so
      the pose optimiser trains it, it is checkpointed and DDP keeps it
      identical on all ranks. Initialised from ``lambda_init``.
    - ``normalize=True`` divides each term by a detached running mean of
      its per-keypoint value (buffer ``running_means``, all-reduced under
      DDP), because AWing is orders of magnitude larger than MSE and raw
      factors would collapse to the MSE side. The means are updated only
      from finite batch statistics, each clipped to ``norm_clip`` times
      the running mean (the first update: ``norm_clip`` times the batch
      median), so one overflowing batch cannot freeze training.
    - ``L_reg = consistency_weight * sum_part sum_p (lambda_k - mean_p)^2
      + boundary_weight * sum_part mean_p -log(4 lambda_k (1 - lambda_k))``:
      a within-part consistency term plus a term that keeps every factor
      off 0 and 1. It does not depend on the samples: added once, not
      multiplied by ``loss_weight`` (0 for the heuristic).
    - The heuristic rows use ``normalize=False``: the paper's
      ``L_heuristic`` is a plain AWing term plus a plain MSE term.
    - ``N_part`` is the part's size, the same for every sample; an
      unlabelled keypoint adds 0 (as in the MSE / AWing baselines), so a
      lone labelled keypoint never outweighs a fully labelled part's.

    Keypoint weights follow :class:`KeypointMSELoss`: ``target_weights``
    ([B, K] or [B, K, H, W]) and ``mask`` multiply the per-pixel loss
    whenever given, whatever ``use_target_weight`` says.

    Inside another loss (e.g. ``AFLHeatmapLoss``): :meth:`per_sample`
    returns the per-sample ``L`` [B] without ``loss_weight`` and ``L_reg``,
    :meth:`regularization` returns ``L_reg``; ``forward`` is exactly
    ``per_sample(...).mean() * loss_weight + regularization()``. Each
    training-mode call of :meth:`per_sample` updates the running means once
    and logs each part's mean factor as ``train/kaf_<part>``
    (``tools/draw_kaf.py`` draws the factors on the skeleton). An empty
    batch gives a zero data term plus ``L_reg``; inputs of the wrong shape
    raise a ``ValueError`` naming the shapes.

    Args:
        kaf (str): ``'learned'`` (KAL) or ``'heuristic'`` (fixed factors, 1
            on ``dense_parts``, 0 elsewhere). Defaults to ``'learned'``
        weighting (str, optional): ``'fwahr'``, ``'wahr'`` or ``None`` (no
            pixel weights). Defaults to ``'fwahr'``
        gamma (float): Exponent of the (F)WAHR weight, > 0. Defaults to 0.01
        tau (float): Slope of FWAHR's second branch, >= 0. Defaults to 1.0
        support_floor (float): Target values below it are background in
            the (F)WAHR weights (see above), in [0, 1); 0 means ``P > 0``.
            Defaults to :data:`GAUSSIAN_SUPPORT_FLOOR` (``exp(-4.5)`` =
            0.0111)
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
        num_keypoints (int, optional): Checked against the parts when the
            loss is built. When ``None``, the ``out_channels`` of the head
            that builds the loss is checked instead (the usual case in a
            config); a loss built on its own checks the heatmaps' K at the
            first forward. Defaults to ``None``
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
                 lambda_init: Union[float, Dict[str, float]] = dict(
                     dense=0.8, coarse=0.2),
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
        if not 0 < norm_momentum <= 1:
            raise ValueError('FoWKALLoss: `norm_momentum` must be in (0, 1] '
                             f'(e.g. 0.01), got {norm_momentum}')
        if not (math.isfinite(norm_clip) and norm_clip >= 1):
            raise ValueError('FoWKALLoss: `norm_clip` must be a finite '
                             f'number >= 1 (e.g. 4.0), got {norm_clip}')
        for field, value in (('consistency_weight', consistency_weight),
                             ('boundary_weight', boundary_weight)):
            if not value >= 0:
                raise ValueError(
                    f'FoWKALLoss: `{field}` must be >= 0, got {value}')
        if parts is None:
            parts = parts_from_metainfo(metainfo)
        field = '`num_keypoints`'
        if num_keypoints is None:
            num_keypoints = getattr(building_head(), 'out_channels', None)
            field = "the head's `out_channels`"
        self.parts = _check_parts(parts, num_keypoints, field)
        unknown = sorted(set(dense_parts) - set(self.parts))
        if unknown:
            raise ValueError(
                f'FoWKALLoss: `dense_parts` {unknown} are not in `parts` '
                f'{list(self.parts)}')
        self.dense_parts = tuple(dense_parts)
        self.num_keypoints = sum(len(ids) for ids in self.parts.values())
        self.kaf_mode = kaf
        self.weighting = weighting
        self.gamma = gamma
        self.tau = tau
        self.support_floor = support_floor
        self.fwahr_threshold = 2.0**(-1.0 / gamma)
        self.part_average = part_average
        self.normalize = normalize
        self.norm_momentum = norm_momentum
        self.norm_clip = norm_clip
        self.consistency_weight = consistency_weight
        self.boundary_weight = boundary_weight
        self.awing = AdaptiveWingLoss()

        k = self.num_keypoints
        onehot = torch.zeros(len(self.parts), k)
        dense = torch.zeros(k)
        for p, (name, ids) in enumerate(self.parts.items()):
            onehot[p, ids] = 1.
            dense[ids] = float(name in self.dense_parts)
        part_share = onehot.t() @ (1 / onehot.sum(1))  # 1 / N_part per kpt
        # constants rebuilt from the config: not part of the state_dict
        self.register_buffer('part_onehot', onehot, persistent=False)
        self.register_buffer('part_share', part_share, persistent=False)
        self.register_buffer(
            'keypoint_share',
            part_share if part_average else torch.full((k, ), 1 / k),
            persistent=False)
        self.register_buffer('running_means', torch.zeros(2))
        if kaf == 'learned':
            init = self._initial_factors(lambda_init, dense)
            self.kaf_logits = nn.Parameter(torch.log(init / (1 - init)))
        else:
            self.register_buffer('fixed_factors', dense, persistent=False)

    def _initial_factors(self, lambda_init: Union[float, Dict[str, float]],
                         dense: Tensor) -> Tensor:
        """The initial lambda_k [K] from ``lambda_init``, checked."""
        if isinstance(lambda_init, dict):
            keys = set(lambda_init)
            if keys == {'dense', 'coarse'}:
                values = {
                    name: lambda_init['dense' if name in
                                      self.dense_parts else 'coarse']
                    for name in self.parts
                }
            elif keys == set(self.parts):
                values = lambda_init
            else:
                raise ValueError(
                    'FoWKALLoss: `lambda_init` as a dict needs the keys '
                    f"('dense', 'coarse') or every part {list(self.parts)}, "
                    f'got {sorted(keys)}')
        else:
            values = {name: lambda_init for name in self.parts}
        bad = {
            n: v
            for n, v in values.items()
            if isinstance(v, bool) or not isinstance(v, (int, float))
            or not 0 < v < 1
        }
        if bad:
            raise ValueError('FoWKALLoss: `lambda_init` values must lie in '
                             f'(0, 1) (exclusive), got {bad}')
        init = torch.empty_like(dense)
        for name, ids in self.parts.items():
            init[ids] = float(values[name])
        return init

    def keypoint_factors(self) -> Tensor:
        """The factors lambda_k, shape [K]: ``sigmoid(kaf_logits)`` when
        learned, else the heuristic's 0/1."""
        if self.kaf_mode == 'learned':
            return torch.sigmoid(self.kaf_logits)
        return self.fixed_factors

    def pixel_weights(self, output: Tensor,
                      target: Tensor) -> Optional[Tensor]:
        """The WAHR / FWAHR weights W [B, K, H, W] (``P^`` not detached,
        ``P`` constant), or ``None`` when ``weighting`` is ``None``."""
        if self.weighting is None:
            return None
        weight = wahr_weight(output, target, self.gamma, self.support_floor)
        if self.weighting == 'fwahr':
            # tau * P, with P 0 outside the Gaussian's support
            gt = target.detach().clamp(min=0)
            gt = torch.where(
                gaussian_support(gt, self.support_floor), gt,
                torch.zeros_like(gt))
            weight = torch.where(output >= self.fwahr_threshold, weight,
                                 self.tau * gt)
        return weight

    def awing_map(self, output: Tensor, target: Tensor) -> Tensor:
        """MMPose's AWing (``self.awing.criterion``'s maths and parameters),
        element-wise: same shape as ``output``.

        Written out rather than called element by element: with ``r =
        theta / epsilon`` and ``e = alpha - P``, the criterion's two powers
        of the constant base, ``r^e`` and ``r^(e - 1)``, are one ``exp(e ln
        r)`` and a division, and ``log(1 + x)`` is ``log1p``; only ``(delta /
        epsilon)^e`` stays a ``pow`` (an ``exp``/``log`` would have a NaN
        gradient at ``delta = 0``). Both compiled, forward + backward on this
        CPU: 1.18x ``KeypointMSELoss``'s time against 1.95x for ``vmap`` of the
        criterion (benchmarks/results_cpu.md, table 4); equal to it in value
        and gradient (tests)."""
        aw = self.awing
        r = aw.theta / aw.epsilon
        delta = (target - output).abs()
        e = aw.alpha - target
        r_e = torch.exp(e * math.log(r))
        a = aw.omega / (1 + r_e) * e * (r_e / r) / aw.epsilon
        c = aw.theta * a - aw.omega * torch.log1p(r_e)
        near = aw.omega * torch.log1p(torch.pow(delta / aw.epsilon, e))
        return torch.where(delta < aw.theta, near, a * delta - c)

    def keypoint_terms(
            self,
            output: Tensor,
            target: Tensor,
            target_weights: Optional[Tensor] = None,
            mask: Optional[Tensor] = None) -> Tuple[Tensor, Tensor, Tensor]:
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
        return (*fowkal_keypoint_terms(self, output, target, _mask), active)

    def _normalisers(self, awing: Tensor, mse: Tensor,
                     active: Tensor) -> Tensor:
        """(m_awing, m_mse), detached; updates the running means in
        training (once per call) from finite batch statistics clipped to
        ``norm_clip`` times the running means (at a term's first update:
        each keypoint's term clipped to ``norm_clip`` times the batch's
        median)."""
        terms = torch.stack([awing, mse]).detach()
        running = self.running_means
        if self.training and terms.numel():
            # this rank's median of the labelled keypoints' terms, per term
            median = terms.masked_fill(~active, math.nan).flatten(1)
            median = median.nanmedian(1).values
            first = (running == 0) & ~median.isnan()
            cap = torch.where(first, self.norm_clip * median, math.inf)
            terms = torch.minimum(terms, cap.view(2, 1, 1))
        stats = torch.cat([  # the two sums and the number of keypoints
            terms.sum((1, 2)),
            active.sum().to(terms.dtype).reshape(1)
        ])
        if self.training:
            all_reduce(stats)  # sum over DDP ranks (no-op otherwise)
        batch = stats[:2] / stats[2].clamp(min=1)
        if not self.training:
            return torch.where(running > 0, running, batch)
        # finite, bounded statistics only (see the class docstring)
        usable = batch.isfinite() & (stats[2] > 0)
        clipped = torch.minimum(batch, self.norm_clip * running)
        blended = (1 - self.norm_momentum) * running + \
            self.norm_momentum * clipped
        updated = torch.where(running > 0, blended, batch)
        self.running_means.copy_(torch.where(usable, updated, running))
        return self.running_means.clone()

    def sample_losses(self,
                      output: Tensor,
                      target: Tensor,
                      target_weights: Optional[Tensor] = None,
                      mask: Optional[Tensor] = None) -> Tensor:
        """The loss ``L`` of each sample, without ``loss_weight`` and
        ``L_reg``: shape [B], at least float32 (see :meth:`per_sample`)."""
        awing, mse, active = self.keypoint_terms(output, target,
                                                 target_weights, mask)
        if self.normalize:
            norm = self._normalisers(awing, mse, active)
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
        factors = torch.sigmoid(self.kaf_logits)
        part_mean = (self.part_onehot @ factors) / self.part_onehot.sum(1)
        deviation = factors - self.part_onehot.t() @ part_mean
        consistency = (deviation**2).sum()  # sum_part sum_k
        # -log(4 lambda (1 - lambda)), stable in theta
        boundary = -(F.logsigmoid(self.kaf_logits) +
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


@one_pass
def fowkal_keypoint_terms(loss: FoWKALLoss, output: Tensor, target: Tensor,
                          mask: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
    """``mean_HW(W * mask * AWing)`` and ``mean_HW(W * mask * (P^ - P)^2)``
    of :meth:`FoWKALLoss.keypoint_terms`, each [B, K] in at least float32,
    in one pass over the pixels (see :func:`one_pass`; :meth:`awing_map`
    is compiled into it too).
    ``mask`` is ``_get_mask``'s, or ``None``."""
    dtype = torch.promote_types(output.dtype, torch.float32)
    output, target = output.to(dtype), target.to(dtype)
    weight = loss.pixel_weights(output, target)
    if mask is not None:
        weight = mask if weight is None else weight * mask
    awing = loss.awing_map(output, target)
    mse = F.mse_loss(output, target, reduction='none')
    if weight is not None:
        awing, mse = awing * weight, mse * weight
    return awing.flatten(2).mean(-1), mse.flatten(2).mean(-1)
