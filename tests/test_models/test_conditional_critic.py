"""AFL with the conditional critic: its scores against a numpy
re-derivation for fixed weights, the difficulty and weights AFL makes of
them, the critic loss with the gradient penalty on the candidate only,
non-finite batches, the state through the hook's checkpoint, and 2-process
DDP keeping the critic identical."""
import io
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from tests.afl_helpers import critic_step, trainer_of
from tests.e2e import (REPO, assert_same_tensors, rank_states, run_dist_train,
                       short_schedule, with_probe)
from tests.test_models.test_losses.test_afl_loss import batch, numpy_topology

CONFIGS = ('configs/afl_cond/'
           'td-hm_res18_afl-cond-1xb16-20e_synthetic-coco-128x96.py',
           'configs/afl_cond/td-hm_res18_afl-cond-1xb16-20e_'
           'synthetic-coco-wholebody-128x96.py')


def fixed_critic(k=3):
    """A one-block conditional critic (4 -> 1 channels) with set weights."""
    from mmpose_afl.models.afl_conditional_critic import AFLConditionalCritic
    critic = AFLConditionalCritic(num_keypoints=k, channels=(1, ))
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for p in critic.parameters():
            p.copy_(torch.randn(p.shape, generator=gen))
    return critic


def numpy_critic(critic, topology, condition):
    """Conv 3x3 / stride 2 / padding 1, LeakyReLU 0.2, linear: by hand."""
    conv, linear = critic.features[0], critic.score
    weight, bias = conv.weight.detach().numpy(), conv.bias.detach().numpy()
    v = linear.weight.detach().numpy()[0]
    x = np.concatenate([topology, condition], axis=1)
    b, _, k, _ = x.shape
    size = (k + 1) // 2
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    scores = []
    for n in range(b):
        out = np.zeros((weight.shape[0], size, size))
        for o in range(weight.shape[0]):
            for i in range(size):
                for j in range(size):
                    patch = padded[n, :, 2 * i:2 * i + 3, 2 * j:2 * j + 3]
                    out[o, i, j] = (weight[o] * patch).sum() + bias[o]
        out = np.where(out > 0, out, 0.2 * out)
        scores.append(out.reshape(-1) @ v)
    return np.array(scores)


def conditional_afl(k=3, **kwargs):
    from mmpose_afl.models.losses.afl_loss import AFLHeatmapLoss
    loss = AFLHeatmapLoss(
        base_loss=dict(type='KeypointMSELoss', use_target_weight=True),
        critic=dict(
            type='AFLConditionalCritic', num_keypoints=k, channels=(1, )),
        **kwargs)
    critic = fixed_critic(k)
    loss.critic.load_state_dict(critic.state_dict())
    return loss.train()


# ------------------------------------------------------------- the critic
def test_scores_of_a_fixed_critic_by_hand():
    critic = fixed_critic()
    gen = torch.Generator().manual_seed(0)
    topology, condition = (
        torch.rand(4, 2, 3, 3, generator=gen) for _ in range(2))
    np.testing.assert_allclose(
        critic(topology, condition).detach().numpy(),
        numpy_critic(critic, topology.numpy(), condition.numpy()),
        rtol=1e-5,
        atol=1e-6)
    # the condition matters: another one, another score
    assert not torch.allclose(
        critic(topology, condition), critic(topology, condition.flip(0)))


def test_critic_rejects_bad_inputs():
    critic = fixed_critic()
    good = torch.rand(2, 2, 3, 3)
    with pytest.raises(ValueError, match='num_keypoints'):
        critic(torch.rand(2, 2, 4, 4), good)
    with pytest.raises(ValueError, match='condition'):
        critic(good, torch.rand(2, 4, 3, 3))
    with pytest.raises(ValueError, match='one condition per candidate'):
        critic(good, good[:1])


@pytest.mark.parametrize('mode', ['anchored', 'paper'])
def test_difficulty_and_weights_by_hand(mode):
    output, target, weights = batch()
    loss = conditional_afl(difficulty=mode)
    value = loss(output, target, weights)
    fake = numpy_topology(output.numpy(), 0.1, weights.numpy())
    real = numpy_topology(target.numpy(), 0.1, weights.numpy())
    logit = -numpy_critic(loss.critic, fake, real)
    if mode == 'anchored':
        logit += numpy_critic(loss.critic, real, real)
    difficulty = 1 / (1 + np.exp(-logit))
    weight = difficulty / difficulty.mean()
    samples = loss.last_samples
    np.testing.assert_allclose(samples['difficulty'], difficulty, rtol=1e-5)
    np.testing.assert_allclose(samples['weight'], weight, rtol=1e-5)
    per_sample = (((output - target)**2) *
                  weights[:, :, None, None]).mean(dim=(1, 2, 3)).numpy()
    assert value.item() == pytest.approx(
        (weight * per_sample).mean(), rel=1e-5)
    assert len(set(np.round(difficulty, 6))) > 1


def test_critic_loss_and_the_penalty_on_the_candidate_only():
    """One critic step: real pairs (t(y) | t(y)), fake pairs (t(y') | t(y)),
    and the gradient norm at the candidate mix with the condition t(y)
    held fixed, recomputed by autograd sample by sample."""
    from mmpose_afl.models.afl_critic import heatmap_topology
    output, target, weights = batch()
    loss = conditional_afl(drift_weight=0.5)
    loss(output, target, weights)
    real = heatmap_topology(target, 0.1, weights)
    fake = heatmap_topology(output, 0.1, weights)
    critic = fixed_critic()
    torch.manual_seed(3)
    alpha = torch.rand(4)
    norms = []
    for b in range(4):
        mixed = (alpha[b] * real[b] + (1 - alpha[b]) * fake[b])[None]
        mixed.requires_grad_(True)
        grad, = torch.autograd.grad(critic(mixed, real[b:b + 1]).sum(), mixed)
        norms.append(grad.norm())
    penalty = ((torch.stack(norms) - 1)**2).mean()
    d_real, d_fake = critic(real, real), critic(fake, real)
    wasserstein = d_real.mean() - d_fake.mean()
    drift = 0.5 * (d_real.pow(2).mean() + d_fake.pow(2).mean())
    torch.manual_seed(3)
    stats = critic_step(loss)
    assert stats['gradient_penalty'] == pytest.approx(penalty.item(), rel=1e-5)
    assert stats['wasserstein'] == pytest.approx(wasserstein.item(), rel=1e-5)
    assert stats['critic_loss'] == pytest.approx(
        (-wasserstein + 10 * penalty + 0.5 * drift).item(), rel=1e-5)
    assert stats['score_real_mean'] == pytest.approx(
        d_real.mean().item(), rel=1e-5)


def test_a_critic_blind_to_the_candidate_has_penalty_one():
    """With the candidate's input weights 0 the score depends on the
    condition alone: its gradient in the candidate is 0, so the penalty is
    (0 - 1)^2 = 1 exactly; a penalty over the condition too would not be."""
    output, target, weights = batch()
    loss = conditional_afl()
    with torch.no_grad():
        loss.critic.features[0].weight[:, :2] = 0
    loss(output, target, weights)
    stats = critic_step(loss)
    assert stats['gradient_penalty'] == pytest.approx(1.)
    assert stats['gp_grad_norm'] == 0.


@pytest.mark.parametrize('pixel', [math.inf, math.nan])
def test_a_nonfinite_batch_gives_finite_weights_and_no_critic_step(pixel):
    output, target, weights = batch()
    output[0, 0, 2, 2] = pixel
    loss = conditional_afl()
    before = [p.detach().clone() for p in loss.critic.parameters()]
    loss(output, target, weights)
    assert loss.last_samples['weight'].isfinite().all()
    with pytest.warns(UserWarning, match='non-finite'):
        stats = critic_step(loss)
    assert stats['skipped_critic_steps'] == 1
    assert stats['nonfinite_samples'] == 1
    assert all(
        torch.equal(a, p) for a, p in zip(before, loss.critic.parameters()))


def test_state_goes_through_the_hooks_checkpoint():
    """Saved by AFLCriticHook.before_save_checkpoint, restored by
    after_load_checkpoint into a fresh loss: the next step is identical."""
    from unittest.mock import Mock

    from mmpose_afl.engine.hooks.afl_critic_hook import AFLCriticHook
    output, target, weights = batch()
    trained = conditional_afl()
    for _ in range(2):
        trained(output, target, weights)
        critic_step(trained)
    checkpoint = {}
    saver = AFLCriticHook()
    saver.trainers = [trainer_of(trained)]
    saver.before_save_checkpoint(Mock(), checkpoint)
    buffer = io.BytesIO()  # through a file, as a checkpoint goes
    torch.save(checkpoint, buffer)
    buffer.seek(0)
    checkpoint = torch.load(buffer, weights_only=False)
    fresh = conditional_afl()
    assert not torch.equal(fresh.critic.score.weight,
                           trained.critic.score.weight)
    loader = AFLCriticHook()
    loader.trainers = [trainer_of(fresh)]
    loader.after_load_checkpoint(Mock(), checkpoint)
    assert assert_same_tensors(fresh.critic.state_dict(),
                               trained.critic.state_dict()) == 3
    optimizer = trainer_of(fresh).optim_wrapper.state_dict()
    assert optimizer['state'][0]['step'] == 2
    steps = []
    for loss in (trained, fresh):
        loss(output, target, weights)
        torch.manual_seed(5)
        steps.append(critic_step(loss))
    assert steps[0] == steps[1]
    assert torch.equal(fresh.critic.score.weight, trained.critic.score.weight)


def test_ddp_keeps_the_conditional_critic_identical(synthetic_coco, tmp_path):
    probe = with_probe(CONFIGS[0], tmp_path)
    work_dir = tmp_path / 'ddp'
    # the recorder on (num_tracked): its records are checked below
    log = run_dist_train(
        probe,
        work_dir,
        nproc=2,
        data_root=synthetic_coco,
        cfg_options=short_schedule(max_epochs=1, batch_size=2) +
        ['custom_hooks.1.num_tracked=16'])
    assert 'Distributed training: True' in log
    assert 'Epoch(train) [1][2/' in log
    start0, _ = rank_states(work_dir, when='start')
    rank0, rank1 = rank_states(work_dir)
    assert assert_same_tensors(rank0['afl_critic'], rank1['afl_critic']) > 8
    assert rank0['afl_critic'][0]['optimizer']['state']
    # the critic did learn (it is the conditional one: 4 input channels)
    weight = rank0['afl_critic'][0]['critic']['features.0.weight']
    assert weight.shape[1] == 4
    assert not torch.equal(
        weight, start0['afl_critic'][0]['critic']['features.0.weight'])
    # the hook recorded the oracle's fields, and the report reads them
    records = [
        json.loads(line) for rank in (0, 1) for line in (
            work_dir /
            f'afl_difficulty_rank{rank}.jsonl').read_text().splitlines()
    ]
    labelled = [r for r in records if r['labels']]
    assert labelled and all(
        math.isfinite(r['base_loss']) and r['base_loss'] > 0
        and 0 <= r['oks_error'] <= 1 for r in labelled)
    proc = subprocess.run(
        [sys.executable, 'tools/afl_difficulty_report.py',
         str(work_dir)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)))  # the probe's import
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = json.loads((work_dir / 'afl_difficulty_report.json').read_text())
    assert all(report['signals'][name]['samples'] == report['samples'] > 0
               for name in ('difficulty', 'base_loss', 'oks_error'))
    assert 'OKS error (oracle)' in proc.stdout
