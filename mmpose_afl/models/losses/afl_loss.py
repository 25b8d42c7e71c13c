"""Adversarial Focal Loss (AFL): any heatmap loss, re-weighted per sample by
how far a WGAN-GP critic finds the predicted keypoint topology from the
ground truth's (Eq. 4 and Alg. 2 of the AFL paper)."""
import warnings
from typing import Dict, Optional, Tuple

import torch
from mmengine.dist import all_reduce, get_world_size
from mmpose.registry import MODELS, OPTIMIZERS
from torch import Tensor, nn

from mmpose_afl.models.afl_critic import heatmap_topology


def gradient_penalty(critic: nn.Module, real: Tensor, fake: Tensor,
                     alpha: Tensor) -> Tensor:
    """WGAN-GP penalty ``mean_b (||grad_x d(x_b)||_2 - 1)^2`` at
    ``x = alpha * real + (1 - alpha) * fake``.

    Args:
        critic (nn.Module): Maps [B, ...] to [B] scores.
        real (Tensor): Ground-truth topology maps [B, 2, K, K].
        fake (Tensor): Predicted topology maps, same shape.
        alpha (Tensor): Mixing factors [B], one per sample.

    Returns:
        Tensor: The scalar penalty, differentiable w.r.t. the critic.
    """
    alpha = alpha.view(-1, *([1] * (real.dim() - 1)))
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(
        critic(mixed).sum(), mixed, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1)**2).mean()


@MODELS.register_module()
class AFLHeatmapLoss(nn.Module):
    """Adversarial Focal Loss wrapping a heatmap loss.

    With ``L_b`` the base loss of sample ``b`` (with the base loss's own
    normalisation and ``loss_weight``) and ``d`` the critic::

        AFL = loss_weight * mean_b[ stopgrad(sigmoid(-d(t(y'_b)))) * L_b ]

    where ``t`` is :func:`heatmap_topology` and ``y'`` the predicted
    heatmaps. With all difficulties equal to 1 this is exactly the base
    loss (times ``loss_weight``). The difficulty is detached: the pose net
    gets no gradient from the critic, and the critic none from this loss.

    **Per-sample base loss.** A base loss with a ``per_sample(output,
    target, target_weights, mask)`` method (this project's losses) is asked
    for it directly. Any other registered loss (MMPose's
    ``KeypointMSELoss``, ``AdaptiveWingLoss``, ``KeypointOHKMMSELoss``, ...)
    is evaluated on each sample as a batch of one through
    ``torch.func.vmap``, i.e. vectorised, with no Python loop. For losses
    that are a mean over the batch of per-sample terms (all of MMPose's
    heatmap losses) the mean of these values is the batch loss. A base loss
    with a ``regularization()`` method (:class:`FoWKALLoss`'s ``L_reg`` on
    its learnable factors) has it added once, weighted neither by
    difficulty nor by ``loss_weight`` (as the base loss itself adds it),
    so that with all weights 1 AFL still equals the base loss. A loss that
    ``vmap`` cannot trace (data-dependent control flow) falls back, with a
    warning, to a Python loop over the samples: correct, but slower.

    **Topology inputs.** ``t`` is applied to the detached prediction and to
    the target, both with the target's keypoint weights (``[B, K]``), so
    the critic compares the topology of the annotated keypoints only: a
    keypoint without a label cannot make a sample look hard. The centroid
    threshold applies to what the head outputs; for a head trained on
    logits (:class:`HSMLoss`) use a threshold on the logit scale, e.g. 0.

    **Critic.** The critic and its optimizer are deliberately *not*
    submodules: the pose optimizer never sees them, they are not in the
    pose model's ``state_dict`` and DDP does not wait for their gradients.
    :class:`AFLCriticHook` (required in ``custom_hooks``) calls
    :meth:`critic_step` after every iteration (Alg. 2), keeps the critic
    identical across ranks and saves it in checkpoints; training without
    the hook raises instead of silently running with a frozen critic. The
    critic runs in float32 outside autocast, so the gradient penalty is
    computed in fp32 under ``--amp``.

    The paper's optional "stronger regularisation on the range of
    ``L_d^{y'}``" (future work) is not implemented.

    Args:
        base_loss (dict): Config of the wrapped registered loss. Defaults to
            ``dict(type='KeypointMSELoss', use_target_weight=True)``
        critic (dict): Config of the critic; its ``num_keypoints`` must be
            the heatmaps' K. Defaults to
            ``dict(type='AFLCritic', num_keypoints=17)``
        critic_optimizer (dict): Config of the critic's optimizer (an
            MMEngine ``OPTIMIZERS`` type; the paper gives none, SPEC.md
            decides). Defaults to
            ``dict(type='Adam', lr=1e-4, betas=(0.5, 0.9))``
        gp_weight (float): λ of the gradient penalty; must be > 0.
            Defaults to 10.0
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
                 n_critic: int = 1,
                 centroid_threshold: float = 0.1,
                 loss_weight: float = 1.) -> None:
        super().__init__()
        loss_type = base_loss.get('type') if isinstance(base_loss,
                                                        dict) else None
        if loss_type in (None, 'AFLHeatmapLoss', AFLHeatmapLoss) or (
                isinstance(loss_type, str) and MODELS.get(loss_type) is None):
            raise ValueError(
                'AFLHeatmapLoss: `base_loss` must be the config of a '
                "registered heatmap loss other than AFLHeatmapLoss, e.g. "
                "dict(type='KeypointMSELoss', use_target_weight=True); got "
                f'{base_loss!r}')
        if not gp_weight > 0:
            raise ValueError('AFLHeatmapLoss: `gp_weight` (the gradient '
                             f'penalty λ) must be > 0, e.g. 10; got {gp_weight}')
        if not (isinstance(n_critic, int) and n_critic >= 1):
            raise ValueError('AFLHeatmapLoss: `n_critic` must be an int >= 1,'
                             f' got {n_critic!r}')
        if not centroid_threshold >= 0:
            raise ValueError('AFLHeatmapLoss: `centroid_threshold` must be '
                             f'>= 0, got {centroid_threshold}')
        self.base_loss = MODELS.build(base_loss)
        critic_module = MODELS.build(critic)
        if not hasattr(critic_module, 'num_keypoints'):
            raise ValueError('AFLHeatmapLoss: `critic` must build a module '
                             'with a `num_keypoints` attribute such as '
                             f'AFLCritic, got {critic!r}')
        # not submodules: see the class docstring
        object.__setattr__(self, 'critic', critic_module)
        if not (isinstance(critic_optimizer, dict)
                and OPTIMIZERS.get(critic_optimizer.get('type')) is not None):
            raise ValueError(
                'AFLHeatmapLoss: `critic_optimizer` must be the config of a '
                "registered optimizer, e.g. dict(type='Adam', lr=1e-4, "
                f'betas=(0.5, 0.9)); got {critic_optimizer!r}')
        object.__setattr__(
            self, 'critic_optimizer',
            OPTIMIZERS.build(
                dict(critic_optimizer, params=critic_module.parameters())))
        self.gp_weight = gp_weight
        self.n_critic = n_critic
        self.centroid_threshold = centroid_threshold
        self.loss_weight = loss_weight
        self.attached = False  # set by AFLCriticHook
        self._pending: Optional[Tuple[Tensor, Tensor, Tensor]] = None
        self._use_loop = False

    def per_sample_base_loss(self,
                             output: Tensor,
                             target: Tensor,
                             target_weights: Optional[Tensor] = None,
                             mask: Optional[Tensor] = None) -> Tensor:
        """The base loss of each sample, with its ``loss_weight``: [B]."""
        base = self.base_loss
        if hasattr(base, 'per_sample'):
            return base.per_sample(output, target, target_weights,
                                   mask) * base.loss_weight
        # MMPose's AdaptiveWingLoss and OHKM loss take no `mask` argument
        args = (output, target, target_weights) if mask is None else (
            output, target, target_weights, mask)

        def one_sample(*sample):
            batch_of_one = [None if a is None else a.unsqueeze(0)
                            for a in sample]
            return base(*batch_of_one)

        if not self._use_loop:
            try:
                in_dims = tuple(None if a is None else 0 for a in args)
                return torch.func.vmap(one_sample, in_dims=in_dims)(*args)
            except RuntimeError as error:
                warnings.warn(
                    f'AFLHeatmapLoss: {type(base).__name__} cannot be '
                    f'vectorised with torch.func.vmap ({error}); computing '
                    'it sample by sample in a Python loop')
                self._use_loop = True
        return torch.stack([
            one_sample(*[None if a is None else a[b] for a in args])
            for b in range(output.shape[0])
        ])

    def forward(self,
                output: Tensor,
                target: Tensor,
                target_weights: Optional[Tensor] = None,
                mask: Optional[Tensor] = None) -> Tensor:
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

        Returns:
            Tensor: The calculated loss.
        """
        if output.shape[1] != self.critic.num_keypoints:
            raise ValueError(
                f'AFLHeatmapLoss: the heatmaps have K={output.shape[1]} '
                f'channels but `critic.num_keypoints` is '
                f'{self.critic.num_keypoints}')
        if self.training and not self.attached:
            raise RuntimeError(
                'AFLHeatmapLoss is training without AFLCriticHook, so its '
                "critic would never learn: add dict(type='AFLCriticHook') "
                'to `custom_hooks`')
        losses = self.per_sample_base_loss(output, target, target_weights,
                                           mask)
        keypoint_weights = target_weights if (
            target_weights is not None and target_weights.dim() == 2) else None
        with torch.no_grad():
            fake = heatmap_topology(output.detach(), self.centroid_threshold,
                                    keypoint_weights)
            difficulty = torch.sigmoid(-self._score(fake))
        if self.training:
            real = heatmap_topology(target.detach(), self.centroid_threshold,
                                    keypoint_weights)
            self._pending = (real, fake, difficulty)
        loss = (difficulty.to(losses.dtype) * losses).mean() * self.loss_weight
        if hasattr(self.base_loss, 'regularization'):
            loss = loss + self.base_loss.regularization()
        return loss

    @property
    def last_difficulty(self) -> Optional[Tensor]:
        """Difficulties [B] of the last training batch, while its critic
        step is pending; else ``None``."""
        return None if self._pending is None else self._pending[2]

    def _score(self, topology: Tensor) -> Tensor:
        """Critic scores in float32, outside any autocast region."""
        if next(self.critic.parameters()).device != topology.device:
            self.critic.to(topology.device)
        with torch.autocast(topology.device.type, enabled=False):
            return self.critic(topology.float())

    def critic_step(self) -> Dict[str, float]:
        """Train the critic on the last training batch (Alg. 2):
        ``n_critic`` steps of ``d(t(y')) - d(t(y)) + λ GP`` with gradients
        averaged over DDP ranks, so the critic stays identical on all.

        Returns:
            dict: ``critic_loss``, ``wasserstein`` (``d(t(y)) - d(t(y'))``),
            ``gradient_penalty`` of the last step and ``difficulty_mean``,
            ``difficulty_min``, ``difficulty_max`` of the batch.
        """
        if self._pending is None:
            raise RuntimeError('AFLHeatmapLoss.critic_step: no training '
                               'forward pass since the last critic step')
        real, fake, difficulty = self._pending
        self._pending = None
        world_size = get_world_size()
        for _ in range(self.n_critic):
            self.critic_optimizer.zero_grad()
            with torch.autocast(real.device.type, enabled=False):
                alpha = torch.rand(real.shape[0], device=real.device)
                penalty = gradient_penalty(self.critic, real, fake, alpha)
                wasserstein = self.critic(real).mean() - self.critic(
                    fake).mean()
                critic_loss = -wasserstein + self.gp_weight * penalty
            critic_loss.backward()
            if world_size > 1:
                for param in self.critic.parameters():
                    all_reduce(param.grad, op='mean')
            self.critic_optimizer.step()
        return dict(
            critic_loss=critic_loss.item(),
            wasserstein=wasserstein.item(),
            gradient_penalty=penalty.item(),
            difficulty_mean=difficulty.mean().item(),
            difficulty_min=difficulty.min().item(),
            difficulty_max=difficulty.max().item())
