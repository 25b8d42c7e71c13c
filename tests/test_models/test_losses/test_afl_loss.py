"""AFL's pieces against hand-computed values and plain numpy re-derivations:
topology extractor, critic size, gradient penalty, the difficulty (anchored
and the paper's Eq. 4), weight normalisation, the label-count scaling, the
critic loss with its drift penalty, the logged statistics (effective sample
size, score range) and build-time errors."""
import math
import warnings

import numpy as np
import pytest
import torch
from mmpose.registry import MODELS
from mmpose.testing import get_packed_inputs
from torch import nn

import mmpose_afl  # noqa: F401
from mmpose_afl.engine.afl_critic_trainer import gradient_norms
from mmpose_afl.evaluation.sample_oks import keypoint_peak_error
from mmpose_afl.models.afl_critic import (AFLCritic, heatmap_topology,
                                          keypoint_centroids)
from mmpose_afl.models.losses.afl_loss import AFLHeatmapLoss
from mmpose_afl.models.losses.reweighted_loss import (effective_sample_size,
                                                      finite_difficulty)
from tests.afl_helpers import critic_step, set_critic, trainer_of


def per_sample(loss, *head_inputs, **head_kwargs):
    """The per-sample base losses of a batch, as the loss computes them."""
    inputs, kwargs = loss.adapter.base_inputs(*head_inputs, **head_kwargs)
    return loss.per_sample_losses(*inputs, **kwargs)


def dots(points, height=6, width=8, k=None):
    """[1, K, H, W] heatmaps with a single 1 at each (x, y); None = empty."""
    heatmaps = torch.zeros(1, k or len(points), height, width)
    for i, point in enumerate(points):
        if point is not None:
            heatmaps[0, i, point[1], point[0]] = 1
    return heatmaps


# --------------------------------------------------------------- topology
def test_topology_of_three_hand_placed_keypoints():
    # (0,0), (4,0), (0,3) on an 8x6 map: ||(W,H)|| = 10, pair distances
    # 4, 3, 5; centre g = (4/3, 1)
    topo = heatmap_topology(dots([(0, 0), (4, 0), (0, 3)]))[0]
    planar = torch.tensor([[1, .6, .7], [.6, 1, .5], [.7, .5, 1]])
    torch.testing.assert_close(topo[0], planar)
    # rays from g: v0 = (-4/3, -1), v1 = (8/3, -1), v2 = (-4/3, 2)
    # |v0| = 5/3, |v1| = sqrt(73)/3, |v2| = sqrt(52)/3
    cos01 = (-32 / 9 + 1) / (5 / 3 * math.sqrt(73) / 3)  # -23 / (5 sqrt 73)
    cos02 = (16 / 9 - 2) / (5 / 3 * math.sqrt(52) / 3)  # -2 / (5 sqrt 52)
    cos12 = (-32 / 9 - 2) / (math.sqrt(73) / 3 * math.sqrt(52) / 3)
    angular = 0.5 + 0.5 * torch.tensor([[1, cos01, cos02], [cos01, 1, cos12],
                                        [cos02, cos12, 1]])
    torch.testing.assert_close(topo[1], angular)
    assert cos01 == pytest.approx(-23 / (5 * math.sqrt(73)))


def test_missing_keypoints_give_zero_rows_and_columns():
    heatmaps = dots([(0, 0), None, (4, 0), (0, 3)])
    topo = heatmap_topology(heatmaps)[0]
    assert topo[:, 1].abs().sum() == 0 and topo[:, :, 1].abs().sum() == 0
    # the others are those of the three-keypoint case
    three = heatmap_topology(dots([(0, 0), (4, 0), (0, 3)]))[0]
    keep = torch.tensor([0, 2, 3])
    torch.testing.assert_close(topo[:, keep][:, :, keep], three)
    # a keypoint weight of 0 makes a visible keypoint missing too
    weights = torch.tensor([[1., 1., 0., 1.]])
    topo = heatmap_topology(heatmaps, keypoint_weights=weights)[0]
    assert topo[:, 2].abs().sum() == 0 and topo[:, :, 2].abs().sum() == 0


def test_centroid_is_intensity_weighted_and_thresholded():
    heatmaps = torch.zeros(1, 1, 4, 6)
    heatmaps[0, 0, 1, 1] = 1.0
    heatmaps[0, 0, 1, 4] = 0.5  # x = (1*1 + 0.5*4) / 1.5 = 2
    heatmaps[0, 0, 3, 5] = 0.05  # below the 0.1 threshold: ignored
    heatmaps[0, 0, 0, 0] = -3.0  # negative: ignored
    centroids, present = keypoint_centroids(heatmaps, threshold=0.1)
    torch.testing.assert_close(centroids[0, 0], torch.tensor([2., 1.]))
    assert present.tolist() == [[True]]
    _, present = keypoint_centroids(heatmaps, threshold=2.0)
    assert present.tolist() == [[False]]


@pytest.mark.parametrize(
    'points',
    [
        [None, None, None],  # nothing found
        [(2, 2), None, None],  # a single keypoint: it lies on g
        [(2, 2), (2, 2), (2, 2)],  # all on top of each other
        [(1, 1), (3, 3), (2, 2)],  # the middle one lies on g
    ])
def test_degenerate_topologies_are_finite(points):
    heatmaps = dots(points).requires_grad_(True)
    topo = heatmap_topology(heatmaps)
    assert torch.isfinite(topo).all()
    assert ((topo >= 0) & (topo <= 1)).all()


def numpy_topology(heatmaps, threshold, weights=None):
    """Plain-numpy re-derivation of Appendix A.2, one keypoint at a time."""
    batch, num, height, width = heatmaps.shape
    ys, xs = np.mgrid[:height, :width]
    out = np.zeros((batch, 2, num, num))
    for b in range(batch):
        cents, present = [], []
        for k in range(num):
            kept = np.where(heatmaps[b, k] >= threshold, heatmaps[b, k], 0)
            mass = kept.sum()
            present.append(mass > 1e-12
                           and (weights is None or weights[b, k] > 0))
            cents.append(
                np.array([(kept * xs).sum(), (kept * ys).sum()]) /
                mass if present[-1] else np.zeros(2))
        centre = np.mean(
            [c for c, p in zip(cents, present) if p] or [0], axis=0)
        for i in range(num):
            for j in range(num):
                if not (present[i] and present[j]):
                    continue
                out[b, 0, i,
                    j] = 1 - np.linalg.norm(cents[i] - cents[j]) / np.hypot(
                        width, height)
                vi, vj = cents[i] - centre, cents[j] - centre
                norms = np.linalg.norm(vi) * np.linalg.norm(vj)
                cos = vi @ vj / norms if norms > 1e-12 else 0.0
                out[b, 1, i, j] = 0.5 + 0.5 * cos
    return out


def test_topology_matches_numpy_on_random_heatmaps():
    rng = np.random.default_rng(0)
    heatmaps = rng.normal(0, 0.3, (3, 5, 7, 9)).astype(np.float32)
    heatmaps[1, 2] = -1  # a missing channel
    weights = np.ones((3, 5), np.float32)
    weights[2, 4] = 0
    topo = heatmap_topology(
        torch.from_numpy(heatmaps), 0.2, torch.from_numpy(weights))
    np.testing.assert_allclose(
        topo.numpy(), numpy_topology(heatmaps, 0.2, weights), atol=1e-5)


def test_planar_diagonal_is_exactly_one_for_many_keypoints():
    # K = 133 (WholeBody): every present keypoint is at distance 0 from
    # itself, so planar(i, i) = 1 to float precision, not ~1 - 1e-4
    rng = np.random.default_rng(1)
    heatmaps = rng.uniform(0, 1, (2, 133, 64, 48)).astype(np.float32)
    topo = heatmap_topology(torch.from_numpy(heatmaps), 0.5)
    diagonal = topo[:, 0].diagonal(dim1=1, dim2=2)
    assert torch.equal(diagonal, torch.ones_like(diagonal))


# ----------------------------------------------------------------- critic
@pytest.mark.parametrize(
    'k,params',
    [
        # convs 2->16->32->64->128 (3x3, +bias): 304 + 4640 + 18496 + 73856;
        # K=17: 17->9->5->3->2, linear (no bias) 128*2*2 = 512;
        # K=133: 133->67->34->17->9, linear 128*9*9 = 10368
        (17, 97296 + 512),
        (133, 97296 + 10368),
    ])
def test_critic_size_matches_the_documented_count(k, params):
    critic = AFLCritic(num_keypoints=k)
    assert sum(p.numel() for p in critic.parameters()) == params
    assert f'{params:,}' in AFLCritic.__doc__
    scores = critic(torch.rand(3, 2, k, k))
    assert scores.shape == (3, )


def test_critic_scores_do_not_depend_on_the_batch():
    critic = AFLCritic(num_keypoints=5)
    topo = torch.rand(4, 2, 5, 5)
    torch.testing.assert_close(critic(topo)[:1], critic(topo[:1]))


def test_critic_rejects_bad_config_and_inputs():
    with pytest.raises(ValueError, match='num_keypoints'):
        AFLCritic(num_keypoints=0)
    with pytest.raises(ValueError, match='channels'):
        AFLCritic(num_keypoints=5, channels=())
    with pytest.raises(ValueError, match='critic.num_keypoints'):
        AFLCritic(num_keypoints=5)(torch.rand(1, 2, 6, 6))


# ------------------------------------------------------- gradient penalty
def test_gradient_penalty_of_a_linear_critic_is_known():
    # d(x) = w . x has gradient w everywhere: GP = (||w|| - 1)^2
    critic = nn.Sequential(nn.Flatten(), nn.Linear(8, 1, bias=False))
    with torch.no_grad():
        critic[1].weight.copy_(torch.tensor([[3., 0, 0, 0, 0, 0, 4, 0]]))
    real, fake = torch.rand(5, 2, 2, 2), torch.rand(5, 2, 2, 2)
    norms = gradient_norms(lambda x: critic(x).squeeze(1), real, fake,
                           torch.rand(5))
    torch.testing.assert_close(norms, torch.full((5, ), 5.))


def test_gradient_penalty_matches_separate_autograd():
    torch.manual_seed(0)
    critic = AFLCritic(num_keypoints=4)
    real, fake, alpha = torch.rand(3, 2, 4, 4), torch.rand(3, 2, 4, 4), \
        torch.tensor([0.0, 0.3, 1.0])
    expected = []
    for b in range(3):  # one sample at a time, by hand
        x = (alpha[b] * real[b] + (1 - alpha[b]) * fake[b])[None]
        x.requires_grad_(True)
        grad, = torch.autograd.grad(critic(x).sum(), x)
        expected.append(grad.norm())
    norms = gradient_norms(critic, real, fake, alpha)
    torch.testing.assert_close(norms, torch.stack(expected))
    norms.sum().backward()  # differentiable w.r.t. the critic (create_graph)
    assert all(p.grad is not None for p in critic.parameters())


# ------------------------------------------------------------------- loss
class PlanarSumCritic(nn.Module):
    """A fixed critic: d = scale * sum of the planar map (plus a constant)."""

    def __init__(self, num_keypoints, scale=0.1, offset=0.0):
        super().__init__()
        self.num_keypoints = num_keypoints
        self.scale, self.offset = scale, offset
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, topology):
        return self.scale * topology[:, 0].sum(dim=(1, 2)) + self.offset \
            + 0 * self.dummy


def afl(base_loss, critic=None, k=3, **kwargs):
    loss = AFLHeatmapLoss(
        base_loss=base_loss,
        critic=dict(type='AFLCritic', num_keypoints=k),
        **kwargs)
    if critic is not None:
        set_critic(loss, critic)
    return loss


def batch(seed=0, b=4, k=3, h=6, w=8):
    gen = torch.Generator().manual_seed(seed)
    target = torch.zeros(b, k, h, w)
    for i in range(b):
        for j in range(k):
            target[i, j,
                   torch.randint(h, (1, ), generator=gen),
                   torch.randint(w, (1, ), generator=gen)] = 1
    output = target * 0.8 + 0.2 * torch.rand(b, k, h, w, generator=gen)
    weights = torch.ones(b, k)
    weights[1, 2] = 0
    return output, target, weights


def numpy_afl(output,
              target,
              weights,
              mode,
              normalize,
              label_norm,
              scale=0.1,
              offset=0.0):
    """numpy re-derivation of the loss with ``PlanarSumCritic``: returns the
    difficulties, the applied weights and the per-sample MSE."""
    out, tgt, wgt = output.numpy(), target.numpy(), weights.numpy()
    fake, real = numpy_topology(out, 0.1, wgt), numpy_topology(tgt, 0.1, wgt)
    if label_norm:  # K / labelled keypoints
        factor = out.shape[1] / np.maximum(wgt.sum(axis=1), 1)
        fake, real = (t * factor[:, None, None, None] for t in (fake, real))

    def critic(topology):
        return scale * topology[:, 0].sum(axis=(1, 2)) + offset

    logit = -critic(fake) + (critic(real) if mode == 'anchored' else 0)
    difficulty = 1 / (1 + np.exp(-logit))
    weight = difficulty / difficulty.mean() if normalize else difficulty
    per_sample = (((out - tgt)**2) *
                  wgt[:, :, None, None]).mean(axis=(1, 2, 3))
    return difficulty, weight, per_sample


@pytest.mark.parametrize('mode', ['anchored', 'paper'])
@pytest.mark.parametrize('normalize', [True, False])
@pytest.mark.parametrize('label_norm', [False, True])
def test_afl_equals_numpy_recomputation(mode, normalize, label_norm):
    output, target, weights = batch()
    loss = afl(
        dict(type='KeypointMSELoss', use_target_weight=True),
        PlanarSumCritic(3, offset=0.3),
        loss_weight=2.0,
        difficulty=mode,
        normalize_weights=normalize,
        label_count_norm=label_norm)
    value = loss.train()(output, target, weights)
    difficulty, weight, per_sample = numpy_afl(
        output, target, weights, mode, normalize, label_norm, offset=0.3)
    assert value.item() == pytest.approx(
        2.0 * (weight * per_sample).mean(), rel=1e-5)
    samples = loss.last_samples
    np.testing.assert_allclose(samples['difficulty'], difficulty, rtol=1e-5)
    np.testing.assert_allclose(samples['weight'], weight, rtol=1e-5)
    assert len(set(np.round(difficulty, 6))) > 1  # really per sample


def test_anchored_difficulty_by_hand():
    # K = 2 on an 8x6 map (diagonal 10), d = 0.1 * sum(planar) + 5:
    # target (0,0), (4,0): planar sum 2 + 2 * 0.6 = 3.2;
    # prediction (0,0), (0,3): 2 + 2 * 0.7 = 3.4 -> sigmoid(0.1 * (3.2 -
    # 3.4)) = sigmoid(-0.02); the offset 5 cancels (Eq. 4: sigmoid(-5.34))
    target = dots([(0, 0), (4, 0)])
    output = dots([(0, 0), (0, 3)])
    for mode, expected in (('anchored', -0.02), ('paper', -5.34)):
        loss = afl(
            dict(type='KeypointMSELoss'),
            PlanarSumCritic(2, offset=5.),
            k=2,
            difficulty=mode)
        loss.train()(output, target)
        assert loss.last_samples['difficulty'].item() == pytest.approx(
            1 / (1 + math.exp(-expected)), rel=1e-5)
    # a perfect prediction is neither easy nor hard: 1/2 whatever the offset
    loss = afl(
        dict(type='KeypointMSELoss'), PlanarSumCritic(2, offset=5.), k=2)
    loss.train()(target, target)
    assert loss.last_samples['difficulty'].item() == 0.5


def test_label_count_norm_scales_both_topologies_by_k_over_labels():
    output, target, weights = batch()  # sample 1 has 2 of 3 labelled
    loss = afl(
        dict(type='KeypointMSELoss', use_target_weight=True),
        label_count_norm=True)
    loss.train()(output, target, weights)
    factor = torch.tensor([1., 1.5, 1., 1.]).view(-1, 1, 1, 1)
    torch.testing.assert_close(loss.critic_batch['real'],
                               factor * heatmap_topology(target, 0.1, weights))
    torch.testing.assert_close(loss.critic_batch['fake'],
                               factor * heatmap_topology(output, 0.1, weights))


def test_keypoint_peak_error_by_hand():
    # sample 0: peaks off by (3, 4) and (0, 0) -> mean 2.5; sample 1: its
    # second keypoint is unlabelled, the first is off by (1, 0) -> 1
    target = torch.cat([dots([(0, 0), (5, 5)]), dots([(2, 2), (0, 0)])])
    output = torch.cat([dots([(3, 4), (5, 5)]), dots([(3, 2), (7, 5)])])
    weights = torch.tensor([[1., 1.], [1., 0.]])
    error, labels = keypoint_peak_error(output, target, weights)
    torch.testing.assert_close(error, torch.tensor([2.5, 1.]))
    assert labels.tolist() == [2, 1]
    error, labels = keypoint_peak_error(output, target, torch.zeros(2, 2))
    assert error.tolist() == [0., 0.] and labels.tolist() == [0, 0]


@pytest.mark.parametrize(
    'weights,expected',
    [
        ([1., 1., 1., 1.], 1.),
        ([1., 0., 0., 0.], 1 / 4),
        ([1., 2., 3.], 36 / (3 * 14)),  # (1+2+3)^2 / (3 (1+4+9))
        ([0.2, 0.6], 0.64 / (2 * 0.4)),
        ([1e-30, 1e-30], 1.),  # no underflow
        ([0., 0., 0.], 0.),
        ([], 0.),
    ])
def test_effective_sample_size_by_hand(weights, expected):
    ess = effective_sample_size(torch.tensor(weights))
    assert ess.item() == pytest.approx(expected, rel=1e-6)


def test_zero_weights_and_an_empty_batch_give_no_nan():
    output, target, weights = batch()
    base = dict(type='KeypointMSELoss', use_target_weight=True)
    # Eq. 4 with d = +1e4: every difficulty underflows to exactly 0
    normalized = afl(
        base, PlanarSumCritic(3, scale=0, offset=1e4), difficulty='paper')
    value = normalized.train()(output, target, weights)
    assert normalized.last_samples['difficulty'].eq(0).all()
    # all weights 0 count as equal weights: the base loss
    torch.testing.assert_close(value,
                               MODELS.build(base)(output, target, weights))
    assert critic_step(normalized)['ess'] == 1.0
    plain = afl(
        base,
        PlanarSumCritic(3, scale=0, offset=1e4),
        difficulty='paper',
        normalize_weights=False)
    assert plain.train()(output, target, weights).item() == 0.0
    assert critic_step(plain)['ess'] == 0.0
    # an empty batch: a zero loss that still back-propagates, no critic step
    empty = output[:0].clone().requires_grad_(True)
    value = normalized.train()(empty, target[:0], weights[:0])
    value.backward()
    assert value.item() == 0.0 and normalized.last_samples is None


@pytest.mark.parametrize(
    'base_loss',
    [
        dict(type='KeypointMSELoss', use_target_weight=True, loss_weight=3.),
        dict(type='KeypointMSELoss', skip_empty_channel=True),
        dict(type='AdaptiveWingLoss', use_target_weight=True),
        dict(type='KeypointOHKMMSELoss', use_target_weight=True, topk=2),
        dict(type='HSMLoss', loss_weight=0.5),
        dict(type='WAHRLoss'),
        dict(
            type='FoWKALLoss',
            parts=dict(body=[0], face=[1, 2]),
            dense_parts=('face', ),
            num_keypoints=3),  # + its regularizer
    ])
def test_afl_with_difficulty_one_equals_the_base_loss(base_loss):
    output, target, weights = batch(seed=1)
    loss = afl(base_loss, PlanarSumCritic(3, scale=0, offset=-1e4))
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no fallback to a Python loop
        value = loss.eval()(output, target, weights)
    expected = MODELS.build(base_loss)(output, target, weights)
    torch.testing.assert_close(value, expected, rtol=1e-6, atol=1e-7)
    assert not loss._use_loop


@MODELS.register_module(force=True)
class DataDependentTestLoss(nn.Module):
    """MSE that reads a tensor value in Python: vmap cannot trace it."""
    loss_weight = 1.0

    def forward(self, output, target, target_weights=None, mask=None):
        scale = 2.0 if target.sum().item() > 2 else 1.0
        return ((output - target)**2).mean() * scale


def test_untraceable_base_loss_falls_back_to_a_loop():
    output, target, weights = batch(seed=2)
    target[0] = 0  # sample 0 gets scale 1, the others 2
    loss = afl(
        dict(type='DataDependentTestLoss'),
        PlanarSumCritic(3, scale=0, offset=-1e4))
    with pytest.warns(UserWarning, match='Python loop'):
        value = loss.eval()(output, target, weights)
    base = DataDependentTestLoss()
    expected = torch.stack(
        [base(output[b:b + 1], target[b:b + 1]) for b in range(4)]).mean()
    torch.testing.assert_close(value, expected)
    assert loss._use_loop


@pytest.mark.parametrize(
    'target_shape, weights_shape, expected',
    [
        ((4, 3, 1, 8), (4, 3), '`target` [4, 3, 1, 8]'),  # broadcast along H
        ((2, 3, 6, 8), (4, 3), '`target` [2, 3, 6, 8]'),  # another batch
        ((4, 3, 6, 8), (2, 3), '`target_weights` [2, 3]'),
    ])
@pytest.mark.parametrize(
    'base_loss',
    [
        dict(type='KeypointMSELoss', use_target_weight=True),  # through vmap
        dict(type='HSMLoss'),  # through its per_sample
    ])
def test_wrong_shapes_are_a_clear_error_not_a_vmap_one(base_loss, target_shape,
                                                       weights_shape,
                                                       expected):
    output, _, _ = batch()
    loss = afl(base_loss, PlanarSumCritic(3))
    for call in (loss.eval(), lambda *a: per_sample(loss, *a)):
        with pytest.raises(ValueError) as error:
            call(output, torch.zeros(target_shape), torch.ones(weights_shape))
        message = str(error.value)
        assert message.startswith('AFLHeatmapLoss: ') and expected in message
        assert '`output` [4, 3, 6, 8]' in message and 'vmap' not in message
    assert not loss._use_loop


@MODELS.register_module(force=True)
class FailingTestLoss(nn.Module):
    """A loss whose own computation raises (as a bug in it would), or runs
    out of memory."""
    loss_weight = 1.0
    error = RuntimeError

    def forward(self, output, target, target_weights=None):
        raise self.error('FailingTestLoss: broken')


@pytest.mark.parametrize('error', [RuntimeError, torch.cuda.OutOfMemoryError])
def test_errors_of_the_loss_itself_are_raised_without_a_loop(error):
    """Only vmap's own limitations fall back to the loop: an error that the
    loop raises too, or out-of-memory, is raised and the loss stays
    vectorised."""
    output, target, weights = batch()
    loss = afl(dict(type='FailingTestLoss'), PlanarSumCritic(3))
    loss.base_loss.error = error
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no fallback warning either
        with pytest.raises(error, match='FailingTestLoss: broken'):
            per_sample(loss, output, target, weights)
    assert not loss._use_loop


def test_difficulty_is_detached_and_critic_is_not_a_submodule():
    output, target, weights = batch()
    output.requires_grad_(True)
    loss = afl(dict(type='KeypointMSELoss', use_target_weight=True))
    value = loss.train()(output, target, weights)
    value.backward()
    assert output.grad is not None and output.grad.abs().sum() > 0
    assert all(p.grad is None for p in loss.critic.parameters())
    assert not list(loss.parameters())
    assert not any('critic' in k for k in loss.state_dict())
    # the pose gradient is the base loss's, scaled by the weights
    weight = loss.last_samples['weight']
    reference = output.detach().clone().requires_grad_(True)
    per_sample = ((reference - target)**2 *
                  weights[..., None, None]).mean(dim=(1, 2, 3))
    (weight * per_sample).mean().backward()
    torch.testing.assert_close(output.grad, reference.grad)


def test_critic_step_trains_only_the_critic():
    output, target, weights = batch()
    output.requires_grad_(True)
    loss = afl(dict(type='KeypointMSELoss', use_target_weight=True))
    loss.train()(output, target, weights).backward()
    pose_grad = output.grad.clone()
    before = [p.detach().clone() for p in loss.critic.parameters()]
    stats = critic_step(loss)
    assert set(stats) == {
        'critic_loss', 'wasserstein', 'gradient_penalty', 'gp_grad_norm',
        'drift', 'score_real_mean', 'score_real_min', 'score_real_max',
        'score_fake_mean', 'score_fake_min', 'score_fake_max', 'score_offset',
        'difficulty_mean', 'difficulty_min', 'difficulty_max', 'ess',
        'nonfinite_samples', 'skipped_critic_steps', 'nonfinite_steps'
    }
    assert 0 < stats['difficulty_min'] <= stats['difficulty_mean'] \
        <= stats['difficulty_max'] < 1
    assert stats['critic_loss'] == pytest.approx(
        -stats['wasserstein'] + 10 * stats['gradient_penalty'] +
        stats['drift'],
        rel=1e-5)
    assert stats['nonfinite_steps'] == 0
    changed = [
        not torch.equal(a, p) for a, p in zip(before, loss.critic.parameters())
    ]
    assert all(changed)
    torch.testing.assert_close(output.grad, pose_grad)  # untouched
    assert loss.critic_batch is None
    assert critic_step(loss) is None  # nothing left to train on


@pytest.mark.parametrize('drift_weight', [0., 1., 2.5])
def test_critic_loss_and_logged_scores_match_numpy(drift_weight):
    # d = 0.1 * sum(planar) + 0.7: grad_x d = 0.1 on the K*K planar entries,
    # so the gradient norm is 0.1 * K = 0.3 and GP = (0.3 - 1)^2 = 0.49
    output, target, weights = batch()
    loss = afl(
        dict(type='KeypointMSELoss', use_target_weight=True),
        PlanarSumCritic(3, offset=0.7),
        drift_weight=drift_weight)
    loss.train()(output, target, weights)
    stats = critic_step(loss)
    wgt = weights.numpy()
    d_real = 0.1 * numpy_topology(target.numpy(), 0.1,
                                  wgt)[:, 0].sum(axis=(1, 2)) + 0.7
    d_fake = 0.1 * numpy_topology(output.numpy(), 0.1,
                                  wgt)[:, 0].sum(axis=(1, 2)) + 0.7
    drift = 0.5 * ((d_real**2).mean() + (d_fake**2).mean())
    wasserstein = d_real.mean() - d_fake.mean()
    expected = dict(
        wasserstein=wasserstein,
        gradient_penalty=0.49,
        gp_grad_norm=0.3,
        drift=drift,
        critic_loss=-wasserstein + 10 * 0.49 + drift_weight * drift,
        score_real_mean=d_real.mean(),
        score_real_min=d_real.min(),
        score_real_max=d_real.max(),
        score_fake_mean=d_fake.mean(),
        score_fake_min=d_fake.min(),
        score_fake_max=d_fake.max(),
        score_offset=(d_real.mean() + d_fake.mean()) / 2)
    difficulty = 1 / (1 + np.exp(d_fake - d_real))
    weight = difficulty / difficulty.mean()
    expected.update(
        difficulty_mean=difficulty.mean(),
        difficulty_min=difficulty.min(),
        difficulty_max=difficulty.max(),
        ess=weight.sum()**2 / (4 * (weight**2).sum()))
    for name, value in expected.items():
        assert stats[name] == pytest.approx(value, rel=1e-5, abs=1e-6), name


class LinearCritic(nn.Module):
    """d(x) = w . x + b, with a bias that only the drift penalty moves."""

    def __init__(self, num_keypoints):
        super().__init__()
        self.num_keypoints = num_keypoints
        self.linear = nn.Linear(2 * num_keypoints**2, 1)

    def forward(self, topology):
        return self.linear(topology.flatten(1)).squeeze(1)


@pytest.mark.parametrize('drift_weight', [0., 1., 3.])
def test_drift_penalty_pulls_the_score_offset_to_zero(drift_weight):
    # W and GP do not depend on b, so one SGD step moves it by
    # -lr * eps * (mean d(real) + mean d(fake))
    torch.manual_seed(0)
    output, target, weights = batch()
    critic = LinearCritic(3)
    with torch.no_grad():
        critic.linear.bias.fill_(2.)
    loss = afl(
        dict(type='KeypointMSELoss', use_target_weight=True),
        critic,
        drift_weight=drift_weight)
    trainer_of(loss, optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.1)))
    loss.train()(output, target, weights)
    w = critic.linear.weight.detach().numpy()[0]
    wgt = weights.numpy()
    d_real = numpy_topology(target.numpy(), 0.1, wgt).reshape(4, -1) @ w + 2
    d_fake = numpy_topology(output.numpy(), 0.1, wgt).reshape(4, -1) @ w + 2
    critic_step(loss)
    assert critic.linear.bias.item() == pytest.approx(
        2 - 0.1 * drift_weight * (d_real.mean() + d_fake.mean()), rel=1e-5)


def test_a_nonfinite_critic_step_is_skipped_and_counted():
    """Finite topologies but non-finite gradients (forced by a hook): the
    step is skipped and counted."""
    output, target, weights = batch()
    loss = afl(dict(type='KeypointMSELoss', use_target_weight=True))
    loss.train()(output, target, weights)
    first = next(loss.critic.parameters())
    first.register_hook(lambda grad: grad * float('inf'))
    before = [p.detach().clone() for p in loss.critic.parameters()]
    stats = critic_step(loss)
    assert stats['nonfinite_steps'] == stats['skipped_critic_steps'] == 1
    assert stats['nonfinite_samples'] == 0
    assert all(
        torch.equal(a, p) for a, p in zip(before, loss.critic.parameters()))


def test_difficulty_of_a_nonfinite_sample_is_the_batch_mean():
    """By hand: the NaN of sample 1 becomes the mean (0.2 + 0.6) / 2 = 0.4
    of the finite ones; with none finite, every difficulty is 1."""
    torch.testing.assert_close(
        finite_difficulty(torch.tensor([0.2, float('nan'), 0.6])),
        torch.tensor([0.2, 0.4, 0.6]))
    torch.testing.assert_close(
        finite_difficulty(torch.tensor([float('nan'),
                                        float('inf')])), torch.ones(2))


@pytest.mark.parametrize('pixel', [math.inf, math.nan, -math.inf])
@pytest.mark.parametrize('where', ['output', 'target'])
def test_a_nonfinite_pixel_never_reaches_the_critic(where, pixel):
    """A non-finite pixel (an fp16 overflow under --amp) in sample 0. An
    inf pixel makes its predicted (or target) topology NaN; a NaN or -inf
    one falls below the centroid threshold and leaves the topology finite,
    but the batch's loss is NaN / inf and the AMP scaler skips its pose
    step. That batch: finite difficulties (with a NaN topology sample 0
    gets the mean of the others), no critic step, counted, warned once.
    The next clean batch: the loss, the critic step's statistics and the
    critic weights equal those of a twin loss that never saw the bad
    batch."""
    clean, (output, target, weights) = batch(seed=3), batch()
    (output if where == 'output' else target)[0, 0, 2, 2] = pixel
    torch.manual_seed(0)
    loss = afl(dict(type='KeypointMSELoss', use_target_weight=True))
    torch.manual_seed(0)
    twin = afl(dict(type='KeypointMSELoss', use_target_weight=True))
    for module in (loss, twin):
        module.train()
    loss(output, target, weights)
    difficulty = loss.last_samples['difficulty']
    assert difficulty.isfinite().all()
    if pixel == math.inf:
        torch.testing.assert_close(difficulty[0], difficulty[1:].mean())
    assert loss.last_samples['weight'].isfinite().all()
    with pytest.warns(UserWarning, match='non-finite heatmap pixel'):
        stats = critic_step(loss)
    assert stats['skipped_critic_steps'] == 1
    assert stats['nonfinite_samples'] == 1 and stats['nonfinite_steps'] == 0
    assert 'critic_loss' not in stats  # no step, nothing to report
    assert all(math.isfinite(v) for v in stats.values())
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # warned once only
        loss(output, target, weights)
        critic_step(loss)

    results = []
    for module in (loss, twin):
        torch.manual_seed(1)  # the gradient penalty's random mix
        value = module(*clean)
        results.append((value, critic_step(module)))
    assert torch.equal(results[0][0], results[1][0])
    assert results[0][1] == results[1][1]
    assert results[0][1]['skipped_critic_steps'] == 0
    for a, b in zip(loss.critic.parameters(), twin.critic.parameters()):
        assert a.isfinite().all() and torch.equal(a, b)


def test_critic_learns_to_separate_real_from_fake():
    torch.manual_seed(0)
    _, target, weights = batch(b=8)
    output = torch.zeros_like(target)  # every keypoint on one pixel
    output[:, :, 2, 2] = 1
    loss = afl(
        dict(type='KeypointMSELoss'),
        critic_optimizer=dict(type='Adam', lr=1e-3, betas=(.5, .9)),
        n_critic=5)
    for _ in range(10):
        loss.train()(output, target, weights)
        stats = critic_step(loss)
    assert stats['wasserstein'] > 0.5
    assert stats['difficulty_mean'] > 0.5  # fakes now look hard


def test_training_without_the_hook_is_refused():
    """A second training batch while the first never reached the critic
    (no AFLCriticHook) is an error, not a silently frozen critic."""
    output, target, weights = batch()
    loss = afl(dict(type='KeypointMSELoss'))
    loss.train()(output, target, weights)
    with pytest.raises(RuntimeError, match='AFLCriticHook'):
        loss(output, target, weights)
    critic_step(loss)
    loss(output, target, weights)  # after a critic step: fine


@pytest.mark.parametrize('kwargs,field', [
    (dict(base_loss=dict(type='NoSuchLoss')), 'base_loss'),
    (dict(base_loss=dict(type='AFLHeatmapLoss')), 'base_loss'),
    (dict(base_loss='KeypointMSELoss'), 'base_loss'),
    (dict(gp_weight=0), 'gp_weight'),
    (dict(gp_weight=-10), 'gp_weight'),
    (dict(gp_weight=float('inf')), 'gp_weight'),
    (dict(drift_weight=-1.), 'drift_weight'),
    (dict(drift_weight=float('nan')), 'drift_weight'),
    (dict(drift_weight=float('inf')), 'drift_weight'),
    (dict(drift_weight='1'), 'drift_weight'),
    (dict(difficulty='focal'), 'difficulty'),
    (dict(normalize_weights='yes'), 'normalize_weights'),
    (dict(label_count_norm=1), 'label_count_norm'),
    (dict(n_critic=0), 'n_critic'),
    (dict(centroid_threshold=-0.1), 'centroid_threshold'),
    (dict(critic_optimizer=dict(type='NoSuchOptim')), 'critic_optimizer'),
    (dict(critic=dict(type='AFLCritic', num_keypoints=0)), 'num_keypoints'),
])
def test_bad_config_fails_at_build_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        AFLHeatmapLoss(**kwargs)


def test_heatmaps_with_another_k_name_the_critic_field():
    output, target, weights = batch(k=3)
    loss = AFLHeatmapLoss(critic=dict(type='AFLCritic', num_keypoints=17))
    with pytest.raises(ValueError, match='critic.num_keypoints'):
        loss.eval()(output, target, weights)


# ------------------------------------------------ weight_target (SAHR)
SAHR_HEAD = dict(
    type='SAHRHead',
    in_channels=8,
    out_channels=3,
    deconv_out_channels=(8, ),
    deconv_kernel_sizes=(4, ))


def sahr_batch(seed=0, shape=(2, 3, 16, 12)):
    """Data samples with heatmaps of 0 or >= 0.05 (inside the Gaussian
    support under any support floor up to exp(-3)) and keypoint weights in
    {0, 1, 2}."""
    rng = np.random.RandomState(seed)
    gt = rng.uniform(0.05, 1, shape)
    gt[rng.rand(*shape) < 0.4] = 0
    weights = rng.choice([0., 1., 2.], shape[:2])
    samples = get_packed_inputs(
        batch_size=shape[0],
        num_keypoints=shape[1],
        input_size=(48, 64),
        heatmap_size=(12, 16),
        with_reg_label=False,
        with_simcc_label=False)['data_samples']
    for sample, heatmaps, w in zip(samples, gt, weights):
        sample.gt_fields.heatmaps = torch.tensor(heatmaps, dtype=torch.float32)
        sample.gt_instance_labels.keypoint_weights = torch.tensor(
            w[None], dtype=torch.float32)
    return samples, gt, weights


def record_base_losses(loss):
    """Record what ``loss.per_sample_losses`` returns."""
    calls, original = [], loss.per_sample_losses

    def recording(*args, **kwargs):
        calls.append(original(*args, **kwargs).detach())
        return calls[-1]

    loss.per_sample_losses = recording
    return calls


def test_afl_wahr_under_sahr_takes_the_wahr_weight_from_the_original_gt():
    """SAHRHead passes the original heatmaps as `weight_target` to a loss
    whose forward takes it; AFL hands them on to WAHR. Per sample, by
    hand: T = gt^(1 + s), G^g = gt^0.5 (gamma 0.5, so that the two
    weights differ clearly), W = |1 - P| G^g + |P| (1 - G^g), L_b =
    mean_{K,H,W}(W (P - T)^2 w_k). Without the passthrough WAHR computes
    G from T."""
    torch.manual_seed(0)  # the head's weights: the margin below holds
    head = MODELS.build(
        dict(
            SAHR_HEAD,
            loss=dict(
                type='AFLHeatmapLoss',
                base_loss=dict(type='WAHRLoss', gamma=0.5),
                critic=dict(type='AFLCritic', num_keypoints=3))))
    loss = head.loss_module
    set_critic(loss, PlanarSumCritic(3))
    calls = record_base_losses(loss)
    scales = np.array([0.5, -0.3, 0.8])
    with torch.no_grad():  # s = the bias of the zero-weight last conv
        head.scale_layers[3].bias.copy_(torch.tensor(scales))
    samples, gt, weights = sahr_batch()
    feats = (torch.rand(
        2, 8, 8, 6, generator=torch.Generator().manual_seed(0)), )
    head.loss(feats, samples)
    pred = head(feats).detach().double().numpy()

    target = gt**(1 + scales[None, :, None, None])

    def per_sample(g):
        w = np.abs(1 - pred) * g + np.abs(pred) * (1 - g)
        return ((pred - target)**2 * w *
                weights[..., None, None]).mean(axis=(1, 2, 3))

    expected, from_target = per_sample(gt**0.5), per_sample(target**0.5)
    assert np.abs(expected / from_target - 1).min() > 0.03  # 4 %, 8 %
    np.testing.assert_allclose(calls[0].numpy(), expected, rtol=1e-5)


@MODELS.register_module(force=True)
class WeightTargetTestLoss(nn.Module):
    """A loss without `per_sample` whose forward takes `weight_target`:
    AFL computes it through vmap; mean((P - T)^2 * G * w_k)."""
    loss_weight = 1.0

    def forward(self, output, target, target_weights=None, weight_target=None):
        g = target if weight_target is None else weight_target
        return ((output - target)**2 * g *
                target_weights[:, :, None, None]).mean()


def test_weight_target_reaches_a_base_loss_under_vmap_and_the_loop():
    output, target, weights = batch(seed=3)
    weight_target = torch.rand(
        4, 3, 6, 8, generator=torch.Generator().manual_seed(1))
    expected = ((output - target)**2 * weight_target *
                weights[:, :, None, None]).mean((1, 2, 3))
    loss = afl(dict(type='WeightTargetTestLoss'), PlanarSumCritic(3))
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # vectorised, no fallback
        torch.testing.assert_close(
            per_sample(
                loss, output, target, weights, weight_target=weight_target),
            expected)
    loss._use_loop = True
    torch.testing.assert_close(
        per_sample(loss, output, target, weights, weight_target=weight_target),
        expected)
    # equal weights: AFL is the base loss with the weight target
    torch.testing.assert_close(
        loss.eval()(output, target, weights, weight_target=weight_target),
        expected.mean())


def test_weight_target_of_another_shape_is_an_error():
    output, target, weights = batch()
    loss = afl(dict(type='WAHRLoss'), PlanarSumCritic(3))
    with pytest.raises(
            ValueError,
            match=(r'AFLHeatmapLoss: `weight_target` \[4, 3, 1, 8\] must have '
                   r'the shape of `output` \[4, 3, 6, 8\]')):
        loss.eval()(
            output, target, weights, weight_target=torch.zeros(4, 3, 1, 8))


@pytest.mark.parametrize('base_loss', [
    dict(type='KeypointMSELoss', use_target_weight=True),
    dict(type='HSMLoss', use_target_weight=True),
])
def test_a_base_loss_without_weight_target_is_called_without_it(base_loss):
    """As SAHRHead calls such a loss with the scaled target only, AFL
    around it ignores `weight_target`; under SAHRHead AFL(MSE) equals MSE
    (difficulty 1)."""
    output, target, weights = batch(seed=4)
    loss = afl(base_loss, PlanarSumCritic(3)).eval()
    torch.testing.assert_close(
        loss(output, target, weights, weight_target=torch.rand_like(target)),
        loss(output, target, weights))
    if base_loss['type'] != 'KeypointMSELoss':
        return
    head = MODELS.build(
        dict(
            SAHR_HEAD,
            loss=dict(
                type='AFLHeatmapLoss',
                base_loss=base_loss,
                critic=dict(type='AFLCritic', num_keypoints=3))))
    set_critic(head.loss_module, PlanarSumCritic(3, scale=0))  # equal weights
    stock = MODELS.build(dict(SAHR_HEAD, loss=base_loss))
    stock.load_state_dict(head.state_dict())
    samples, _, _ = sahr_batch(1)
    feats = (torch.rand(2, 8, 8, 6), )
    torch.testing.assert_close(
        head.loss(feats, samples)['loss_kpt'],
        stock.loss(feats, samples)['loss_kpt'])
