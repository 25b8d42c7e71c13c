"""Keypoint-wise Adaptive Loss (KAL) with Foreground-Weight Adaptive Heatmap
Regression (FWAHR) -- FoWKAL (Seong, Lee and Lee, "Keypoint-wise Adaptive
Loss for Whole-Body Human Pose Estimation") -- and the pieces of its
ablation: the heuristic loss, KAL alone, WAHR or FWAHR weighting."""
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

    With ``P`` the ground-truth heatmap and ``P^`` the prediction (SPEC.md's
    reading of the paper's notation), per pixel of keypoint ``k`` (the
    paper's L_WAdaptive)::

        l_k = W * [lambda_k AWing(P^, P) / m_awing
                   + (1 - lambda_k) (P^ - P)^2 / m_mse]

    and per sample ``L = sum_part 1/N_part sum_{k in part} mean_HW(l_k)``
    (``part_average=True``, the paper's sum; else ``1/K sum_k``).
    ``forward`` returns ``mean_batch(L) * loss_weight + L_reg``.

    Ablation rows of the paper (Table 2 / 3) as options:

    - heuristic loss (c): ``kaf='heuristic', weighting=None,
      normalize=False`` (lambda = 1, i.e. AWing, on ``dense_parts``;
      lambda = 0, i.e. MSE, elsewhere)
    - KAL (d): ``kaf='learned', weighting=None``
    - heuristic + FWAHR (e) / + WAHR: ``kaf='heuristic',
      weighting='fwahr'`` / ``'wahr'``, ``normalize=False``
    - FoWKAL (f, the default): ``kaf='learned', weighting='fwahr'``;
      KAL + WAHR: ``weighting='wahr'``

    **The heuristic rows** are the paper's ``L_heuristic = lambda_fh L_bf +
    lambda_bf L_fh``: a plain AWing term on the dense parts plus a plain MSE
    term on the coarse ones. The paper gives no values for its two weights
    and no normalisation; decision: both 1 (``loss_weight`` scales the
    sum), so the configs of (c), (e) and heuristic + WAHR set
    ``normalize=False`` and the loss is ``sum_part mean_{k in part}``
    of AWing (dense) or MSE (coarse), i.e. KAL's formula with fixed 0/1
    factors and no ``L_reg``: rows (c) and (d) differ only in the factors.
    (``normalize=True``, the class default, divides the two terms by their
    running means, a re-weighting the paper's heuristic does not have.)

    **AWing** is MMPose's :class:`AdaptiveWingLoss` (alpha 2.1, omega 14,
    epsilon 1, theta 0.5, the paper's): its ``criterion``'s maths and
    parameters, written out element-wise (:meth:`awing_map`; tested equal
    in value and gradient). Everything is computed in at least float32
    (under ``--amp`` the head's output is fp16).

    **Pixel weights** ``W`` (1 when ``weighting=None``; ``P`` is a constant,
    ``P^`` is not detached, as in WAHR's official code)::

        WAHR:  W = P^g |1 - P^| + |P^| (1 - P^g)
        FWAHR: W = the WAHR weight  where P^ >= 2^(-1/g),  else  tau * P

    where ``P`` (so also ``P^g``) is taken as 0 outside the Gaussian's
    support, ``P < support_floor`` (:func:`gaussian_support`). Decision:
    the paper assumes targets that are exactly 0 on the background, as
    MMPose's standard (``MSRAHeatmap``) and UDP encoders give; the DARK
    encoder (``MSRAHeatmap(unbiased=True)``, which the paper's
    HRNet-w32 + DARK recipe uses) never cuts its Gaussian off, and with
    ``gamma = 0.01`` even a tiny ``P`` has ``P^g`` near 1 (``1e-20^0.01 =
    0.63``), so the background got a weight near ``|1 - P^|`` instead of
    ``|P^|``: on the synthetic WholeBody demo's DARK targets (32x24,
    sigma 2) 95 % of the labelled keypoints' pixels had ``P^g >= 1/2``,
    and the background's mean FWAHR weight at ``P^ = 0.02`` was 0.75
    (with the floor: 13 %, the 3-sigma disc, and 0.02;
    ``benchmarks/fowkal_dark_support.py``). With the default floor
    ``exp(-4.5)``
    (:data:`GAUSSIAN_SUPPORT_FLOOR`, the value 3 sigma from the centre) the
    support is the 3-sigma disc under all three encoders (the standard
    encoder centres it on the rounded keypoint, and its patch's corners,
    down to ``exp(-9)``, become background), so the weights are the same
    under each. FWAHR's ``tau * P`` branch uses the same ``P``: a negative
    prediction outside the support then weighs 0 under every encoder, as it
    did under the standard one (without the floor, DARK's tail adds weights
    up to ``tau exp(-4.5)`` = 0.011 there); inside the support nothing
    changes. ``support_floor=0`` gives the old ``P > 0``. The regression
    target itself is not changed: DARK's tail values stay in the AWing and
    MSE terms.

    ``P^ >= 2^(-1/g)`` is ``P^^g >= 1/2``; with the default ``gamma=0.01``
    the threshold is 2^-100 ~ 7.9e-31, so in practice FWAHR is WAHR where
    the prediction is positive and ``tau * P`` where it is <= 0: negative
    predictions on the background (``P = 0``) are not penalised, and on the
    Gaussian only in proportion to ``P``. ``tau`` is not given by the paper.
    Decision: ``tau = 1``. At ``P^ -> 0+`` the WAHR branch gives
    ``W = P^g``, and ``tau * P <= P^g`` for every ``P`` in [0, 1] exactly
    when ``tau <= 1``, with equality at the peak ``P = 1`` only for
    ``tau = 1``. So ``tau = 1`` is the one value for which the weight is
    continuous at the keypoint's peak and the second branch never weights a
    pixel more than WAHR would at the switch: it only down-weights the
    tails, the paper's "focus on the foreground".

    **Keypoint-wise adaptive factors** (KAF) ``lambda_k = sigmoid(theta_k)``
    with ``theta`` (``kaf_logits``, shape [K]) a parameter of this loss:
    the loss is a submodule of the head, so the pose optimiser trains it
    (with the optimiser's lr and weight decay; ``paramwise_cfg`` with
    ``custom_keys={'kaf_logits': ...}`` changes them), it is in the model's
    ``state_dict`` (checkpointed, restored on ``--resume``) and DDP averages
    its gradient like any other parameter, so it stays identical on all
    ranks. It enters every loss value, so DDP with
    ``find_unused_parameters=False`` works. Initialised from
    ``lambda_init`` (default: the heuristic softened, 0.8 on dense parts,
    0.2 on coarse ones).

    **Normalisation.** AWing is one to two orders of magnitude larger than
    MSE on the same heatmaps, so raw factors would just drift to the MSE
    side. With ``normalize=True`` each term is divided by a running mean of
    its own per-keypoint value (mean over the keypoints with a non-zero
    weight in the batch, detached, updated in training like BatchNorm's
    statistics with ``norm_momentum``; buffer ``running_means`` =
    (AWing, MSE), checkpointed). Both terms then average ~1 and
    ``lambda_k`` moves towards the term that is relatively smaller *for
    keypoint k*; the backbone also sees the two terms at comparable scale
    (for the heuristic this plays the role of the paper's two weights of
    L_bf and L_fh, which it does not give). Under DDP the batch sums are
    all-reduced before the update, so the buffer is identical on every rank.

    The running means are updated only from finite, bounded batch
    statistics: a term whose batch statistic is not finite leaves its
    running mean as it is, and a batch statistic above ``norm_clip`` times
    the running mean counts as ``norm_clip`` times it. Reason: one ±inf
    pixel (what an fp16 overflow under ``--amp`` produces), or one pixel
    above ~1e13 whose square overflows float32, made the running means inf;
    every later term was then divided by inf, the heatmap gradient was
    exactly 0 for the rest of training and the loss on screen (``L_reg``)
    looked finite. A single outlier pixel of 100 lifted the MSE running
    mean ~60000x, cutting the gradient to 0.14 % for ~1,000 iterations.
    With the clip, one bad batch moves a running mean by at most a factor
    ``1 + norm_momentum * (norm_clip - 1)`` (1.03 at the defaults), while
    a loss that falls is followed as before (a statistic below the running
    mean is never clipped). A term's first update, having no running mean
    to compare with, clips each keypoint's term at ``norm_clip`` times the
    (lower) median of the batch's labelled keypoints' terms before the
    mean (on each rank before the all-reduce, so ranks still agree): one
    outlier pixel in the very first batch, which used to set the scale
    unclipped (a pixel of 100 then took ~1,000 iterations at momentum 0.01
    to be forgotten), can lift the first running mean to at most
    ``norm_clip`` times the median (an infinite keypoint term is capped
    the same way; a NaN one still makes the statistic non-finite, and the
    update is skipped).

    **L_reg** (paper: "relationships between body parts"; its form is not
    given). Decision, with ``sum_p`` / ``mean_p`` the sum / mean over the
    keypoints of part p::

        L_reg = consistency_weight * sum_part sum_p (lambda_k - mean_p)^2
          + boundary_weight * sum_part mean_p -log(4 lambda_k (1 - lambda_k))

    (``mean_p`` alone: the part's mean factor.)

    The first term is SPEC.md's within-part consistency term
    ``sum_part sum_k (lambda_k - mean_part lambda)^2`` as written: it pulls
    the factors of a part together with a force per factor,
    ``2 (lambda_k - mean_p lambda)``, that does not depend on the part's
    size, while the data term's pull on ``lambda_k`` carries the factor
    ``1 / N_part``. So the larger the part, the more its factors move
    together: where the two balance, a factor's deviation from its part's
    mean is about ``d_k / (2 consistency_weight N_part)`` (``d_k`` its
    normalised AWing-minus-MSE difference from the part's average), e.g.
    68x tighter on the face than a per-part mean would hold it (what this
    class did before; lower ``consistency_weight`` for freer factors). The
    second term (not in SPEC.md: "whatever keeps lambda off the
    boundaries") is 0 at lambda = 1/2 and grows without bound at 0 and 1,
    so no factor saturates (its gradient in theta is ``2 lambda - 1``,
    bounded, while the data term's gradient ``lambda (1 - lambda) (...)``
    vanishes at the boundaries; the two balance inside (0, 1)). It is a
    per-part mean, at the data term's ``1 / N_part`` scale, so where the
    boundary and the data term balance does not depend on the part's size.
    ``L_reg`` does not depend on the samples: it is added once, not
    multiplied by ``loss_weight`` (0 for the heuristic).

    **Keypoint weights** follow :class:`KeypointMSELoss` (whose mask
    handling this class reuses): ``target_weights`` ([B, K] or [B, K, H, W])
    and ``mask`` multiply the per-pixel loss whenever given, whatever
    ``use_target_weight`` says (kept for config compatibility). For 0/1
    weights this equals :class:`AdaptiveWingLoss`'s own convention
    (multiplying prediction and target by the weight).

    **Unlabelled keypoints count in** ``N_part``: ``N_part`` is the number
    of keypoints of the part, the same for every sample, and an unlabelled
    (weight 0) keypoint adds 0 to its part's sum. Decision: the paper
    writes ``N_part`` without a sample index, and its baseline rows (a) and
    (b) (MMPose's :class:`KeypointMSELoss` and :class:`AdaptiveWingLoss`)
    average over all keypoints, labelled or not, so every row gives a
    labelled keypoint the same weight in every sample. Dividing by the
    labelled count instead would make a keypoint's weight depend on what
    else is labelled: the one visible keypoint of a truncated hand would
    weigh 21x a keypoint of a fully labelled hand, so the rarest, often
    hardest-to-see labels would dominate. The cost: a part labelled in few
    samples (the hands in COCO-WholeBody) contributes in proportion to how
    often it is labelled, as under the baseline rows.

    **Use inside another loss** (e.g. ``AFLHeatmapLoss``):
    :meth:`per_sample` returns the per-sample ``L`` [B] *without*
    ``loss_weight`` and without ``L_reg``; :meth:`regularization` returns
    ``L_reg``. ``forward`` is exactly
    ``per_sample(...).mean() * loss_weight + regularization()``; a wrapper
    that re-weights samples should add ``regularization()`` once per step
    in the same way. Each training-mode call of :meth:`per_sample` updates
    the running means once. For an empty batch the data term is 0 and
    ``L_reg`` is still added (it does not depend on the samples, and DDP
    ranks then agree on its gradient); inputs of the wrong shape raise a
    ``ValueError`` naming the shapes (see :class:`PerSampleHeatmapLoss`).

    **Logging.** In training, each :meth:`per_sample` call of a loss with
    learned factors writes the mean factor of every part to MMEngine's
    message hub as ``train/kaf_<part>``, which the logger hook prints with
    the losses (``kaf_body: 0.2001 ...``) and writes to the scalar files.
    The per-keypoint values are ``sigmoid(kaf_logits)`` of a checkpoint;
    ``tools/draw_kaf.py`` draws them on the skeleton.

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
        consistency = (deviation**2).sum()  # SPEC.md's sum_part sum_k
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
