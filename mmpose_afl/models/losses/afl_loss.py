"""Adversarial Focal Loss (AFL): any keypoint loss, re-weighted per sample by
how far a WGAN-GP critic finds the predicted keypoint topology from the
ground truth's (Eq. 4 and Alg. 2 of the AFL paper), with a range-controlled
critic and an anchored difficulty by default. See ``docs/afl.md``.

Who does what (docs/afl.md, "Design"): :class:`ReweightedLoss` computes the
per-sample base loss and applies the weights; an adapter of the head's
family (``afl_adapters.py``) gives the keypoints; this module turns them
into topologies and the critic's scores into the difficulty; the critic is
trained by ``AFLCriticHook`` alone. The three registered losses only add
their head's ``forward`` signature.
"""
import math
from typing import Optional, Sequence

import torch
from mmpose.registry import MODELS, OPTIMIZERS
from torch import Tensor, nn

from mmpose_afl.models.afl_critic import coordinate_topology
from .afl_adapters import (HeatmapAdapter, KeypointAdapter, Keypoints,
                           RegressionAdapter, SimCCAdapter)
from .reweighted_loss import effective_sample_size  # noqa: F401 (benchmarks)
from .reweighted_loss import ReweightedLoss

DIFFICULTIES = ('anchored', 'paper')


class CriticRef:
    """The loss's view of its critic, a plain object so that the critic is
    not a submodule of the pose model: the pose optimizer, DDP and the
    pose ``state_dict`` never see it (``AFLCriticHook`` owns its training
    and checkpoint state).

    Args:
        critic (nn.Module): The critic.
    """

    def __init__(self, critic: nn.Module) -> None:
        self.module = critic

    def given(self, condition: Tensor):
        """The critic as a function of the candidate topology alone (the
        condition bound for a conditional critic), in float32 outside any
        autocast region, so that the gradient penalty differentiates in
        the candidate only."""
        critic = self.module

        def score(topology: Tensor) -> Tensor:
            # the critic computes in float32 even under AMP autocast
            with torch.autocast(topology.device.type, enabled=False):
                if getattr(critic, 'conditional', False):
                    return critic(topology.float(), condition.float())
                return critic(topology.float())

        return score


class AdversarialFocalLoss(ReweightedLoss):
    """AFL on any head family. With ``t`` :func:`coordinate_topology` of the
    adapter's keypoints, ``y'`` the prediction, ``y`` the ground truth and
    ``d`` the critic::

        difficulty_b = sigmoid(d(t(y_b)) - d(t(y'_b)))   difficulty='anchored'
                       sigmoid(-d(t(y'_b)))              difficulty='paper'

    and ``AFLCriticHook`` (required in ``custom_hooks``) trains the critic
    on::

        d(t(y')) - d(t(y)) + gp_weight * GP
            + drift_weight * 1/2 (E[d(t(y))^2] + E[d(t(y'))^2])

    ``difficulty='paper', drift_weight=0, normalize_weights=False`` is the
    paper's Eq. 4 and critic loss exactly; the defaults depart from it
    because the paper's form collapsed training here (``docs/afl.md``).
    Both topologies use the ground truth's keypoint weights, so a keypoint
    without a label cannot make a sample look hard. A training forward
    whose previous batch never reached the critic (no hook) is an error,
    not a silently frozen critic.

    Args:
        base_loss (dict): Config of the wrapped registered loss.
        critic (dict): Config of the critic; its ``num_keypoints`` must be
            the head's K. Defaults to
            ``dict(type='AFLCritic', num_keypoints=17)``
        critic_optimizer (dict): Config of the critic's optimizer, used by
            ``AFLCriticHook`` unless the hook has an ``optim_wrapper``.
            Defaults to ``dict(type='Adam', lr=1e-4, betas=(0.5, 0.9))``
        gp_weight (float): λ of the gradient penalty; > 0. Defaults to 10.0
        drift_weight (float): ε of the drift penalty; >= 0, 0 is the
            paper. Defaults to 1.0
        difficulty (str): ``'anchored'`` or ``'paper'`` (Eq. 4).
            Defaults to ``'anchored'``
        normalize_weights (bool): Divide the weights by their batch mean.
            Defaults to ``True``
        label_count_norm (bool): Scale each sample's topologies by
            ``K / n_b`` (``n_b`` its labelled keypoints). Defaults to
            ``False``
        n_critic (int): Critic updates per training iteration; >= 1.
            Defaults to 1
        loss_weight (float): Weight of the loss. Defaults to 1.0
        **adapter_args: Arguments of the head family's adapter.
    """
    adapter_type = KeypointAdapter  # set by each registered loss

    def __init__(self,
                 base_loss: dict,
                 critic: dict = dict(type='AFLCritic', num_keypoints=17),
                 critic_optimizer: dict = dict(
                     type='Adam', lr=1e-4, betas=(0.5, 0.9)),
                 gp_weight: float = 10.,
                 drift_weight: float = 1.,
                 difficulty: str = 'anchored',
                 normalize_weights: bool = True,
                 label_count_norm: bool = False,
                 n_critic: int = 1,
                 loss_weight: float = 1.,
                 **adapter_args) -> None:
        name = type(self).__name__
        for field, value, lowest in (('gp_weight', gp_weight, 'a finite '
                                      'number > 0, e.g. 10'),
                                     ('drift_weight', drift_weight,
                                      'a finite number >= 0, e.g. 1.0 (0 is '
                                      'the paper)')):
            ok = isinstance(value, (int, float)) and math.isfinite(value)
            if not (ok and
                    (value > 0 or field == 'drift_weight' and value >= 0)):
                raise ValueError(f'{name}: `{field}` must be {lowest}; got '
                                 f'{value!r}')
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
        if not (isinstance(critic_optimizer, dict)
                and OPTIMIZERS.get(critic_optimizer.get('type')) is not None):
            raise ValueError(
                f'{name}: `critic_optimizer` must be the config of a '
                "registered optimizer, e.g. dict(type='Adam', lr=1e-4, "
                f'betas=(0.5, 0.9)); got {critic_optimizer!r}')
        self.adapter_type.check_base_loss(name, base_loss)
        super().__init__(base_loss, normalize_weights, loss_weight)
        self.adapter = self.adapter_type(name, self.base_loss, **adapter_args)
        # built from a fork of the random stream, which then continues as
        # if no critic had been built: AFL's pose network starts where the
        # stock one does at the same seed
        with torch.random.fork_rng(devices=[]):
            module = MODELS.build(critic)
        if not hasattr(module, 'num_keypoints'):
            raise ValueError(f'{name}: `critic` must build a module '
                             'with a `num_keypoints` attribute such as '
                             f'AFLCritic, got {critic!r}')
        self.critic_ref = CriticRef(module)
        self.critic_optimizer = critic_optimizer
        self.gp_weight = gp_weight
        self.drift_weight = drift_weight
        self.difficulty = difficulty
        self.label_count_norm = label_count_norm
        self.n_critic = n_critic
        # the last training batch's topologies, until the hook's step
        self.critic_batch: Optional[dict] = None

    @property
    def critic(self) -> nn.Module:
        """The critic module (not a submodule: see :class:`CriticRef`)."""
        return self.critic_ref.module

    @property
    def num_keypoints(self) -> int:
        return self.critic.num_keypoints

    def bind_head(self, head: nn.Module) -> None:
        """Check ``head`` against this loss (family, K; a ``ValueError``
        naming both) and read what the adapter needs from it. Called by
        ``AFLCriticHook`` before training, for the head whose
        ``loss_module`` this loss is."""
        self.adapter.bind_head(head, self.num_keypoints)

    def afl(self, *head_inputs) -> Tensor:
        """The loss of a batch, from the head's loss arguments."""
        if self.training and self.critic_batch is not None:
            raise RuntimeError(
                f'{type(self).__name__} is training without AFLCriticHook '
                '(the last batch never reached the critic), so its critic '
                "would never learn: add dict(type='AFLCriticHook') to "
                '`custom_hooks`')
        inputs, kwargs = self.adapter.base_inputs(*head_inputs)
        return self.reweighted(self.adapter.reduction, inputs, kwargs,
                               head_inputs)

    def topologies(self, keypoints: Keypoints):
        """The (real, fake) topologies [B, 2, K, K] the critic sees, both
        scaled by ``K / n_b`` under ``label_count_norm``."""
        real = coordinate_topology(keypoints.gt, keypoints.gt_present,
                                   keypoints.size)
        fake = coordinate_topology(keypoints.pred, keypoints.pred_present,
                                   keypoints.size)
        if self.label_count_norm:
            labels = keypoints.labelled.sum(dim=1).clamp_min(1)
            scale = (self.num_keypoints / labels).view(-1, 1, 1, 1)
            real, fake = real * scale, fake * scale
        return real, fake

    def sample_difficulty(self, losses: Tensor, *head_inputs) -> Tensor:
        keypoints = self.adapter.keypoints(*head_inputs)
        k = keypoints.pred.shape[1]
        if k != self.num_keypoints:
            raise ValueError(
                f'{type(self).__name__}: the {self.adapter.what} have K={k}'
                f' channels but `critic.num_keypoints` is '
                f'{self.num_keypoints}')
        real, fake = self.topologies(keypoints)
        score = -self.critic_ref.given(real)(fake)
        if self.difficulty == 'anchored':
            score = score + self.critic_ref.given(real)(real)
        if self.training and len(losses):
            finite = torch.stack([
                x.detach().flatten(1).isfinite().all(1)
                for x in (*keypoints.raw, real, fake)
            ]).all(0)
            self.critic_batch = dict(
                real=real, fake=fake, nonfinite=(~finite).sum())
        return torch.sigmoid(score)

    def pop_critic_batch(self) -> Optional[dict]:
        """The last training batch for the critic (``real``, ``fake``,
        ``nonfinite``, ``difficulty``, ``weight``), and forget it with
        :attr:`last_samples`, so that the head's outputs and targets are not
        held until the next batch; ``None`` when there was none."""
        batch, self.critic_batch = self.critic_batch, None
        samples, self.last_samples = self.last_samples, None
        if batch is None or samples is None:
            return None
        return dict(batch, **samples)


@MODELS.register_module()
class AFLHeatmapLoss(AdversarialFocalLoss):
    """AFL wrapping a heatmap loss, on the topology of the heatmaps'
    centroids (:class:`HeatmapAdapter`). See ``docs/afl.md``.

    Args:
        base_loss (dict): Config of the wrapped registered heatmap loss.
            Defaults to ``dict(type='KeypointMSELoss',
            use_target_weight=True)``
        centroid_threshold (float): Heatmap values below it are ignored
            when finding keypoint centroids; >= 0. Defaults to 0.1
        **kwargs: The other arguments of :class:`AdversarialFocalLoss`.
    """
    adapter_type = HeatmapAdapter

    def __init__(self,
                 base_loss: dict = dict(
                     type='KeypointMSELoss', use_target_weight=True),
                 centroid_threshold: float = 0.1,
                 **kwargs) -> None:
        if not centroid_threshold >= 0:  # checked before building anything
            raise ValueError('AFLHeatmapLoss: `centroid_threshold` must be '
                             f'>= 0, got {centroid_threshold}')
        super().__init__(
            base_loss, centroid_threshold=centroid_threshold, **kwargs)

    def forward(self,
                output: Tensor,
                target: Tensor,
                target_weights: Optional[Tensor] = None,
                mask: Optional[Tensor] = None,
                weight_target: Optional[Tensor] = None) -> Tensor:
        """The loss of heatmaps [B, K, H, W] as a heatmap head calls its
        loss: ``target_weights`` [B, K] or [B, K, H, W] and ``mask`` go to
        the base loss (keypoint-wise weights 0 also mark missing
        keypoints); ``weight_target`` as in :class:`HeatmapAdapter`."""
        return self.afl(output, target, target_weights, mask, weight_target)


@MODELS.register_module()
class AFLSimCCLoss(AdversarialFocalLoss):
    """AFL wrapping a SimCC loss (``KLDiscretLoss`` of ``RTMCCHead`` /
    ``RTMWHead``), on the topology of the expected SimCC coordinates
    (:class:`SimCCAdapter`). See ``docs/afl.md``.

    Args:
        base_loss (dict): Config of the wrapped loss. Defaults to RTMPose's
            ``dict(type='KLDiscretLoss', use_target_weight=True, beta=10.,
            label_softmax=True)``
        **kwargs: The other arguments of :class:`AdversarialFocalLoss`.
    """
    adapter_type = SimCCAdapter

    def __init__(self,
                 base_loss: dict = dict(
                     type='KLDiscretLoss',
                     use_target_weight=True,
                     beta=10.,
                     label_softmax=True),
                 **kwargs) -> None:
        super().__init__(base_loss, **kwargs)

    def forward(self,
                pred_simcc: Sequence[Tensor],
                gt_simcc: Sequence[Tensor],
                target_weight: Optional[Tensor] = None) -> Tensor:
        """The loss of SimCC vectors: ``(x, y)`` pairs [B, K, W * ratio]
        and [B, K, H * ratio], keypoint weights [B, K] (0 also marks a
        missing keypoint)."""
        return self.afl(pred_simcc, gt_simcc, target_weight)


@MODELS.register_module()
class AFLRegressionLoss(AdversarialFocalLoss):
    """AFL wrapping a regression loss (``RLELoss`` of ``RLEHead``,
    ``SmoothL1Loss`` of ``RegressionHead``), on the topology of the
    regressed coordinates (:class:`RegressionAdapter`). See
    ``docs/afl.md``.

    Args:
        base_loss (dict): Config of the wrapped loss. Defaults to
            ``dict(type='RLELoss', use_target_weight=True)``
        input_size (tuple, optional): The model input ``(W, H)``; ``None``
            reads it from the head's decoder. Defaults to ``None``
        **kwargs: The other arguments of :class:`AdversarialFocalLoss`.
    """
    adapter_type = RegressionAdapter

    def __init__(self,
                 base_loss: dict = dict(
                     type='RLELoss', use_target_weight=True),
                 input_size: Optional[Sequence[int]] = None,
                 **kwargs) -> None:
        super().__init__(base_loss, input_size=input_size, **kwargs)

    def forward(self, *inputs: Tensor) -> Tensor:
        """The loss as the head calls its stock loss: ``(pred, sigma,
        target, target_weight)`` for ``RLELoss``, ``(output, target,
        target_weight)`` for ``SmoothL1Loss``; coordinates [B, K, 2]
        normalised to the input, weights [B, K, 1] (0 also marks a missing
        keypoint)."""
        return self.afl(*inputs)
