"""The critic as an MMEngine citizen and AFL's extension point: the critic's
optimizer wrapper honours ``clip_grad``, ``accumulative_counts`` and a
``param_scheduler``, its learning rate is logged, its state (schedulers
included) goes through checkpoints, a plain run computes no diagnostics,
and AFL is added to a new head family by writing its adapter alone."""
import gc
import weakref
from types import SimpleNamespace
from typing import Optional

import pytest
import torch
from mmengine.logging import MessageHub
from mmpose.registry import MODELS
from torch import Tensor, nn

import mmpose_afl  # noqa: F401
from mmpose_afl.engine.afl_critic_trainer import AFLCriticTrainer
from mmpose_afl.engine.hooks.afl_critic_hook import AFLCriticHook
from mmpose_afl.models.losses.afl_adapters import KeypointAdapter, Keypoints
from mmpose_afl.models.losses.afl_loss import AdversarialFocalLoss
from tests.test_models.test_losses.test_afl_loss import batch


def afl(**kwargs):
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type='AFLHeatmapLoss',
            critic=dict(type='AFLCritic', num_keypoints=3, channels=(4, )),
            **kwargs)).train()


def params(module):
    return [p.detach().clone() for p in module.parameters()]


def moved(before, module):
    return sum((a - p).norm()**2
               for a, p in zip(before, module.parameters())).sqrt().item()


def test_clip_grad_bounds_the_critic_update():
    """SGD with lr 1: the update is the (clipped) gradient, so its norm is
    the clip's max_norm when clipping, more without."""
    output, target, weights = batch()
    updates = []
    for clip in (None, dict(max_norm=1e-3)):
        loss = afl()
        wrapper = dict(optimizer=dict(type='SGD', lr=1.), clip_grad=clip)
        trainer = AFLCriticTrainer(loss, wrapper)
        before = params(loss.critic)
        loss(output, target, weights)
        trainer.step()
        updates.append(moved(before, loss.critic))
    assert updates[0] > 1e-2
    assert updates[1] == pytest.approx(1e-3, rel=1e-3)


def test_the_critic_step_releases_the_batch():
    """After the critic step the loss holds no reference to the batch's
    head outputs or targets (they would otherwise stay allocated through
    the next iteration's forward pass)."""
    output, target, weights = batch()
    loss = afl()
    trainer = AFLCriticTrainer(loss)
    loss(output, target, weights)
    assert loss.last_samples is not None
    assert trainer.step() is not None
    assert loss.last_samples is None and loss.critic_batch is None
    released = [weakref.ref(output), weakref.ref(target)]
    del output, target
    gc.collect()
    assert all(ref() is None for ref in released)


def test_accumulative_counts_update_every_second_batch():
    """With accumulative_counts=2 the critic updates once per two batches,
    by the mean of their gradients (SGD: the sum of two half steps)."""
    output, target, weights = batch()
    loss = afl()
    sgd = dict(optimizer=dict(type='SGD', lr=.5))
    trainer = AFLCriticTrainer(loss, dict(sgd, accumulative_counts=2))
    twin = afl()
    reference = AFLCriticTrainer(twin, sgd)
    before = params(loss.critic)
    torch.manual_seed(1)
    loss(output, target, weights)
    trainer.step()
    assert moved(before, loss.critic) == 0  # accumulated, not applied
    torch.manual_seed(2)
    loss(output, target, weights)
    trainer.step()
    # the reference: each batch's gradient at the same (initial) weights,
    # applied at half the learning rate, summed
    grads = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        twin(output, target, weights)
        pending = twin.pop_critic_batch()
        objective, _ = reference._objective(pending['real'], pending['fake'])
        grads.append(
            torch.autograd.grad(objective, list(twin.critic.parameters())))
    for p, start, g1, g2 in zip(loss.critic.parameters(), before, *grads):
        torch.testing.assert_close(p.detach(), start - .5 * (g1 + g2) / 2)


def test_the_hook_takes_accumulation_from_the_pose_optim_wrapper():
    model = nn.ModuleDict(
        dict(
            head=MODELS.build(
                dict(
                    type='HeatmapHead',
                    in_channels=4,
                    out_channels=3,
                    deconv_out_channels=None,
                    loss=dict(
                        type='AFLHeatmapLoss',
                        critic=dict(type='AFLCritic', num_keypoints=3))))))
    hook = AFLCriticHook(optim_wrapper=dict(clip_grad=dict(max_norm=1.)))
    cfg = dict(
        optim_wrapper=dict(optimizer=dict(type='Adam'), accumulative_counts=4))
    hook.before_run(SimpleNamespace(model=model, cfg=cfg))
    wrapper = hook.trainers[0].optim_wrapper
    assert wrapper._accumulative_counts == 4
    assert wrapper.clip_grad_kwargs == dict(max_norm=1.)
    # the loss's critic_optimizer is the optimizer
    assert type(wrapper.optimizer).__name__ == 'Adam'
    assert wrapper.get_lr()['lr'] == [1e-4]


def _runner(hook, loss):
    hub = MessageHub.get_instance('test_afl_critic_trainer')
    model = nn.ModuleDict(dict(loss=loss, backbone=nn.Linear(1, 1)))
    return SimpleNamespace(
        message_hub=hub, model=model, cfg={}, iter=0, max_iters=10)


def test_a_critic_scheduler_sets_the_logged_learning_rate():
    """LinearLR from 0.5 to 1 over iterations 0-2: the critic steps at lr
    0.5e-4, 0.75e-4, 1e-4; each is logged as train/afl_critic_lr."""
    output, target, weights = batch()
    loss = afl()
    hook = AFLCriticHook(
        param_scheduler=dict(
            type='LinearLR', start_factor=.5, by_epoch=False, begin=0, end=3))
    runner = _runner(hook, loss)
    hook.before_run(runner)
    hook.before_train(runner)
    logged = []
    for _ in range(3):
        loss(output, target, weights)
        hook.after_train_iter(runner, 0)
        logged.append(
            runner.message_hub.get_scalar('train/afl_critic_lr').current())
        assert runner.message_hub.get_scalar(
            'train/afl_critic_loss').current() > 0
    assert logged == pytest.approx([.5e-4, .75e-4, 1e-4])
    # the scheduler's state goes through the checkpoint
    checkpoint = {}
    hook.before_save_checkpoint(runner, checkpoint)
    state = checkpoint['afl_critic'][0]
    saved = state['param_schedulers'][0]
    fresh = AFLCriticHook(
        param_scheduler=dict(
            type='LinearLR', start_factor=.5, by_epoch=False, begin=0, end=3))
    fresh_runner = _runner(fresh, afl())
    fresh.before_run(fresh_runner)
    trainer = fresh.trainers[0]
    assert trainer.schedulers[0].state_dict() != saved
    fresh.after_load_checkpoint(fresh_runner, checkpoint)
    assert trainer.schedulers[0].state_dict() == saved
    assert trainer.lr == pytest.approx(1e-4)
    # a checkpoint saved before the critic had schedulers still loads
    del state['param_schedulers']
    fresh.after_load_checkpoint(fresh_runner, checkpoint)


def test_a_plain_run_computes_no_diagnostics(monkeypatch):
    """Without num_tracked / tracked_ids neither the loss nor the hook
    computes argmax peaks, offsets or OKS errors."""
    from mmpose_afl.evaluation import sample_oks

    def forbidden(*args, **kwargs):
        raise AssertionError('a diagnostic was computed')

    for name in ('heatmap_peaks', 'keypoint_offsets', 'oks_error',
                 'sample_diagnostics', 'sample_oracle',
                 'mean_keypoint_distance'):
        monkeypatch.setattr(sample_oks, name, forbidden)
    output, target, weights = batch()
    loss = afl()
    hook = AFLCriticHook()
    assert hook.recorder is None
    runner = _runner(hook, loss)
    hook.before_run(runner)
    hook.before_train(runner)
    for _ in range(2):
        loss(output, target, weights)
        hook.after_train_iter(runner, 0, data_batch=dict(data_samples=[]))


# ------------------------------------------------- AFL on a new head family
class ToyPointHead(nn.Module):
    """A head family AFL does not know: K points [B, K, 2] in [0, 1] of a
    (W, H) input, with a plain L1 loss ``(pred, target, weights)``."""

    def __init__(self, num_points: int, loss: dict) -> None:
        super().__init__()
        self.num_points = num_points
        self.loss_module = MODELS.build(loss)


class ToyPointAdapter(KeypointAdapter):
    """All it takes to add AFL to the toy head."""
    family = 'toy'
    what = 'points'
    nonfinite_what = 'point'
    head_types = ('ToyPointHead', )
    head_k_field = 'num_points'
    size = (48., 64.)

    def base_inputs(self,
                    pred: Tensor,
                    target: Tensor,
                    weights: Optional[Tensor] = None):
        return (pred, target, weights), {}

    def keypoints(self,
                  pred: Tensor,
                  target: Tensor,
                  weights: Optional[Tensor] = None) -> Keypoints:
        labelled = weights > 0
        scale = pred.new_tensor(self.size)
        return Keypoints(pred.detach() * scale, labelled,
                         target.detach() * scale, labelled, labelled,
                         self.size, (pred, target))


@MODELS.register_module(force=True)
class ToyL1Loss(nn.Module):
    loss_weight = 1.

    def forward(self, pred, target, weights):
        return ((pred - target).abs() * weights[..., None]).mean()


@MODELS.register_module(force=True)
class AFLToyLoss(AdversarialFocalLoss):
    adapter_type = ToyPointAdapter

    def forward(self, pred, target, weights=None):
        return self.afl(pred, target, weights)


def test_afl_on_a_new_head_family_needs_only_its_adapter():
    head = ToyPointHead(
        5,
        dict(
            type='AFLToyLoss',
            base_loss=dict(type='ToyL1Loss'),
            critic=dict(type='AFLCritic', num_keypoints=5)))
    loss = head.loss_module
    hook = AFLCriticHook()
    runner = _runner(hook, head)
    hook.before_run(runner)  # binds the loss to its head
    hook.before_train(runner)
    gen = torch.Generator().manual_seed(0)
    pred = torch.rand(4, 5, 2, generator=gen, requires_grad=True)
    target, weights = torch.rand(4, 5, 2, generator=gen), torch.ones(4, 5)
    value = loss.train()(pred, target, weights)
    # the stock loss, re-weighted per sample
    per_sample = ((pred - target).abs() * weights[..., None]).mean((1, 2))
    weight = loss.last_samples['weight']
    torch.testing.assert_close(value, (weight * per_sample).mean())
    assert len(set(weight.tolist())) == 4  # per sample
    value.backward()
    hook.after_train_iter(runner, 0)
    assert runner.message_hub.get_scalar('train/afl_critic_loss').current() > 0
    # its head is checked like the built-in families'
    with pytest.raises(ValueError, match='num_points'):
        hook.before_run(
            _runner(
                hook,
                ToyPointHead(
                    4,
                    dict(
                        type='AFLToyLoss',
                        base_loss=dict(type='ToyL1Loss'),
                        critic=dict(type='AFLCritic', num_keypoints=5)))))
