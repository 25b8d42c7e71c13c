"""Training of one AFL critic (Alg. 2 of the AFL paper): WGAN-GP steps on the
topologies of the last training batch, with an MMEngine optimizer wrapper
(so ``clip_grad``, ``accumulative_counts`` and a parameter scheduler work as
for the pose model), gradients averaged over DDP ranks and non-finite steps
skipped. ``AFLCriticHook`` owns one per AFL loss; see ``docs/afl.md``."""
import copy
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.dist import all_reduce, get_world_size
from mmengine.logging import MessageHub
from mmpose.registry import OPTIM_WRAPPERS, OPTIMIZERS, PARAM_SCHEDULERS
from torch import Tensor, nn

from mmpose_afl.models.losses.reweighted_loss import effective_sample_size


def gradient_norms(critic, real: Tensor, fake: Tensor,
                   alpha: Tensor) -> Tensor:
    """Per-sample norms ``||grad_x d(x_b)||_2`` at
    ``x = alpha * real + (1 - alpha) * fake``; the WGAN-GP penalty is
    ``mean_b (norm_b - 1)^2``.

    Args:
        critic (Callable): Maps [B, ...] to [B] scores.
        real (Tensor): Ground-truth topology maps [B, 2, K, K].
        fake (Tensor): Predicted topology maps, same shape.
        alpha (Tensor): Mixing factors [B], one per sample.

    Returns:
        Tensor: The norms [B], differentiable w.r.t. the critic.
    """
    alpha = alpha.view(-1, *([1] * (real.dim() - 1)))
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    grad, = torch.autograd.grad(critic(mixed).sum(), mixed, create_graph=True)
    return grad.flatten(1).norm(dim=1)


class AFLCriticTrainer:
    """Train the critic of one AFL loss on the batches it hands over
    (``loss.pop_critic_batch()``).

    Args:
        loss (nn.Module): An ``AdversarialFocalLoss``.
        optim_wrapper (dict, optional): MMEngine optimizer-wrapper config
            for the critic (``optimizer``, ``clip_grad``,
            ``accumulative_counts``); without ``optimizer`` the loss's
            ``critic_optimizer`` is used. Defaults to ``None`` (an
            ``OptimWrapper`` around ``critic_optimizer``)
        param_scheduler (dict | Sequence[dict], optional): Parameter
            scheduler(s) of the critic's optimizer, stepped per iteration
            (``by_epoch=False``) or per epoch. Defaults to ``None``
    """

    def __init__(self,
                 loss: nn.Module,
                 optim_wrapper: Optional[dict] = None,
                 param_scheduler=None) -> None:
        self.loss = loss
        self.critic = loss.critic
        cfg = copy.deepcopy(dict(optim_wrapper or {}))
        cfg.setdefault('type', 'OptimWrapper')
        optimizer = OPTIMIZERS.build(
            dict(
                cfg.pop('optimizer', loss.critic_optimizer),
                params=self.critic.parameters()))
        self.optim_wrapper = OPTIM_WRAPPERS.build(
            cfg, default_args=dict(optimizer=optimizer))
        # its own hub, so that a clipped gradient norm does not land in the
        # pose model's `train/grad_norm`
        self.optim_wrapper.message_hub = MessageHub(f'afl_critic_{id(self)}')
        if isinstance(param_scheduler, dict):
            param_scheduler = [param_scheduler]
        self.schedulers = [
            PARAM_SCHEDULERS.build(
                dict(s), default_args=dict(optimizer=self.optim_wrapper))
            for s in param_scheduler or []
        ]
        self._warned_nonfinite = False

    @property
    def lr(self) -> float:
        """The critic's current learning rate (its first param group)."""
        return self.optim_wrapper.get_lr()['lr'][0]

    def step_schedulers(self, by_epoch: bool) -> None:
        """Step the schedulers of the given kind."""
        for scheduler in self.schedulers:
            if scheduler.by_epoch == by_epoch:
                scheduler.step()

    def step(self) -> Optional[Dict[str, float]]:
        """Train the critic on the last training batch: ``n_critic`` steps
        of the loss's critic objective, each a backward pass of the optim
        wrapper (which applies the update every ``accumulative_counts``
        passes, after ``clip_grad``) with gradients averaged over DDP
        ranks. An update whose averaged gradients are not finite is
        skipped (the same decision on every rank).

        A batch in which any sample (on any rank) has a non-finite value in
        the head's tensors or topologies never reaches the critic: all of
        its steps are skipped before anything is drawn from the random
        generator, with a warning the first time, so the critic continues
        as if the batch had never been seen (as the AMP scaler does for the
        pose model).

        Returns:
            dict or None: ``None`` without a pending batch. Else of the last
            step, before its update (absent when the batch was skipped):
            ``critic_loss``, ``wasserstein`` (``E[d(t(y))] -
            E[d(t(y'))]``), ``gradient_penalty``, ``gp_grad_norm``,
            ``drift``, ``score_{real,fake}_{mean,min,max}``,
            ``score_offset``; of the batch: ``difficulty_{mean,min,max}``,
            ``ess`` (the weights' effective sample size),
            ``nonfinite_samples`` (summed over ranks); of the steps:
            ``skipped_critic_steps`` (for any reason) and
            ``nonfinite_steps`` (for non-finite gradients).
        """
        batch = self.loss.pop_critic_batch()
        if batch is None:
            return None
        difficulty = batch['difficulty']
        stats = dict(
            difficulty_mean=difficulty.mean(),
            difficulty_min=difficulty.min(),
            difficulty_max=difficulty.max(),
            ess=effective_sample_size(batch['weight']))
        nonfinite = batch['nonfinite'].clone()
        if get_world_size() > 1:
            all_reduce(nonfinite)  # the same decision on every rank
        nonfinite_steps = 0
        if nonfinite > 0:
            skipped = self.loss.n_critic
            if not self._warned_nonfinite:
                warnings.warn(
                    f'{type(self.loss).__name__}: {int(nonfinite)} '
                    'sample(s) of this batch have a non-finite '
                    f'{self.loss.adapter.nonfinite_what} or keypoint '
                    'topology (e.g. an fp16 overflow under --amp); the '
                    'critic is not trained on this batch (counted in '
                    'afl_skipped_critic_steps). Warned once.')
                self._warned_nonfinite = True
        else:
            critic_stats, nonfinite_steps = self._train(
                batch['real'], batch['fake'])
            stats = dict(critic_stats, **stats)
            skipped = nonfinite_steps
        values = torch.stack([v.detach().double() for v in stats.values()])
        return dict(
            zip(stats, values.tolist()),
            nonfinite_samples=int(nonfinite),
            skipped_critic_steps=skipped,
            nonfinite_steps=nonfinite_steps)

    def _objective(self, real: Tensor,
                   fake: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
        """The critic loss of one step and its parts (in float32: the
        critic computes outside autocast, see ``CriticRef``)."""
        loss, batch = self.loss, real.shape[0]
        alpha = torch.rand(batch, device=real.device)
        norms = gradient_norms(loss.critic_ref.given(real), real, fake, alpha)
        penalty = ((norms - 1)**2).mean()
        d_real, d_fake = loss.critic_ref.given(torch.cat([real, real]))(
            torch.cat([real, fake])).split(batch)
        wasserstein = d_real.mean() - d_fake.mean()
        drift = 0.5 * (d_real.pow(2).mean() + d_fake.pow(2).mean())
        objective = (-wasserstein + loss.gp_weight * penalty +
                     loss.drift_weight * drift)
        return objective, dict(
            critic_loss=objective,
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

    def _train(self, real: Tensor,
               fake: Tensor) -> Tuple[Dict[str, Tensor], int]:
        wrapper, skipped = self.optim_wrapper, 0
        params: List[Tensor] = list(self.critic.parameters())
        for _ in range(self.loss.n_critic):
            objective, stats = self._objective(real, fake)
            wrapper.backward(wrapper.scale_loss(objective))
            if not wrapper.should_update():
                continue
            if get_world_size() > 1:
                for param in params:
                    all_reduce(param.grad, op='mean')
            if torch.stack([p.grad.isfinite().all() for p in params]).all():
                wrapper.step()
            else:
                skipped += 1
            wrapper.zero_grad()
        return stats, skipped

    def state_dict(self) -> dict:
        """The critic, its optimizer (wrapper) and its schedulers."""
        return dict(
            critic=self.critic.state_dict(),
            optimizer=self.optim_wrapper.state_dict(),
            param_schedulers=[s.state_dict() for s in self.schedulers])

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`; a state saved before the critic had
        schedulers (no ``param_schedulers``) leaves them as built."""
        self.critic.load_state_dict(state['critic'])
        self.optim_wrapper.load_state_dict(state['optimizer'])
        saved: Sequence[dict] = state.get('param_schedulers') or []
        for scheduler, scheduler_state in zip(self.schedulers, saved):
            scheduler.load_state_dict(scheduler_state)
