"""AFL for SimCC and regression heads: the adapters of these families to the
one AFL mechanism of ``afl_loss.py`` (critic, topology, critic step, hook).
See ``docs/afl.md`` ("AFL on any head").

Each adapter yields the per-sample base loss and the predicted and
ground-truth keypoint coordinates with the keypoints that exist; the
topology is then :func:`coordinate_topology` of those, exactly as for
heatmaps. Coordinates are in input pixels of the ``(W, H)`` input frame
(heatmaps: heatmap pixels of the heatmap frame); the topology depends on
them only normalised by the frame, so the same pose has the same topology
in every family.
"""
from typing import Optional, Sequence, Tuple

import torch
from mmpose.registry import MODELS
from torch import Tensor, nn

from mmpose_afl.models.afl_critic import mean_keypoint_distance
from .afl_loss import AdversarialFocalLoss, KeypointSamples

EPS = 1e-12


def simcc_expected_coordinates(distributions: Tensor) -> Tuple[Tensor,
                                                               Tensor]:
    """The expected bin ``sum_i i p_i / sum_i p_i`` of each non-negative 1-D
    distribution, and whether it has any mass.

    Args:
        distributions (Tensor): [B, K, L], non-negative.

    Returns:
        tuple:
        - coords (Tensor): [B, K] expected bin index (0 where no mass).
        - present (Tensor): [B, K] bool, mass > 0.
    """
    p = distributions.float()
    mass = p.sum(dim=-1)
    present = mass > EPS
    bins = torch.arange(p.shape[-1], dtype=p.dtype, device=p.device)
    coords = (p * bins).sum(dim=-1) / torch.where(present, mass,
                                                  mass.new_ones(()))
    return torch.where(present, coords, coords.new_zeros(())), present


def _shape(tensor) -> str:
    return str(list(tensor.shape)) if isinstance(tensor, Tensor) else \
        repr(type(tensor).__name__)


class SimCCAdapter:
    """The SimCC family (``RTMCCHead``, ``RTMWHead``, ``SimCCHead`` with
    MMPose's ``KLDiscretLoss``): ``forward(pred_simcc, gt_simcc,
    keypoint_weights)`` as these heads call their loss.

    - Per-sample loss: ``KLDiscretLoss``'s own ``criterion`` (its ``beta``,
      ``label_softmax`` and ``label_beta``), keypoint weights and ``mask``
      / ``mask_weight``, summed over x and y and over the keypoints, over
      ``K``; the batch loss is the *sum* of these (``KLDiscretLoss`` sums
      over the batch), so AFL's reduction here is a sum.
    - Coordinates: the expected bin of each 1-D distribution as the loss
      sees it: ``softmax(beta * pred)`` for the prediction and the target
      distribution (``softmax(label_beta * gt)`` under ``label_softmax``,
      else the label normalised to sum 1) for the ground truth; divided by
      the head's ``simcc_split_ratio`` (read by :class:`AFLCriticHook`)
      they are input pixels of a ``(L_x, L_y) / ratio`` frame. The expected
      value rather than the argmax: it moves continuously with the logits,
      as a heatmap centroid does.
    - Error: the distance of the argmax bins (what the decoder uses) over
      the split ratio, in input pixels.
    """
    family = 'simcc'
    _nonfinite_what = 'SimCC logit or label'
    _critic_draws_from_global_rng = False  # see AdversarialFocalLoss
    simcc_split_ratio: float = 1.0

    def bind_head(self, head: nn.Module) -> None:
        super().bind_head(head)
        ratio = getattr(head, 'simcc_split_ratio', 1.0)
        self.simcc_split_ratio = float(ratio)

    def _check_inputs(self, pred_simcc: Sequence[Tensor],
                      gt_simcc: Sequence[Tensor],
                      target_weight: Optional[Tensor]) -> None:
        ok = (isinstance(pred_simcc, (tuple, list)) and len(pred_simcc) == 2
              and isinstance(gt_simcc, (tuple, list)) and len(gt_simcc) == 2
              and all(isinstance(t, Tensor) and t.dim() == 3
                      for t in (*pred_simcc, *gt_simcc)))
        if ok:
            (px, py), (gx, gy) = pred_simcc, gt_simcc
            ok = (px.shape == gx.shape and py.shape == gy.shape
                  and px.shape[:2] == py.shape[:2])
        if not ok:
            shapes = [[_shape(t) for t in x] if isinstance(
                x, (tuple, list)) else _shape(x)
                for x in (pred_simcc, gt_simcc)]
            raise ValueError(
                f'{self._name}: `pred_simcc` {shapes[0]} and `gt_simcc` '
                f'{shapes[1]} must be (x, y) pairs of SimCC vectors '
                '[B, K, W*ratio] and [B, K, H*ratio] of the same shapes '
                '(what RTMCCHead / RTMWHead pass); for heatmaps use '
                'AFLHeatmapLoss')
        batch, k = pred_simcc[0].shape[:2]
        if target_weight is not None and target_weight.shape != (batch, k):
            raise ValueError(
                f'{self._name}: `target_weight` {_shape(target_weight)} '
                f'must be [B, K] = {[batch, k]}')

    def per_sample_base_loss(self, pred_simcc: Sequence[Tensor],
                             gt_simcc: Sequence[Tensor],
                             target_weight: Optional[Tensor] = None
                             ) -> Tensor:
        """``KLDiscretLoss`` of each sample [B]; their sum is the batch
        loss (see the class docstring)."""
        self._check_inputs(pred_simcc, gt_simcc, target_weight)
        base = self.base_loss
        batch, k = pred_simcc[0].shape[:2]
        total = pred_simcc[0].new_zeros(batch, k)
        for pred, target in zip(pred_simcc, gt_simcc):
            terms = base.criterion(
                pred.reshape(-1, pred.size(-1)),
                target.reshape(-1, target.size(-1))).reshape(batch, k)
            if base.use_target_weight:
                terms = terms * target_weight.reshape(batch, k)
            if base.mask is not None:
                factor = terms.new_ones(k)
                factor[base.mask] = base.mask_weight
                terms = terms * factor
            total = total + terms
        return total.sum(dim=1) / k

    def _target_distribution(self, labels: Tensor) -> Tensor:
        base = self.base_loss
        if base.label_softmax:
            return torch.softmax(labels.float() * base.label_beta, dim=-1)
        return labels.float().clamp_min(0)

    def keypoint_samples(self, pred_simcc: Sequence[Tensor],
                         gt_simcc: Sequence[Tensor],
                         target_weight: Optional[Tensor] = None
                         ) -> KeypointSamples:
        """Per-sample losses, expected coordinates (input pixels) and
        argmax errors of a batch."""
        self._check_inputs(pred_simcc, gt_simcc, target_weight)
        (pred_x, pred_y), (gt_x, gt_y) = pred_simcc, gt_simcc
        batch, k = pred_x.shape[:2]
        self._before_forward(k, 'SimCC vectors')
        losses = self.per_sample_base_loss(pred_simcc, gt_simcc,
                                           target_weight)
        ratio = self.simcc_split_ratio
        labelled = torch.ones(batch, k, dtype=torch.bool,
                              device=pred_x.device) \
            if target_weight is None else target_weight > 0
        with torch.no_grad():
            beta = self.base_loss.beta
            pred, gt, present = [], [], labelled
            for logits, labels in ((pred_x, gt_x), (pred_y, gt_y)):
                coord, _ = simcc_expected_coordinates(
                    torch.softmax(logits.detach().float() * beta, dim=-1))
                pred.append(coord / ratio)
                coord, has_mass = simcc_expected_coordinates(
                    self._target_distribution(labels.detach()))
                gt.append(coord / ratio)
                present = present & has_mass
            pred, gt = torch.stack(pred, -1), torch.stack(gt, -1)
            peaks = [
                torch.stack([t.detach().argmax(-1) for t in pair], -1) / ratio
                for pair in (pred_simcc, gt_simcc)
            ]
            error, labels = mean_keypoint_distance(*peaks, labelled)
        size = (pred_x.shape[-1] / ratio, pred_y.shape[-1] / ratio)
        return KeypointSamples(losses, pred, labelled, gt, present, size,
                               error, labels, (pred_x, pred_y, gt_x, gt_y))

    def forward(self, pred_simcc: Sequence[Tensor],
                gt_simcc: Sequence[Tensor],
                target_weight: Optional[Tensor] = None) -> Tensor:
        """Forward function of loss.

        Args:
            pred_simcc (Tuple[Tensor, Tensor]): Predicted SimCC vectors of
                the x- and y-axis, [B, K, W * ratio] and [B, K, H * ratio].
            gt_simcc (Tuple[Tensor, Tensor]): Target representations, same
                shapes.
            target_weight (Tensor, optional): Keypoint weights [B, K];
                weight 0 also marks a missing keypoint for the topology.
                Defaults to ``None``

        Returns:
            Tensor: The calculated loss.
        """
        return self._reweight(
            self.keypoint_samples(pred_simcc, gt_simcc, target_weight),
            'sum')


class RegressionAdapter:
    """The regression family: ``RLEHead`` with ``RLELoss``
    (``forward(pred, sigma, target, target_weight)``) and ``RegressionHead``
    with ``SmoothL1Loss`` (``forward(pred, target, target_weight)``), as
    these heads call their loss.

    - Per-sample loss: the stock loss on each sample as a batch of one,
      vectorised with ``torch.func.vmap`` (``RLELoss`` averages over the
      batch with ``size_average``, else sums; ``SmoothL1Loss`` averages),
      so with equal weights AFL is the stock loss exactly.
    - Coordinates: the predicted and target coordinates, normalised to
      [0, 1] of the input by MMPose's ``RegressionLabel``, times the input
      size ``(W, H)``: input pixels of the input frame. The input size is
      read from the head's decoder by :class:`AFLCriticHook` (or given as
      ``input_size``).
    - Error: the mean keypoint distance in input pixels.
    """
    family = 'regression'
    _nonfinite_what = 'coordinate'
    _critic_draws_from_global_rng = False  # see AdversarialFocalLoss
    input_size: Optional[Tuple[int, int]] = None

    def _init_adapter(self, input_size: Optional[Sequence[int]]) -> None:
        if input_size is not None and not (
                isinstance(input_size, (tuple, list)) and len(input_size) == 2
                and all(isinstance(v, (int, float)) and v > 0
                        for v in input_size)):
            raise ValueError(
                f'{self._name}: `input_size` must be None (read from the '
                "head's decoder) or the model input (W, H), e.g. (192, "
                f'256); got {input_size!r}')
        self.input_size = None if input_size is None else tuple(input_size)

    @property
    def _with_sigma(self) -> bool:
        return any(c.__name__ == 'RLELoss'
                   for c in type(self.base_loss).__mro__)

    @property
    def _reduction(self) -> str:
        if self._with_sigma and not self.base_loss.size_average:
            return 'sum'
        return 'mean'

    def bind_head(self, head: nn.Module) -> None:
        super().bind_head(head)
        head_names = {c.__name__ for c in type(head).__mro__}
        base_name = type(self.base_loss).__name__
        if self._with_sigma != ('RLEHead' in head_names):
            raise ValueError(
                f'{self._name}: `base_loss` {base_name} does not fit '
                f'{type(head).__name__}: RLELoss is the loss of RLEHead '
                '(which predicts sigma), SmoothL1Loss that of '
                'RegressionHead')
        decoder_size = getattr(getattr(head, 'decoder', None), 'input_size',
                               None)
        if decoder_size is None and self.input_size is None:
            raise ValueError(
                f'{self._name}: the input size is unknown: give the head '
                f'({type(head).__name__}) a `decoder` (RegressionLabel with '
                '`input_size`) or the loss an `input_size`')
        if decoder_size is not None:
            decoder_size = tuple(decoder_size)
            if self.input_size is not None and \
                    tuple(self.input_size) != decoder_size:
                raise ValueError(
                    f'{self._name}: `input_size` {tuple(self.input_size)} '
                    f"differs from the head's decoder.input_size "
                    f'{decoder_size}')
            self.input_size = decoder_size

    def _split(self, inputs: Sequence) -> Tuple[Tensor, Optional[Tensor],
                                                 Tensor, Optional[Tensor]]:
        """(pred, sigma or None, target, target_weight or None)."""
        count = 4 if self._with_sigma else 3
        if not 2 + self._with_sigma <= len(inputs) <= count:
            raise ValueError(
                f'{self._name}: {type(self.base_loss).__name__} takes '
                + ('(pred, sigma, target, target_weight)' if self._with_sigma
                   else '(output, target, target_weight)') +
                f', got {len(inputs)} arguments')
        inputs = list(inputs) + [None] * (count - len(inputs))
        if self._with_sigma:
            pred, sigma, target, weight = inputs
        else:
            (pred, target, weight), sigma = inputs, None
        shapes = {'pred': pred, 'target': target, 'sigma': sigma}
        bad = not all(isinstance(t, Tensor) and t.dim() == 3
                      and t.shape[-1] == 2 and t.shape == pred.shape
                      for t in shapes.values() if t is not None) or (
                          not isinstance(pred, Tensor))
        if bad:
            raise ValueError(
                f'{self._name}: ' + ', '.join(
                    f'`{n}` {_shape(t)}' for n, t in shapes.items()
                    if t is not None) + ' must be coordinates [B, K, 2] of '
                'the same shape (what RLEHead / RegressionHead pass); for '
                'heatmaps use AFLHeatmapLoss, for SimCC AFLSimCCLoss')
        batch, k = pred.shape[:2]
        if weight is not None and weight.shape not in ((batch, k),
                                                       (batch, k, 1),
                                                       (batch, k, 2)):
            raise ValueError(
                f'{self._name}: `target_weight` {_shape(weight)} must be '
                f'[B, K, 1] = {[batch, k, 1]} or [B, K]')
        return pred, sigma, target, weight

    def per_sample_base_loss(self, *inputs: Tensor) -> Tensor:
        """The stock loss of each sample [B], arguments as in
        :meth:`forward`; their mean (``sum`` for ``RLELoss`` with
        ``size_average=False``) is the batch loss."""
        self._split(inputs)
        return self._per_sample_by_vmap(inputs, {})

    def keypoint_samples(self, *inputs: Tensor) -> KeypointSamples:
        """Per-sample losses, coordinates (input pixels) and errors of a
        batch."""
        pred, sigma, target, weight = self._split(inputs)
        batch, k = pred.shape[:2]
        self._before_forward(k, 'coordinates')
        if self.input_size is None:
            raise ValueError(
                f'{self._name}: the input size is unknown: AFLCriticHook '
                "reads it from the head's decoder before training; give "
                '`input_size` to use the loss without the hook')
        losses = self.per_sample_base_loss(*inputs) if batch else \
            pred.flatten(1).sum(1)
        labelled = torch.ones(batch, k, dtype=torch.bool,
                              device=pred.device) if weight is None else \
            (weight.reshape(batch, k, -1) > 0).all(-1)
        scale = pred.new_tensor(self.input_size, dtype=torch.float32)
        with torch.no_grad():
            pred_px = pred.detach().float() * scale
            gt_px = target.detach().float() * scale
            error, labels = mean_keypoint_distance(pred_px, gt_px, labelled)
        raw = (pred, target) if sigma is None else (pred, sigma, target)
        return KeypointSamples(losses, pred_px, labelled, gt_px, labelled,
                               tuple(self.input_size), error, labels, raw)

    def forward(self, *inputs: Tensor) -> Tensor:
        """Forward function of loss, called as the head calls its stock
        loss.

        Args:
            *inputs (Tensor): ``(pred, sigma, target, target_weight)`` for
                ``RLELoss`` (``RLEHead``), ``(output, target,
                target_weight)`` for ``SmoothL1Loss`` (``RegressionHead``):
                coordinates [B, K, 2] normalised to the input, sigma [B, K,
                2], weights [B, K, 1]; weight 0 also marks a missing
                keypoint for the topology.

        Returns:
            Tensor: The calculated loss.
        """
        return self._reweight(self.keypoint_samples(*inputs),
                              self._reduction)


_AFL_ARGS = """
    Args:
        base_loss (dict): Config of the wrapped stock loss{base}.
        critic (dict): Config of the critic; its ``num_keypoints`` must be
            the head's K. Defaults to
            ``dict(type='AFLCritic', num_keypoints=17)``
        critic_optimizer (dict): Config of the critic's optimizer.
            Defaults to ``dict(type='Adam', lr=1e-4, betas=(0.5, 0.9))``
        gp_weight (float): λ of the gradient penalty; must be > 0.
            Defaults to 10.0
        drift_weight (float): ε of the drift penalty; >= 0, 0 is the
            paper. Defaults to 1.0
        difficulty (str): ``'anchored'`` or ``'paper'`` (Eq. 4).
            Defaults to ``'anchored'``
        normalize_weights (bool): Divide the weights by their batch mean.
            Defaults to ``True``
        label_count_norm (bool): Scale each sample's topologies by
            ``K / n_b``. Defaults to ``False``
        n_critic (int): Critic updates per training iteration; >= 1.
            Defaults to 1{extra}
        loss_weight (float): Weight of the loss. Defaults to 1.0
"""


@MODELS.register_module()
class AFLSimCCLoss(SimCCAdapter, AdversarialFocalLoss):
    __doc__ = """Adversarial Focal Loss wrapping a SimCC loss
    (``KLDiscretLoss`` of ``RTMCCHead`` / ``RTMWHead``): AFL
    (:class:`AdversarialFocalLoss`) on the topology of the expected SimCC
    coordinates (:class:`SimCCAdapter`). See ``docs/afl.md``.
    """ + _AFL_ARGS.format(
        base=". Defaults to ``dict(type='KLDiscretLoss', "
        "use_target_weight=True, beta=10., label_softmax=True)`` "
        "(RTMPose's)", extra='')

    def __init__(self,
                 base_loss: dict = dict(
                     type='KLDiscretLoss',
                     use_target_weight=True,
                     beta=10.,
                     label_softmax=True),
                 critic: dict = dict(type='AFLCritic', num_keypoints=17),
                 critic_optimizer: dict = dict(
                     type='Adam', lr=1e-4, betas=(0.5, 0.9)),
                 gp_weight: float = 10.,
                 drift_weight: float = 1.,
                 difficulty: str = 'anchored',
                 normalize_weights: bool = True,
                 label_count_norm: bool = False,
                 n_critic: int = 1,
                 loss_weight: float = 1.) -> None:
        AdversarialFocalLoss.__init__(
            self, base_loss, critic, critic_optimizer, gp_weight,
            drift_weight, difficulty, normalize_weights, label_count_norm,
            n_critic, loss_weight)


@MODELS.register_module()
class AFLRegressionLoss(RegressionAdapter, AdversarialFocalLoss):
    __doc__ = """Adversarial Focal Loss wrapping a regression loss
    (``RLELoss`` of ``RLEHead``, ``SmoothL1Loss`` of ``RegressionHead``):
    AFL (:class:`AdversarialFocalLoss`) on the topology of the regressed
    coordinates (:class:`RegressionAdapter`). See ``docs/afl.md``.
    """ + _AFL_ARGS.format(
        base=". Defaults to ``dict(type='RLELoss', use_target_weight=True)``",
        extra="""
        input_size (tuple, optional): The model input ``(W, H)``;
            ``None`` reads it from the head's decoder (what
            :class:`AFLCriticHook` does before training).
            Defaults to ``None``""")

    def __init__(self,
                 base_loss: dict = dict(type='RLELoss',
                                        use_target_weight=True),
                 critic: dict = dict(type='AFLCritic', num_keypoints=17),
                 critic_optimizer: dict = dict(
                     type='Adam', lr=1e-4, betas=(0.5, 0.9)),
                 gp_weight: float = 10.,
                 drift_weight: float = 1.,
                 difficulty: str = 'anchored',
                 normalize_weights: bool = True,
                 label_count_norm: bool = False,
                 n_critic: int = 1,
                 input_size: Optional[Sequence[int]] = None,
                 loss_weight: float = 1.) -> None:
        AdversarialFocalLoss.__init__(
            self, base_loss, critic, critic_optimizer, gp_weight,
            drift_weight, difficulty, normalize_weights, label_count_norm,
            n_critic, loss_weight)
        self._init_adapter(input_size)


__all__ = [
    'AFLSimCCLoss', 'AFLRegressionLoss', 'SimCCAdapter', 'RegressionAdapter',
    'simcc_expected_coordinates'
]
