"""Adversarial Focal Loss (AFL): any keypoint loss, re-weighted per sample by
how far a WGAN-GP critic finds the predicted keypoint topology from the
ground truth's (Eq. 4 and Alg. 2 of the AFL paper), with a range-controlled
critic and an anchored difficulty by default. See ``docs/afl.md``.

Design: one mechanism, a small adapter per head family.

- :class:`ReweightedLoss` is what every per-sample re-weighting shares, with
  the source of the difficulty left open: the base loss of each sample
  (:meth:`~ReweightedLoss.per_sample_base_loss`), the detached difficulty
  made finite (:func:`finite_difficulty`) and, optionally, normalised to
  mean 1 over the batch (:func:`normalized_weights`), the reduction with
  the base loss's own batch normalisation (``mean`` or ``sum``) and the
  per-sample records of the last training batch (:attr:`last_samples`).
  A subclass implements :meth:`~ReweightedLoss.sample_difficulty`.
- :class:`AdversarialFocalLoss` is that difficulty from a critic: the
  topology of predicted and ground-truth coordinates
  (:func:`coordinate_topology`, one function for every family), scored by
  :meth:`~AdversarialFocalLoss._score` (the one place a critic is called
  for the difficulty) and trained by
  :meth:`~AdversarialFocalLoss._train_critic` (the one place it learns),
  with the non-finite guards, DDP averaging and logged statistics of
  :meth:`~AdversarialFocalLoss.critic_step`. A conditional critic changes
  these two methods only.
- An adapter (a mixin with the head's ``forward`` signature) turns a head
  family's inputs into :class:`KeypointSamples`: per-sample base losses
  ``[B]``, predicted and ground-truth coordinates ``[B, K, 2]`` with the
  keypoints that exist, the frame ``(W, H)`` they lie in and the
  prediction's error. Heatmaps: :class:`AFLHeatmapLoss` (here); SimCC and
  regression heads: ``afl_heads.py``. Coordinates are in the frame of
  their family (heatmap pixels, SimCC bins, input pixels), and the
  topology only depends on them normalised by the frame, so the same pose
  has the same topology whatever the head.
"""
import inspect
import math
import warnings
from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from mmengine.dist import all_reduce, get_world_size
from mmpose.models.losses import KeypointMSELoss
from mmpose.registry import MODELS, OPTIMIZERS
from torch import Tensor, nn
from torch.utils._pytree import tree_flatten, tree_map

from mmpose_afl.evaluation.sample_oks import sample_offsets
from mmpose_afl.models.afl_critic import (coordinate_topology,
                                          keypoint_centroids,
                                          keypoint_peak_error)
from .per_sample_loss import check_heatmap_shapes, mse_sample_losses

DIFFICULTIES = ('anchored', 'paper')
# the head families and the stock MMPose classes of each, by name (so that
# importing this module does not import every head)
HEAD_FAMILIES = {
    'heatmap': ('HeatmapHead', 'CPMHead', 'MSPNHead', 'ViPNASHead',
                'SAHRHead', 'SigmoidHeatmapHead'),
    'simcc': ('RTMCCHead', 'RTMWHead', 'SimCCHead'),
    'regression': ('RegressionHead', 'RLEHead', 'IntegralRegressionHead',
                   'DSNTHead'),
}
BASE_LOSS_FAMILIES = {
    'simcc': ('KLDiscretLoss', ),
    'regression': ('RLELoss', 'SmoothL1Loss'),
}
AFL_LOSSES = {
    'heatmap': 'AFLHeatmapLoss',
    'simcc': 'AFLSimCCLoss',
    'regression': 'AFLRegressionLoss'
}


def head_family(head: nn.Module) -> Optional[str]:
    """The family (``'heatmap'``, ``'simcc'`` or ``'regression'``) of a
    head, from its class and its bases; ``None`` when unknown."""
    names = {cls.__name__ for cls in type(head).__mro__}
    for family, heads in HEAD_FAMILIES.items():
        if names & set(heads):
            return family
    return None


def base_loss_family(loss_cls: type) -> Optional[str]:
    """The family of a stock MMPose loss of a SimCC or regression head, or
    ``None`` (any other loss: a heatmap loss as far as AFL knows)."""
    names = {cls.__name__ for cls in loss_cls.__mro__}
    for family, losses in BASE_LOSS_FAMILIES.items():
        if names & set(losses):
            return family
    return None


def gradient_norms(critic: nn.Module, real: Tensor, fake: Tensor,
                   alpha: Tensor) -> Tensor:
    """Per-sample norms ``||grad_x d(x_b)||_2`` at
    ``x = alpha * real + (1 - alpha) * fake``; the WGAN-GP penalty is
    ``mean_b (norm_b - 1)^2``.

    Args:
        critic (nn.Module): Maps [B, ...] to [B] scores.
        real (Tensor): Ground-truth topology maps [B, 2, K, K].
        fake (Tensor): Predicted topology maps, same shape.
        alpha (Tensor): Mixing factors [B], one per sample.

    Returns:
        Tensor: The norms [B], differentiable w.r.t. the critic.
    """
    alpha = alpha.view(-1, *([1] * (real.dim() - 1)))
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(
        critic(mixed).sum(), mixed, create_graph=True)
    return grad.flatten(1).norm(dim=1)


def finite_difficulty(difficulty: Tensor) -> Tensor:
    """``difficulty`` [B] with each non-finite value (a sample whose
    topology or score is not finite) replaced by the mean of the finite
    ones, or by 1 when none is finite: such a sample counts as of average
    difficulty, neither up- nor down-weighted, and never makes the weights
    of the batch NaN.

    Args:
        difficulty (Tensor): Per-sample difficulties [B].

    Returns:
        Tensor: Finite difficulties [B].
    """
    finite = difficulty.isfinite()
    mean = torch.where(finite, difficulty, 0).sum() / finite.sum()
    fill = torch.where(finite.any(), mean, torch.ones_like(mean))
    return torch.where(finite, difficulty, fill)


def normalized_weights(difficulty: Tensor) -> Tensor:
    """``difficulty / mean(difficulty)``: weights of mean 1, so that the
    re-weighting moves weight between the samples of a batch but leaves
    the loss scale alone; all-zero difficulties (or an empty batch) give
    equal weights 1, never NaN.

    Args:
        difficulty (Tensor): Finite, non-negative difficulties [B].

    Returns:
        Tensor: The weights [B].
    """
    mean = difficulty.mean()
    return torch.where(mean > 0, difficulty / mean,
                       torch.ones_like(difficulty))


def effective_sample_size(weights: Tensor) -> Tensor:
    """Kish's effective sample size of per-sample weights as a fraction of
    the batch, ``(sum w)^2 / (B sum w^2)``: 1 for equal weights, 1/B when
    one sample has all the weight; 0 when all weights are 0 or the batch is
    empty. Computed in float64, so tiny weights do not underflow.

    Args:
        weights (Tensor): Non-negative weights [B].

    Returns:
        Tensor: A float64 scalar in [0, 1].
    """
    weights = weights.double()
    squares = weights.pow(2).sum()
    return torch.where(squares > 0,
                       weights.sum()**2 / (weights.numel() * squares),
                       squares.new_zeros(()))


@dataclass
class KeypointSamples:
    """What an adapter makes of one batch of a head's loss inputs.

    Args:
        losses (Tensor): Per-sample base losses [B], with the base loss's
            ``loss_weight``; differentiable.
        pred (Tensor): Predicted coordinates [B, K, 2] (x, y), detached, in
            the units of ``size``.
        pred_present (Tensor): [B, K] bool, the predicted keypoints that
            exist.
        gt (Tensor): Ground-truth coordinates [B, K, 2], same units.
        gt_present (Tensor): [B, K] bool.
        size (tuple): ``(W, H)`` of the frame the coordinates lie in.
        error (Tensor): [B] the prediction's mean keypoint error over the
            labelled keypoints, in the adapter's units (independent of any
            difficulty).
        labels (Tensor): [B] number of labelled keypoints (int64).
        raw (tuple): The head's tensors whose non-finite values (per
            sample) keep a batch from the critic.
    """
    losses: Tensor
    pred: Tensor
    pred_present: Tensor
    gt: Tensor
    gt_present: Tensor
    size: Tuple[float, float]
    error: Tensor
    labels: Tensor
    raw: Tuple[Tensor, ...]


class ReweightedLoss(nn.Module):
    """A base loss computed per sample and re-weighted by a detached
    per-sample difficulty::

        w_b  = difficulty_b / mean_b'(difficulty_b')   normalize_weights
               difficulty_b                            otherwise
        loss = loss_weight * reduce_b(stopgrad(w_b) * L_b)

    with ``L_b`` the base loss of sample ``b`` and ``reduce`` the base
    loss's own batch reduction (``mean`` for MMPose's heatmap losses, sum
    for ``KLDiscretLoss``), so that with equal weights the loss is the base
    loss exactly. A non-finite difficulty counts as the batch's mean
    (:func:`finite_difficulty`). A base loss with a ``regularization()``
    method has it added once, weighted neither by difficulty nor by
    ``loss_weight`` (as the base loss itself adds it).

    A subclass combines an adapter (``keypoint_samples``, ``forward``,
    ``per_sample_base_loss``, ``family``) with a difficulty source
    (:meth:`sample_difficulty`).

    Args:
        base_loss (dict): Config of the wrapped registered loss.
        normalize_weights (bool): Divide the weights by their batch mean.
            Defaults to ``True``
        loss_weight (float): Weight of the loss. Defaults to 1.0
    """
    family = 'heatmap'
    # what each head family calls the head's keypoint count
    _head_k_field = dict(heatmap='out_channels', simcc='out_channels',
                         regression='num_joints')

    def __init__(self,
                 base_loss: dict,
                 normalize_weights: bool = True,
                 loss_weight: float = 1.) -> None:
        super().__init__()
        self._check_base_loss_config(base_loss)
        if not isinstance(normalize_weights, bool):
            raise ValueError(f'{self._name}: `normalize_weights` must be '
                             f'True or False, got {normalize_weights!r}')
        self.base_loss = MODELS.build(base_loss)
        self.normalize_weights = normalize_weights
        self.loss_weight = loss_weight
        self._pending: Optional[Dict[str, Tensor]] = None
        self._use_loop = False

    @property
    def _name(self) -> str:
        return type(self).__name__

    # ------------------------------------------------------------ pairing
    def _check_base_loss_config(self, base_loss: Any) -> None:
        """A ``ValueError`` at build time unless ``base_loss`` is the
        config of a registered loss of this adapter's family (naming both
        this loss and the base loss)."""
        loss_type = base_loss.get('type') if isinstance(base_loss,
                                                        dict) else None
        loss_cls = MODELS.get(loss_type) if isinstance(loss_type, str) else \
            loss_type if isinstance(loss_type, type) else None
        example = dict(
            heatmap="dict(type='KeypointMSELoss', use_target_weight=True)",
            simcc="dict(type='KLDiscretLoss', use_target_weight=True, "
            "beta=10., label_softmax=True)",
            regression="dict(type='RLELoss', use_target_weight=True)")
        if loss_cls is None or (isinstance(loss_cls, type)
                                and issubclass(loss_cls, ReweightedLoss)):
            raise ValueError(
                f'{self._name}: `base_loss` must be the config of a '
                f'registered {self.family} loss other than an AFL loss, '
                f'e.g. {example[self.family]}; got {base_loss!r}')
        family = base_loss_family(loss_cls) or 'heatmap'
        if family != self.family:
            raise ValueError(
                f'{self._name}: `base_loss` {loss_cls.__name__} is a '
                f'{family} loss, but {self._name} wraps {self.family} '
                f'losses (e.g. {example[self.family]}): wrap '
                f'{loss_cls.__name__} in {AFL_LOSSES[family]}')

    def bind_head(self, head: nn.Module) -> None:
        """Check, before any step, that ``head`` is of this loss's family
        and has as many keypoints as the loss expects (a ``ValueError``
        naming both otherwise), and read from it what the adapter needs.
        Called by :class:`AFLCriticHook` for every head whose
        ``loss_module`` is this loss."""
        family = head_family(head)
        head_name = type(head).__name__
        if family is not None and family != self.family:
            raise ValueError(
                f'{self._name} (a {self.family} loss) is the loss of '
                f'{head_name}, a {family} head: use '
                f'{AFL_LOSSES[family]} there')
        if family is None and self.family != 'heatmap':
            raise ValueError(
                f'{self._name} needs a {self.family} head '
                f'({", ".join(HEAD_FAMILIES[self.family])}); it is the loss '
                f'of {head_name}')
        field = self._head_k_field[self.family]
        head_k = getattr(head, field, None)
        loss_k = self.num_keypoints
        if head_k is not None and loss_k is not None and head_k != loss_k:
            raise ValueError(
                f'{self._name}: `critic.num_keypoints` ({loss_k}) must '
                f"equal the head's `{field}` ({head_k})")

    @property
    def num_keypoints(self) -> Optional[int]:
        """The K this loss expects, or ``None`` (any)."""
        return None

    # --------------------------------------------------------- per sample
    def _per_sample_by_vmap(self, args: Sequence[Any],
                            kwargs: Dict[str, Any]) -> Tensor:
        """The base loss of each sample [B], as the base loss of a batch of
        one, vectorised with ``torch.func.vmap`` over the leading dimension
        of every tensor in ``args`` / ``kwargs`` (``None`` stays ``None``;
        tuples of tensors are split too).

        A ``RuntimeError`` under ``vmap`` switches to a Python loop over
        the samples only when the loop then computes the loss, i.e. when
        the failure is ``vmap``'s own (data-dependent control flow,
        ``.item()``, an op without a batching rule); an error of the loss
        itself is raised from the loop, and out-of-memory is raised as it
        is, in both cases without switching.
        """
        base = self.base_loss
        names = list(kwargs)
        inputs = tuple(args) + tuple(kwargs.values())

        def one_sample(*sample):
            batch_of_one = tree_map(
                lambda a: a if a is None else a.unsqueeze(0), sample)
            split = len(batch_of_one) - len(names)
            return base(*batch_of_one[:split],
                        **dict(zip(names, batch_of_one[split:])))

        def loop() -> Tensor:
            batch = tree_flatten(inputs)[0][0].shape[0]
            return torch.stack([
                one_sample(*tree_map(lambda a: a if a is None else a[b],
                                     inputs)) for b in range(batch)
            ])

        if self._use_loop:
            return loop()
        try:
            in_dims = tuple(tree_map(lambda a: 0, a) if a is not None
                            else None for a in inputs)
            return torch.func.vmap(one_sample, in_dims=in_dims)(*inputs)
        except torch.OutOfMemoryError:
            raise
        except RuntimeError as error:
            losses = loop()  # an error of the loss itself is raised here
            warnings.warn(
                f'{self._name}: {type(base).__name__} cannot be '
                f'vectorised with torch.func.vmap ({error}); computing '
                'it sample by sample in a Python loop')
            self._use_loop = True
            return losses

    # ------------------------------------------------------- re-weighting
    def sample_difficulty(
            self, samples: KeypointSamples) -> Tuple[Tensor, Dict[str, Any]]:
        """The detached difficulty [B] of each sample (non-finite values
        allowed; they become the batch mean) and what to keep for
        :meth:`critic_step` or the like until the next forward pass."""
        raise NotImplementedError

    def _before_forward(self, num_keypoints: int, what: str) -> None:
        """Checks before the loss is computed (e.g. the critic's K)."""

    def _reweight(self, samples: KeypointSamples, reduction: str) -> Tensor:
        """The re-weighted loss of ``samples`` (see the class docstring);
        in training, keeps the batch's per-sample values for
        :attr:`last_samples`."""
        losses = samples.losses
        batch = losses.shape[0]
        with torch.no_grad():
            raw, extra = self.sample_difficulty(samples)
            difficulty = finite_difficulty(raw.float())
            weight = normalized_weights(difficulty) \
                if self.normalize_weights else difficulty
        if self.training and batch:
            self._pending = dict(
                extra,
                difficulty=difficulty,
                weight=weight,
                error=samples.error,
                labels=samples.labels,
                base_loss=losses.detach(),
                offsets=sample_offsets(samples, self.family))
        loss = (weight.to(losses.dtype) * losses).sum()
        if reduction == 'mean':
            loss = loss / max(batch, 1)
        loss = loss * self.loss_weight
        if hasattr(self.base_loss, 'regularization'):
            loss = loss + self.base_loss.regularization()
        return loss

    @property
    def last_samples(self) -> Optional[Dict[str, Tensor]]:
        """Per-sample values [B] of the last training batch, while its
        critic step is pending (else ``None``): ``difficulty``, the applied
        ``weight``, the prediction's ``error`` (mean keypoint distance over
        the labelled keypoints: heatmap pixels for heatmaps, input pixels
        for SimCC and regression heads) and its number of labelled
        keypoints, ``labels``; for the difficulty report's oracle
        (docs/hard_examples.md) the detached ``base_loss`` [B] and the
        keypoints' ``offsets`` [B, K, 2]
        (``mmpose_afl.evaluation.sample_oks.sample_offsets``)."""
        if self._pending is None:
            return None
        return {
            k: self._pending[k]
            for k in ('difficulty', 'weight', 'error', 'labels',
                      'base_loss', 'offsets')
        }


class AdversarialFocalLoss(ReweightedLoss):
    """AFL on any head family: the difficulty of :class:`ReweightedLoss`
    from a WGAN-GP critic on the keypoint topology. With ``t``
    :func:`coordinate_topology` of an adapter's coordinates, ``y'`` the
    prediction, ``y`` the ground truth and ``d`` the critic::

        difficulty_b = sigmoid(d(t(y_b)) - d(t(y'_b)))   difficulty='anchored'
                       sigmoid(-d(t(y'_b)))              difficulty='paper'

    and the critic (trained by :class:`AFLCriticHook`, Alg. 2) minimises::

        d(t(y')) - d(t(y)) + gp_weight * GP
            + drift_weight * 1/2 (E[d(t(y))^2] + E[d(t(y'))^2])

    ``difficulty='paper', drift_weight=0, normalize_weights=False`` is the
    paper's Eq. 4 and critic loss exactly. The defaults depart from it
    because the paper's form collapsed training here (the absolute score
    carries a free offset; measurements in ``docs/afl.md``): the drift
    penalty bounds the scores, the anchored difficulty cancels the offset,
    and normalised weights keep the loss scale, to which Adam is sensitive.
    ``label_count_norm`` scales both topologies of a sample by ``K / n_b``
    (``n_b`` its labelled keypoints), so that a topology difference with
    the same per-pair error has the same norm whatever the label count; off
    by default (it did not make the difficulty follow the error).

    Both topologies use the ground truth's keypoint weights, so a keypoint
    without a label cannot make a sample look hard.

    **Critic.** The critic and its optimizer are deliberately *not*
    submodules: the pose optimizer never sees them, they are not in the
    pose model's ``state_dict`` and DDP does not wait for their gradients.
    :class:`AFLCriticHook` (required in ``custom_hooks``) calls
    :meth:`critic_step` after every iteration, keeps the critic identical
    across ranks and saves it in checkpoints; training without the hook
    raises instead of silently running with a frozen critic. The critic
    runs in float32 outside autocast, so the gradient penalty is computed
    in fp32 under ``--amp``.

    Args:
        base_loss (dict): Config of the wrapped registered loss.
        critic (dict): Config of the critic; its ``num_keypoints`` must be
            the head's K.
        critic_optimizer (dict): Config of the critic's optimizer (an
            MMEngine ``OPTIMIZERS`` type; the paper gives none). Defaults
            to ``dict(type='Adam', lr=1e-4, betas=(0.5, 0.9))``
        gp_weight (float): λ of the gradient penalty; must be > 0.
            Defaults to 10.0
        drift_weight (float): ε of the drift penalty on the critic's
            scores; >= 0, 0 is the paper. Defaults to 1.0
        difficulty (str): ``'anchored'`` or ``'paper'`` (Eq. 4).
            Defaults to ``'anchored'``
        normalize_weights (bool): Divide the weights by their batch mean.
            Defaults to ``True``
        label_count_norm (bool): Scale each sample's topologies by
            ``K / n_b``. Defaults to ``False``
        n_critic (int): Critic updates per training iteration; >= 1.
            Defaults to 1
        loss_weight (float): Weight of the loss. Defaults to 1.0
    """
    # what the non-finite warning calls a bad value of the head's tensors
    _nonfinite_what = 'heatmap pixel'
    # whether building the critic draws from the global random stream. Off
    # (the critic's initialisation drawn from a fork of the stream, which
    # then continues as if no critic had been built) for the SimCC and
    # regression families: their heads initialise some parameters at
    # construction (RTMCCHead's GAU gamma), after the loss and out of reach
    # of init_weights, so a critic drawn from the stream would start AFL's
    # pose network elsewhere than the stock one at the same seed. On for
    # heatmaps, so that their runs reproduce earlier ones bit for bit.
    _critic_draws_from_global_rng = True

    def __init__(self,
                 base_loss: dict,
                 critic: dict,
                 critic_optimizer: dict = dict(
                     type='Adam', lr=1e-4, betas=(0.5, 0.9)),
                 gp_weight: float = 10.,
                 drift_weight: float = 1.,
                 difficulty: str = 'anchored',
                 normalize_weights: bool = True,
                 label_count_norm: bool = False,
                 n_critic: int = 1,
                 loss_weight: float = 1.) -> None:
        name = type(self).__name__
        if not (isinstance(gp_weight, (int, float))
                and math.isfinite(gp_weight) and gp_weight > 0):
            raise ValueError(f'{name}: `gp_weight` (the gradient '
                             'penalty λ) must be a finite number > 0, e.g. '
                             f'10; got {gp_weight!r}')
        if not (isinstance(drift_weight, (int, float))
                and math.isfinite(drift_weight) and drift_weight >= 0):
            raise ValueError(
                f'{name}: `drift_weight` (the drift penalty ε) must '
                'be a finite number >= 0, e.g. 1.0 (the default; 0 is the '
                f'paper); got {drift_weight!r}')
        if difficulty not in DIFFICULTIES:
            raise ValueError(
                f'{name}: `difficulty` must be one of {DIFFICULTIES}'
                f' (anchored: sigmoid(d(t(y)) - d(t(y\'))), paper: Eq. 4 '
                f"sigmoid(-d(t(y')))); got {difficulty!r}")
        if not isinstance(label_count_norm, bool):
            raise ValueError(f'{name}: `label_count_norm` must be True or '
                             f'False, got {label_count_norm!r}')
        if not (isinstance(n_critic, int) and n_critic >= 1):
            raise ValueError(f'{name}: `n_critic` must be an int >= 1,'
                             f' got {n_critic!r}')
        super().__init__(base_loss, normalize_weights, loss_weight)
        if self._critic_draws_from_global_rng:
            critic_module = MODELS.build(critic)
        else:
            with torch.random.fork_rng(devices=[]):
                critic_module = MODELS.build(critic)
        if not hasattr(critic_module, 'num_keypoints'):
            raise ValueError(f'{name}: `critic` must build a module '
                             'with a `num_keypoints` attribute such as '
                             f'AFLCritic, got {critic!r}')
        # not submodules: see the class docstring
        object.__setattr__(self, 'critic', critic_module)
        if not (isinstance(critic_optimizer, dict)
                and OPTIMIZERS.get(critic_optimizer.get('type')) is not None):
            raise ValueError(
                f'{name}: `critic_optimizer` must be the config of a '
                "registered optimizer, e.g. dict(type='Adam', lr=1e-4, "
                f'betas=(0.5, 0.9)); got {critic_optimizer!r}')
        object.__setattr__(
            self, 'critic_optimizer',
            OPTIMIZERS.build(
                dict(critic_optimizer, params=critic_module.parameters())))
        self.gp_weight = gp_weight
        self.drift_weight = drift_weight
        self.difficulty = difficulty
        self.label_count_norm = label_count_norm
        self.n_critic = n_critic
        self.attached = False  # set by AFLCriticHook
        self._warned_nonfinite = False

    @property
    def num_keypoints(self) -> int:
        return self.critic.num_keypoints

    def _before_forward(self, num_keypoints: int, what: str) -> None:
        if num_keypoints != self.critic.num_keypoints:
            raise ValueError(
                f'{self._name}: the {what} have K={num_keypoints} '
                f'channels but `critic.num_keypoints` is '
                f'{self.critic.num_keypoints}')
        if self.training and not self.attached:
            raise RuntimeError(
                f'{self._name} is training without AFLCriticHook, so its '
                "critic would never learn: add dict(type='AFLCriticHook') "
                'to `custom_hooks`')

    def topologies(self, samples: KeypointSamples) -> Tuple[Tensor, Tensor]:
        """The (real, fake) topologies [B, 2, K, K] the critic sees:
        :func:`coordinate_topology` of the ground-truth and the predicted
        coordinates, both scaled by ``K / n_b`` under
        ``label_count_norm``."""
        real = coordinate_topology(samples.gt, samples.gt_present,
                                   samples.size)
        fake = coordinate_topology(samples.pred, samples.pred_present,
                                   samples.size)
        if self.label_count_norm:
            scale = (self.critic.num_keypoints /
                     samples.labels.clamp_min(1)).view(-1, 1, 1, 1)
            real, fake = real * scale, fake * scale
        return real, fake

    def sample_difficulty(
            self, samples: KeypointSamples) -> Tuple[Tensor, Dict[str, Any]]:
        real, fake = self.topologies(samples)
        score = -self._score(fake, real)
        if self.difficulty == 'anchored':
            score = score + self._score(real, real)
        nonfinite = (~torch.stack([
            x.detach().flatten(1).isfinite().all(1)
            for x in (*samples.raw, real, fake)
        ]).all(0)).sum()
        return torch.sigmoid(score), dict(
            real=real, fake=fake, nonfinite=nonfinite)

    def _score(self, topology: Tensor, condition: Tensor) -> Tensor:
        """Critic scores in float32, outside any autocast region;
        ``condition`` (the ground truth's topology) reaches a conditional
        critic only."""
        if next(self.critic.parameters()).device != topology.device:
            self.critic.to(topology.device)
        with torch.autocast(topology.device.type, enabled=False):
            return self._critic_given(condition)(topology.float())

    def _critic_given(self, condition: Tensor):
        """The critic as a function of the candidate topology alone: the
        critic itself, or a conditional critic (``AFLConditionalCritic``,
        docs/hard_examples.md) with its ``condition`` bound, so that the
        gradient penalty differentiates in the candidate only."""
        if not getattr(self.critic, 'conditional', False):
            return self.critic
        return lambda topology: self.critic(topology, condition.float())

    def critic_step(self) -> Dict[str, float]:
        """Train the critic on the last training batch (Alg. 2):
        ``n_critic`` steps of the critic loss (see the class docstring) with
        gradients averaged over DDP ranks, so the critic stays identical on
        all. A step whose averaged gradients are not finite is skipped (the
        same decision on every rank).

        A batch in which any sample (on any rank) has a non-finite value in
        the head's tensors (a heatmap pixel, a SimCC logit, a coordinate)
        or a non-finite topology, e.g. after an fp16 overflow under
        ``--amp``, never reaches the critic: all ``n_critic`` steps of the
        iteration are skipped on every rank, before anything is drawn from
        the random generator, with a warning the first time. Decision: the
        whole batch rather than its bad samples, because the AMP scaler
        skips the pose model's step for that batch too, so the critic, its
        optimizer state and the random stream continue exactly as if the
        batch had never been seen. The raw values are checked, not only the
        topology: a NaN or -inf pixel falls below the centroid threshold and
        leaves the topology finite, yet the batch's loss is not finite.

        Returns:
            dict: Of the last step, before its update (left out when the
            iteration's steps were all skipped for a non-finite sample):
            ``critic_loss``, ``wasserstein`` (``E[d(t(y))] -
            E[d(t(y'))]``), ``gradient_penalty``, ``gp_grad_norm`` (the
            mean gradient norm it penalises), ``drift`` (``1/2
            (E[d(t(y))^2] + E[d(t(y'))^2])``),
            ``score_{real,fake}_{mean,min,max}``, ``score_offset`` (the
            mean of the real and fake mean scores); of the batch:
            ``difficulty_{mean,min,max}``, ``ess`` (the applied weights'
            :func:`effective_sample_size`), ``nonfinite_samples`` (samples,
            summed over ranks, with a non-finite value or topology); and of
            the ``n_critic`` steps: ``skipped_critic_steps``, how many were
            not applied for either reason, and ``nonfinite_steps``, how many
            of those for non-finite gradients.
        """
        if self._pending is None:
            raise RuntimeError(f'{self._name}.critic_step: no training '
                               'forward pass since the last critic step')
        pending, self._pending = self._pending, None
        difficulty = pending['difficulty']
        stats = dict(
            difficulty_mean=difficulty.mean(),
            difficulty_min=difficulty.min(),
            difficulty_max=difficulty.max(),
            ess=effective_sample_size(pending['weight']))
        nonfinite = pending['nonfinite'].clone()
        if get_world_size() > 1:
            all_reduce(nonfinite)  # the same decision on every rank
        nonfinite_steps = 0
        if nonfinite > 0:
            skipped = self.n_critic
            if not self._warned_nonfinite:
                warnings.warn(
                    f'{self._name}: {int(nonfinite)} sample(s) of this '
                    f'batch have a non-finite {self._nonfinite_what} or '
                    'keypoint topology (an inf / NaN or overflowing value, '
                    'e.g. an fp16 overflow under --amp); the critic is not '
                    'trained on this batch (counted in '
                    'afl_skipped_critic_steps). Warned once.')
                self._warned_nonfinite = True
        else:
            critic_stats, nonfinite_steps = self._train_critic(
                pending['real'], pending['fake'])
            stats = dict(critic_stats, **stats)
            skipped = nonfinite_steps
        values = torch.stack([v.detach().double() for v in stats.values()])
        return dict(
            zip(stats, values.tolist()),
            nonfinite_samples=int(nonfinite),
            skipped_critic_steps=skipped,
            nonfinite_steps=nonfinite_steps)

    def _train_critic(self, real: Tensor,
                      fake: Tensor) -> Tuple[Dict[str, Tensor], int]:
        """``n_critic`` critic steps on finite topologies: the statistics
        of the last step (see :meth:`critic_step`) and the number of steps
        skipped for non-finite (DDP-averaged) gradients."""
        batch = real.shape[0]
        world_size = get_world_size()
        skipped = 0
        for _ in range(self.n_critic):
            self.critic_optimizer.zero_grad()
            with torch.autocast(real.device.type, enabled=False):
                alpha = torch.rand(batch, device=real.device)
                norms = gradient_norms(self._critic_given(real), real, fake,
                                       alpha)
                penalty = ((norms - 1)**2).mean()
                d_real, d_fake = self._critic_given(torch.cat(
                    [real, real]))(torch.cat([real, fake])).split(batch)
                wasserstein = d_real.mean() - d_fake.mean()
                drift = 0.5 * (d_real.pow(2).mean() + d_fake.pow(2).mean())
                critic_loss = (-wasserstein + self.gp_weight * penalty +
                               self.drift_weight * drift)
            critic_loss.backward()
            grads = [p.grad for p in self.critic.parameters()]
            if world_size > 1:
                for grad in grads:
                    all_reduce(grad, op='mean')
            if torch.stack([g.isfinite().all() for g in grads]).all():
                self.critic_optimizer.step()
            else:
                skipped += 1
        stats = dict(
            critic_loss=critic_loss,
            wasserstein=wasserstein,
            gradient_penalty=penalty,
            gp_grad_norm=norms.mean(),
            drift=drift,
            score_real_mean=d_real.mean(),
            score_real_min=d_real.min(),
            score_real_max=d_real.max(),
            score_fake_mean=d_fake.mean(),
            score_fake_min=d_fake.min(),
            score_fake_max=d_fake.max(),
            score_offset=(d_real.mean() + d_fake.mean()) / 2)
        return stats, skipped


class HeatmapAdapter:
    """The heatmap family: ``forward(output, target, target_weights, mask,
    weight_target)`` as a heatmap head calls its loss, the per-sample base
    loss of any registered heatmap loss, and the intensity-weighted
    centroids (:func:`keypoint_centroids`) in heatmap pixels.

    **Per-sample base loss.** A base loss with a ``per_sample(output,
    target, target_weights, mask)`` method (this project's losses) is asked
    for it directly; MMPose's ``KeypointMSELoss`` is computed per sample in
    one compiled pass (:func:`mse_sample_losses`, with its own
    ``_get_mask``); any other (MMPose's ``AdaptiveWingLoss``,
    ``KeypointOHKMMSELoss``, ...) is evaluated on each sample as a batch of
    one through ``torch.func.vmap``. For losses that are a mean over the
    batch of per-sample terms (all of MMPose's heatmap losses) the mean of
    these values is the batch loss. Inputs of the wrong shape are a
    ``ValueError`` naming the shapes before ``vmap`` runs.

    **Weight target** (AFL around SAHR). :class:`SAHRHead` passes the
    original heatmaps as ``weight_target`` to a loss whose ``forward``
    takes it; the adapter hands it on to a base loss that takes it
    (:class:`WAHRLoss`) and calls any other without it, exactly as
    :class:`SAHRHead` would call that loss directly (an error would make a
    valid config fail). The ground truth's topology is that of ``target``.

    **Centroids.** The centroid threshold applies to what the head
    outputs; for a head trained on logits (:class:`HSMLoss`) use a
    threshold on the logit scale, e.g. 0.
    """
    family = 'heatmap'
    centroid_threshold: float
    _base_takes_weight_target: bool

    def _init_adapter(self, centroid_threshold: float) -> None:
        if not centroid_threshold >= 0:
            raise ValueError(f'{self._name}: `centroid_threshold` must be '
                             f'>= 0, got {centroid_threshold}')
        self.centroid_threshold = centroid_threshold
        self._base_takes_weight_target = 'weight_target' in \
            inspect.signature(self.base_loss.forward).parameters

    def per_sample_base_loss(self,
                             output: Tensor,
                             target: Tensor,
                             target_weights: Optional[Tensor] = None,
                             mask: Optional[Tensor] = None,
                             weight_target: Optional[Tensor] = None
                             ) -> Tensor:
        """The base loss of each sample, with its ``loss_weight``: [B].

        Input shapes are checked first (:func:`check_heatmap_shapes`), so a
        wrong shape is a ``ValueError`` naming them, never a ``vmap`` error
        (see :meth:`ReweightedLoss._per_sample_by_vmap` for the fallback to
        a loop). ``weight_target`` as in :meth:`forward`.
        """
        check_heatmap_shapes(self._name, output, target, target_weights,
                             mask)
        extra = self._base_kwargs(output, weight_target)
        base = self.base_loss
        if hasattr(base, 'per_sample'):
            return base.per_sample(output, target, target_weights, mask,
                                   **extra) * base.loss_weight
        if type(base) is KeypointMSELoss:  # the default base, in one pass
            return mse_sample_losses(
                output, target, base._get_mask(target, target_weights,
                                               mask)) * base.loss_weight
        # MMPose's AdaptiveWingLoss and OHKM loss take no `mask` argument
        args = (output, target, target_weights) if mask is None else (
            output, target, target_weights, mask)
        return self._per_sample_by_vmap(args, extra)

    def keypoint_samples(self,
                         output: Tensor,
                         target: Tensor,
                         target_weights: Optional[Tensor] = None,
                         mask: Optional[Tensor] = None,
                         weight_target: Optional[Tensor] = None
                         ) -> KeypointSamples:
        """Per-sample base losses, centroids (heatmap pixels of a
        ``(W, H)`` frame) and heatmap-peak errors of a batch."""
        check_heatmap_shapes(self._name, output, target, target_weights,
                             mask)
        self._base_kwargs(output, weight_target)
        self._before_forward(output.shape[1], 'heatmaps')
        # an empty batch (whose base-loss mean would be NaN): no per-sample
        # losses, but still a graph to back-propagate the zero loss through
        losses = self.per_sample_base_loss(
            output, target, target_weights, mask,
            weight_target) if output.shape[0] else output.flatten(1).sum(1)
        keypoint_weights = target_weights if (
            target_weights is not None and target_weights.dim() == 2) else None
        _, _, height, width = output.shape
        with torch.no_grad():
            pred, pred_present = keypoint_centroids(
                output.detach(), self.centroid_threshold, keypoint_weights)
            gt, gt_present = keypoint_centroids(
                target.detach(), self.centroid_threshold, keypoint_weights)
            error, labels = keypoint_peak_error(output, target,
                                                keypoint_weights)
        return KeypointSamples(losses, pred, pred_present, gt, gt_present,
                               (width, height), error, labels,
                               (output, target))

    def forward(self,
                output: Tensor,
                target: Tensor,
                target_weights: Optional[Tensor] = None,
                mask: Optional[Tensor] = None,
                weight_target: Optional[Tensor] = None) -> Tensor:
        """Forward function of loss.

        Note:
            - batch_size: B
            - num_keypoints: K
            - heatmaps height: H
            - heatmaps weight: W

        Args:
            output (Tensor): The output heatmaps with shape [B, K, H, W]
            target (Tensor): The target heatmaps with shape [B, K, H, W]
            target_weights (Tensor, optional): The target weights of
                different keypoints, with shape [B, K] (keypoint-wise) or
                [B, K, H, W] (pixel-wise); passed to the base loss.
                Keypoint-wise weights also mark missing keypoints for the
                topology. Defaults to ``None``
            mask (Tensor, optional): Passed to the base loss.
                Defaults to ``None``
            weight_target (Tensor, optional): The heatmaps [B, K, H, W] a
                pixel weight is computed from (:class:`SAHRHead` passes the
                original heatmaps here and the scale-adapted ones as
                ``target``); passed to a base loss whose ``forward`` takes
                it (:class:`WAHRLoss`), ignored by any other.
                Defaults to ``None``

        Returns:
            Tensor: The calculated loss.
        """
        samples = self.keypoint_samples(output, target, target_weights,
                                        mask, weight_target)
        return self._reweight(samples, 'mean')

    def _base_kwargs(self, output: Tensor,
                     weight_target: Optional[Tensor]) -> Dict[str, Tensor]:
        """``dict(weight_target=weight_target)`` when it is given and the
        base loss takes it, else ``{}``; a ``ValueError`` if its shape is
        not ``output``'s."""
        if weight_target is None or not self._base_takes_weight_target:
            return {}
        if weight_target.shape != output.shape:
            raise ValueError(
                f'{self._name}: `weight_target` {list(weight_target.shape)}'
                f' must have the shape of `output` {list(output.shape)}')
        return dict(weight_target=weight_target)


@MODELS.register_module()
class AFLHeatmapLoss(HeatmapAdapter, AdversarialFocalLoss):
    """Adversarial Focal Loss wrapping a heatmap loss: AFL
    (:class:`AdversarialFocalLoss`) on the topology of the heatmaps'
    centroids (:class:`HeatmapAdapter`). See ``docs/afl.md``.

    Args:
        base_loss (dict): Config of the wrapped registered loss. Defaults to
            ``dict(type='KeypointMSELoss', use_target_weight=True)``
        critic (dict): Config of the critic; its ``num_keypoints`` must be
            the heatmaps' K; ``AFLConditionalCritic`` also sees the
            sample's ground truth (docs/hard_examples.md). Defaults to
            ``dict(type='AFLCritic', num_keypoints=17)``
        critic_optimizer (dict): Config of the critic's optimizer.
            Defaults to ``dict(type='Adam', lr=1e-4, betas=(0.5, 0.9))``
        gp_weight (float): λ of the gradient penalty; must be > 0.
            Defaults to 10.0
        drift_weight (float): ε of the drift penalty; >= 0, 0 is the
            paper. Defaults to 1.0
        difficulty (str): ``'anchored'`` (``sigmoid(d(t(y)) - d(t(y')))``)
            or ``'paper'`` (Eq. 4, ``sigmoid(-d(t(y')))``).
            Defaults to ``'anchored'``
        normalize_weights (bool): Divide the weights by their batch mean.
            Defaults to ``True``
        label_count_norm (bool): Scale each sample's topologies by
            ``K / n_b``. Defaults to ``False``
        n_critic (int): Critic updates per training iteration; >= 1.
            Defaults to 1
        centroid_threshold (float): Heatmap values below it are ignored
            when finding keypoint centroids; >= 0. Defaults to 0.1
        loss_weight (float): Weight of the loss. Defaults to 1.0
    """

    def __init__(self,
                 base_loss: dict = dict(
                     type='KeypointMSELoss', use_target_weight=True),
                 critic: dict = dict(type='AFLCritic', num_keypoints=17),
                 critic_optimizer: dict = dict(
                     type='Adam', lr=1e-4, betas=(0.5, 0.9)),
                 gp_weight: float = 10.,
                 drift_weight: float = 1.,
                 difficulty: str = 'anchored',
                 normalize_weights: bool = True,
                 label_count_norm: bool = False,
                 n_critic: int = 1,
                 centroid_threshold: float = 0.1,
                 loss_weight: float = 1.) -> None:
        if not centroid_threshold >= 0:  # checked before building anything
            raise ValueError('AFLHeatmapLoss: `centroid_threshold` must be '
                             f'>= 0, got {centroid_threshold}')
        AdversarialFocalLoss.__init__(
            self, base_loss, critic, critic_optimizer, gp_weight,
            drift_weight, difficulty, normalize_weights, label_count_norm,
            n_critic, loss_weight)
        self._init_adapter(centroid_threshold)
