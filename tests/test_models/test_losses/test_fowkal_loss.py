"""FoWKALLoss: each weight and term against a plain numpy re-derivation,
MMPose's AdaptiveWingLoss and KeypointMSELoss, the learned factors and their
regulariser, bad configs, and the paper configs."""
import math

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.logging import MessageHub
from mmpose.codecs import MSRAHeatmap, UDPHeatmap
from mmpose.registry import MODELS

import mmpose_afl  # noqa: F401
from tests.e2e import REPO

# a tiny uneven layout: parts of 3, 1 and 2 keypoints
PARTS = dict(big=[0, 2, 4], single=[1], pair=[3, 5])
K = 6


def build(**kwargs):
    cfg = dict(type='FoWKALLoss', parts=PARTS, dense_parts=('single', ))
    cfg.update(kwargs)
    return MODELS.build(cfg)


def random_case(seed=0, shape=(3, K, 4, 5)):
    rng = np.random.RandomState(seed)
    pred = rng.uniform(-0.4, 1.3, shape)
    target = rng.uniform(0, 1, shape)
    target[rng.rand(*shape) < 0.4] = 0  # outside the Gaussian support
    target[rng.rand(*shape) < 0.1] *= 1e-3  # DARK-like tails, < exp(-4.5)
    target[0, 1] = 0  # an invisible keypoint: all-zero channel
    weights = rng.choice([0., 1., 1.], size=shape[:2])
    return pred, target, weights


def t(*arrays):
    return [torch.tensor(a) for a in arrays]


# ------------------------------------------------------ numpy re-derivation
def numpy_awing(pred, target, alpha=2.1, omega=14., epsilon=1., theta=0.5):
    """Adaptive Wing loss per element (Wang et al., ICCV 2019, Eq. 6-7)."""
    delta = np.abs(target - pred)
    power = alpha - target
    a = omega / (1 + (theta / epsilon)**power) * power * (theta / epsilon)**(
        power - 1) / epsilon
    c = theta * a - omega * np.log(1 + (theta / epsilon)**power)
    return np.where(delta < theta,
                    omega * np.log(1 + (delta / epsilon)**power),
                    a * delta - c)


FLOOR = math.exp(-4.5)  # the default support_floor


def numpy_weight(pred, target, weighting, gamma=0.01, tau=1.0, floor=FLOOR):
    """(F)WAHR weight, with the target taken as 0 below ``floor``."""
    if weighting is None:
        return np.ones_like(pred)
    target = np.where(target >= floor, target, 0)
    g = target**gamma
    wahr = g * np.abs(1 - pred) + np.abs(pred) * (1 - g)
    if weighting == 'wahr':
        return wahr
    return np.where(pred >= 2**(-1 / gamma), wahr, tau * target)


def numpy_terms(pred, target, weights, weighting, gamma=0.01, tau=1.0):
    """Per-keypoint mean_HW of W * w * AWing and of W * w * MSE: [B, K]."""
    w = numpy_weight(pred, target, weighting, gamma, tau) * \
        weights[..., None, None]
    awing = (numpy_awing(pred, target) * w).mean((2, 3))
    mse = ((pred - target)**2 * w).mean((2, 3))
    return awing, mse


def numpy_share(part_average):
    share = np.zeros(K)
    for ids in PARTS.values():
        share[ids] = 1 / len(ids) if part_average else 1 / K
    return share


def numpy_reg(factors, consistency, boundary):
    total = 0.
    for ids in PARTS.values():
        lam = factors[ids]
        total += consistency * np.sum((lam - lam.mean())**2)
        total += boundary * np.mean(-np.log(4 * lam * (1 - lam)))
    return total


def numpy_loss(pred,
               target,
               weights,
               factors,
               weighting=None,
               part_average=True,
               norm=None,
               gamma=0.01,
               tau=1.0):
    """Per-sample loss [B]: sum_k share_k [lam_k AW_k/m_a + (1-lam_k)
    MSE_k/m_m]."""
    awing, mse = numpy_terms(pred, target, weights, weighting, gamma, tau)
    if norm is not None:
        awing, mse = awing / norm[0], mse / norm[1]
    mixed = factors * awing + (1 - factors) * mse
    return (mixed * numpy_share(part_average)).sum(1)


def batch_norm(pred, target, weights, weighting, norm_clip=4.0):
    """What the first training call's normalisers are: the mean of each
    term over the keypoints with a non-zero weight, each keypoint's term
    clipped at norm_clip times their lower median."""
    active = weights != 0
    norm = []
    for term in numpy_terms(pred, target, weights, weighting):
        values = np.sort(term[active])
        median = values[(len(values) - 1) // 2]
        norm.append(np.minimum(term, norm_clip * median).sum() / active.sum())
    return tuple(norm)


def set_factors(loss, factors):
    with torch.no_grad():
        loss.kaf_logits.copy_(
            torch.logit(torch.tensor(factors, dtype=torch.float32)))
    return torch.sigmoid(loss.kaf_logits).detach().double().numpy()


# ------------------------------------------------------------------ weights
@pytest.mark.parametrize('weighting', ['wahr', 'fwahr'])
@pytest.mark.parametrize('floor', [FLOOR, 0.3, 0.])
def test_pixel_weights_match_numpy(weighting, floor):
    pred, target, _ = random_case()
    loss = build(weighting=weighting, gamma=0.5, tau=0.7, support_floor=floor)
    weight = loss.pixel_weights(*t(pred, target))
    np.testing.assert_allclose(
        weight.numpy(),
        numpy_weight(pred, target, weighting, 0.5, 0.7, floor),
        rtol=1e-12)


def codec_targets(sigma=2):
    """One keypoint's target at heatmap pixel (12, 15) and one at (3, 4)
    (near the border) from MMPose's standard, DARK and UDP encoders:
    name -> [1, 2, 32, 24]."""
    codecs = dict(
        standard=MSRAHeatmap((96, 128), (24, 32), sigma),
        dark=MSRAHeatmap((96, 128), (24, 32), sigma, unbiased=True),
        udp=UDPHeatmap((96, 128), (24, 32), sigma=sigma))
    keypoints = np.array([[[12., 15.], [3., 4.]]])
    return {
        name:
        torch.from_numpy(
            codec.encode(keypoints * codec.scale_factor)['heatmaps'])[None]
        for name, codec in codecs.items()
    }


@pytest.mark.parametrize('weighting', ['wahr', 'fwahr'])
def test_weights_are_the_same_under_the_standard_dark_and_udp_encoders(
        weighting):
    """DARK's Gaussian is not cut off (98 % of its pixels are > 0 here,
    18 % under the other two): with the default floor every pixel's weight
    is the same under all three encoders, on DARK's tail (85 % of the
    pixels) the background's (|P^|, or 0 for FWAHR's non-positive
    predictions); with support_floor=0 the tail's G^0.01 (0.36 to 0.95,
    median 0.78) mixes in the foreground weight |1 - P^|."""
    targets = codec_targets()
    dark = targets['dark']
    tail = (dark > 0) & (dark < FLOOR)
    assert tail.float().mean() > 0.7 and targets['standard'].gt(
        0).float().mean() < 0.2
    pred = torch.from_numpy(
        np.random.RandomState(0).uniform(-0.3, 1.1, dark.shape)).float()
    loss = build(weighting=weighting, parts=dict(a=[0, 1]), dense_parts=())
    weights = {
        name: loss.pixel_weights(pred, target)
        for name, target in targets.items()
    }
    for name in ('dark', 'udp'):
        torch.testing.assert_close(
            weights[name], weights['standard'], rtol=1e-5, atol=1e-6)
    background = pred.abs()
    if weighting == 'fwahr':
        background = torch.where(pred > 0, background, 0.)
    assert torch.equal(weights['dark'][tail], background[tail])
    # the old gt > 0: DARK's tail is weighted like the foreground
    old = build(
        weighting=weighting,
        parts=dict(a=[0, 1]),
        dense_parts=(),
        support_floor=0.)
    old_dark = old.pixel_weights(pred, dark)
    g = dark[tail].double()**0.01
    expected = g * (1 - pred[tail]).abs() + pred[tail].abs() * (1 - g)
    if weighting == 'fwahr':
        expected = torch.where(pred[tail] > 0, expected, dark[tail].double())
    torch.testing.assert_close(
        old_dark[tail].double(), expected, rtol=1e-5, atol=1e-7)
    assert (old_dark - weights['standard'])[tail].abs().max() > 0.5


def test_fwahr_switches_branch_at_two_to_the_minus_one_over_gamma():
    # gamma = 0.5: the switch is at P^ = 2^-2 = 0.25 (P^^gamma = 1/2)
    target = np.full(5, 0.64)
    pred = np.array([0.2, 0.2499, 0.25, 0.2501, 0.9])
    loss = build(weighting='fwahr', gamma=0.5, tau=0.5)
    weight = loss.pixel_weights(
        *t(pred.reshape(1, 1, 1, 5), target.reshape(1, 1, 1, 5))).flatten()
    # below: tau * P = 0.32; from 0.25 on: 0.8 |1 - P^| + |P^| 0.2
    expected = [
        0.32, 0.32, 0.8 * 0.75 + 0.25 * 0.2, 0.8 * 0.7499 + 0.2501 * 0.2,
        0.8 * 0.1 + 0.9 * 0.2
    ]
    np.testing.assert_allclose(weight.numpy(), expected, rtol=1e-12)
    # the default gamma = 0.01 switches at 2^-100 ~ 7.9e-31
    pred = np.array([-0.1, 0., 2**-100 * 0.5, 2**-100, 1e-3])
    weight = build(weighting='fwahr').pixel_weights(
        *t(pred.reshape(1, 1, 1, 5), target.reshape(1, 1, 1, 5))).flatten()
    g = 0.64**0.01
    assert weight[:3].tolist() == [0.64] * 3
    np.testing.assert_allclose(
        weight[3:].numpy(),
        g * np.abs(1 - pred[3:]) + np.abs(pred[3:]) * (1 - g),
        rtol=1e-12)


# -------------------------------------------------------- AWing and MSE
def test_awing_matches_numpy_and_mmpose_adaptive_wing_loss():
    pred, target, weights = random_case(1)
    loss = build()
    np.testing.assert_allclose(
        loss.awing_map(*t(pred, target)).numpy(),
        numpy_awing(pred, target),
        rtol=1e-10)
    # lambda = 1 everywhere, flat mean, no pixel weights, no normalisation:
    # MMPose's AdaptiveWingLoss (0/1 keypoint weights), up to the float32
    # 1/K of the mean
    awing_only = build(
        kaf='heuristic',
        weighting=None,
        normalize=False,
        part_average=False,
        dense_parts=tuple(PARTS))
    mmpose_awing = MODELS.build(
        dict(type='AdaptiveWingLoss', use_target_weight=True))
    args = t(pred, target, weights)
    assert torch.allclose(awing_only(*args), mmpose_awing(*args), rtol=1e-7)
    # lambda = 0 everywhere: exactly MMPose's KeypointMSELoss
    mse_only = build(
        kaf='heuristic',
        weighting=None,
        normalize=False,
        part_average=False,
        dense_parts=())
    mmpose_mse = MODELS.build(
        dict(type='KeypointMSELoss', use_target_weight=True))
    assert torch.allclose(mse_only(*args), mmpose_mse(*args), rtol=1e-7)


def test_awing_map_equals_mmpose_criterion_in_value_and_gradient():
    # awing_map writes MMPose's criterion out (exp instead of pow of the
    # constant base, log1p): same values and gradients in float64, also at
    # delta = 0 (pow's gradient there is 0, exp/log's would be NaN), on
    # both sides of delta = theta and for targets 0 and 1
    from mmpose.models.losses import AdaptiveWingLoss
    loss = build()
    target = torch.tensor([0., 0., 0.3, 1., 1., 0.7, 0., 0.2, 0.9],
                          dtype=torch.float64)
    output = target + torch.tensor(
        [0., 0.49, -0.51, 0., -0.2, 0.8, 2.5, -1e-3, 0.5], dtype=torch.float64)
    shape = (1, 1, 3, 3)
    target, output = target.view(shape), output.view(shape)
    mmpose = torch.func.vmap(AdaptiveWingLoss().criterion)

    def mmpose_map(out):
        return mmpose(
            out.reshape(-1, 1, 1, 1, 1), target.reshape(-1, 1, 1, 1,
                                                        1)).view_as(out)

    ours, theirs = (output.clone().requires_grad_() for _ in range(2))
    torch.testing.assert_close(
        loss.awing_map(ours, target),
        mmpose_map(theirs),
        rtol=1e-12,
        atol=1e-12)
    loss.awing_map(ours, target).sum().backward()
    mmpose_map(theirs).sum().backward()
    assert torch.isfinite(ours.grad).all() and ours.grad.view(-1)[0] == 0
    torch.testing.assert_close(ours.grad, theirs.grad, rtol=1e-12, atol=1e-12)
    away = output.clone()
    away.view(-1)[[0, 3]] += 0.1  # gradcheck's steps must not cross delta 0
    assert torch.autograd.gradcheck(lambda out: loss.awing_map(out, target),
                                    away.requires_grad_())


# --------------------------------------------------------------- the loss
@pytest.mark.parametrize('weighting', [None, 'wahr', 'fwahr'])
@pytest.mark.parametrize('part_average', [True, False])
def test_heuristic_matches_numpy(weighting, part_average):
    # ablation (c) and (e): AWing on the dense part, MSE elsewhere, each
    # term over its running mean (the batch's on the first training call)
    pred, target, weights = random_case(2)
    loss = build(
        kaf='heuristic',
        weighting=weighting,
        part_average=part_average,
        loss_weight=2.0)
    loss.train()
    value = loss(*t(pred, target, weights))
    factors = np.array([0., 1., 0., 0., 0., 0.])
    norm = batch_norm(pred, target, weights, weighting)
    expected = numpy_loss(pred, target, weights, factors, weighting,
                          part_average, norm).mean() * 2.0
    assert value.item() == pytest.approx(expected, rel=1e-6)
    assert loss.running_means.tolist() == pytest.approx(norm, rel=1e-6)
    assert loss.regularization().item() == 0


@pytest.mark.parametrize('weighting', [None, 'wahr', 'fwahr'])
def test_learned_factors_match_numpy(weighting):
    # ablation (d), KAL + WAHR and (f): learned lambda_k plus L_reg
    pred, target, weights = random_case(3)
    loss = build(
        weighting=weighting,
        consistency_weight=0.7,
        boundary_weight=0.3,
        loss_weight=1.5)
    loss.train()
    factors = set_factors(loss, [0.1, 0.9, 0.3, 0.6, 0.5, 0.75])
    value = loss(*t(pred, target, weights))
    norm = batch_norm(pred, target, weights, weighting)
    expected = numpy_loss(pred, target, weights, factors, weighting, True,
                          norm).mean() * 1.5
    expected += numpy_reg(factors, 0.7, 0.3)
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_running_means_blend_batches_and_are_used_in_eval():
    first, second = random_case(4), random_case(5)
    loss = build(norm_momentum=0.25)
    loss.train()
    loss(*t(*first))
    loss(*t(*second))
    norm = 0.75 * np.array(batch_norm(*first, 'fwahr')) + \
        0.25 * np.array(batch_norm(*second, 'fwahr'))
    assert loss.running_means.tolist() == pytest.approx(norm, rel=1e-6)
    # eval: the running means are used and not updated
    loss.eval()
    factors = loss.keypoint_factors().detach().double().numpy()
    value = loss.per_sample(*t(*first))
    np.testing.assert_allclose(
        value.detach().numpy(),
        numpy_loss(*first, factors, 'fwahr', True, norm),
        rtol=1e-6)
    assert loss.running_means.tolist() == pytest.approx(norm, rel=1e-6)
    assert 'running_means' in loss.state_dict()


def test_per_part_mean_differs_from_the_flat_mean():
    # per-keypoint MSE 1, 1, 1 on 'big', 5 on 'single', 0 on 'pair':
    # per part 1 + 5 + 0 = 6; flat (1 + 1 + 1 + 5) / 6 = 4/3
    pred = torch.zeros(1, K, 1, 1)
    pred[0, [0, 2, 4, 1], 0, 0] = torch.tensor([1., 1., 1., math.sqrt(5)])
    target = torch.zeros_like(pred)
    options = dict(
        kaf='heuristic', weighting=None, normalize=False, dense_parts=())
    per_part = build(part_average=True, **options)(pred, target)
    flat = build(part_average=False, **options)(pred, target)
    assert per_part.item() == pytest.approx(6.0)
    assert flat.item() == pytest.approx(8 / 6)


def test_unlabelled_keypoints_count_in_n_part():
    """N_part is the part's size: in 'big' (3 keypoints) only keypoint 0 is
    labelled, with squared error 3 -> 3 / 3 = 1 (3 / 1 = 3 if N_part
    counted the labelled keypoints only); keypoints 2 and 4 have errors 5
    and 7 that their weight 0 removes; the other parts have error 0."""
    pred = torch.zeros(1, K, 1, 1)
    pred[0, [0, 2, 4], 0, 0] = torch.tensor([3., 5., 7.]).sqrt()
    weights = torch.tensor([[1., 1., 0., 1., 0., 1.]])
    loss = build(
        kaf='heuristic', weighting=None, normalize=False, dense_parts=())
    assert loss(pred, torch.zeros_like(pred), weights).item() == \
        pytest.approx(1.0)


def test_skip_empty_channel():
    """MSE only, 1x1 heatmaps: keypoint 1 ('single') has an all-zero
    target and squared error 4, keypoint 0 ('big') 0.25, the rest 0. The
    empty channel adds 4 / 1 unless skipped: 0.25 / 3 + 4 vs 0.25 / 3."""
    pred = torch.ones(1, K, 1, 1)
    pred[0, 0, 0, 0], pred[0, 1, 0, 0] = 0.5, 2.
    target = torch.ones_like(pred)
    target[0, 1, 0, 0] = 0.
    for skip, expected in ((False, 0.25 / 3 + 4), (True, 0.25 / 3)):
        loss = build(
            kaf='heuristic',
            weighting=None,
            dense_parts=(),
            normalize=False,
            skip_empty_channel=skip)
        assert loss(pred, target).item() == pytest.approx(expected)


def test_skip_empty_channel_in_the_running_means():
    """The first running MSE mean averages over the channels that count:
    squared errors 0.25, 4 (empty target), 1, 1, 1, 1 -> 8.25 / 6 without
    skipping, 4.25 / 5 with (norm_clip 100 so nothing is clipped)."""
    pred = torch.tensor([0.5, 2., 2., 2., 2., 2.]).view(1, K, 1, 1)
    target = torch.ones_like(pred)
    target[0, 1] = 0.
    for skip, expected in ((False, 8.25 / 6), (True, 4.25 / 5)):
        loss = build(
            kaf='heuristic',
            weighting=None,
            dense_parts=(),
            norm_clip=100.,
            skip_empty_channel=skip).train()
        loss(pred, target)
        assert loss.running_means[1].item() == pytest.approx(expected)


def test_per_sample_and_forward():
    pred, target, weights = map(torch.tensor, random_case(6))
    loss = build(loss_weight=3.0)
    loss.train()
    loss(pred, target, weights)  # sets the running means
    loss.eval()  # fixed normalisers: samples are independent
    per_sample = loss.per_sample(pred, target, weights)
    assert per_sample.shape == (3, )
    assert torch.equal(
        loss(pred, target, weights),
        per_sample.mean() * 3.0 + loss.regularization())
    for b in range(3):
        alone = loss.per_sample(pred[b:b + 1], target[b:b + 1],
                                weights[b:b + 1])
        assert torch.allclose(alone[0], per_sample[b], rtol=1e-6)


def test_masks_follow_keypoint_mse_loss():
    pred, target, weights = map(torch.tensor, random_case(7))
    loss = build(normalize=False)
    pixel = weights[..., None, None].expand_as(target)
    assert torch.allclose(
        loss(pred, target, weights), loss(pred, target, pixel))
    mask = (torch.arange(5) < 3).double().view(1, 1, 1, 5).expand(3, 1, 4, 5)
    factors = loss.keypoint_factors().detach().double().numpy()
    expected = numpy_loss(pred[..., :3].numpy(), target[..., :3].numpy(),
                          weights.numpy(), factors, 'fwahr') * 3 / 5
    value = loss.per_sample(pred, target, weights, mask)
    np.testing.assert_allclose(value.detach().numpy(), expected, rtol=1e-6)


def test_mixed_precision_output_is_computed_in_float32():
    pred, target, weights = random_case(8)
    p = torch.tensor(pred, dtype=torch.float16, requires_grad=True)
    loss = build(normalize=False)
    value = loss(p, torch.tensor(target, dtype=torch.float32),
                 torch.tensor(weights, dtype=torch.float32))
    assert value.dtype == torch.float32
    value.backward()
    assert torch.isfinite(p.grad).all()
    factors = loss.keypoint_factors().detach().double().numpy()
    expected = numpy_loss(p.detach().double().numpy(), target, weights,
                          factors, 'fwahr').mean() + numpy_reg(
                              factors, 1.0, 0.1)
    assert value.item() == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize('weighting', [None, 'fwahr'])
def test_autocast_bf16_computes_in_float32(weighting):
    """Under autocast (AMP, bf16 on the CPU) the loss, its running means
    and L_reg included, and its gradients equal the float32 ones."""
    pred, target, weights = random_case(12)
    # the head's bf16 output, and the same values in float32
    pred = torch.tensor(pred, dtype=torch.bfloat16)
    target, weights = (
        torch.tensor(a, dtype=torch.float32) for a in (target, weights))
    results = []
    for amp in (False, True):
        loss = build(weighting=weighting).train()
        set_factors(loss, [0.1, 0.9, 0.3, 0.6, 0.55, 0.75])
        output = pred.clone().requires_grad_() if amp else \
            pred.float().requires_grad_()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=amp):
            value = loss(output, target, weights)
            grads = torch.autograd.grad(value, [output, loss.kaf_logits])
        assert value.dtype == torch.float32 and value.isfinite()
        # the output's gradient comes back in its dtype, bf16 under AMP
        results.append(
            (value, grads[0].bfloat16().float(), grads[1], loss.running_means))
    for fp32, amp in zip(*results):
        torch.testing.assert_close(amp, fp32, rtol=1e-5, atol=1e-7)


# --------------------------------------------------- learned factors, L_reg
def test_regulariser_matches_numpy_and_pulls_a_part_together():
    loss = build(consistency_weight=1.0, boundary_weight=0.0)
    factors = set_factors(loss, [0.1, 0.5, 0.3, 0.2, 0.8, 0.9])
    assert loss.regularization().item() == pytest.approx(
        numpy_reg(factors, 1.0, 0.0), rel=1e-6)
    spread_before = np.ptp(factors[PARTS['big']])
    optimizer = torch.optim.SGD(loss.parameters(), lr=5.0)
    for _ in range(50):
        optimizer.zero_grad()
        loss.regularization().backward()
        optimizer.step()
    after = loss.keypoint_factors().detach().numpy()
    assert np.ptp(after[PARTS['big']]) < 0.1 * spread_before
    assert np.ptp(after[PARTS['pair']]) < 0.1 * np.ptp(factors[PARTS['pair']])
    assert after[1] == pytest.approx(0.5)  # one-keypoint part: no pull
    # the boundary term keeps factors off 0 and 1: it is 0 at 1/2 and
    # its gradient pushes towards 1/2
    boundary = build(consistency_weight=0.0, boundary_weight=1.0)
    set_factors(boundary, [0.5] * K)
    assert boundary.regularization().item() == pytest.approx(0, abs=1e-7)
    factors = set_factors(boundary, [1e-4, 0.99, 0.5, 0.5, 0.5, 0.5])
    reg = boundary.regularization()
    assert reg.item() == pytest.approx(numpy_reg(factors, 0, 1), rel=1e-5)
    reg.backward()
    grad = boundary.kaf_logits.grad
    assert grad[0] < 0 < grad[1]  # gradient descent moves both inwards


def test_consistency_term_sums_over_the_keypoints_of_a_part():
    """The consistency term sum_part sum_k (lambda_k - mean_part lambda)^2
    (docs/fowkal.md) by hand:
    'big' 0.2, 0.5, 0.8 around 0.5 -> 0.09 + 0 + 0.09; 'single' 0; 'pair'
    0.3, 0.7 -> 0.04 + 0.04: 0.26 (a per-part mean would give 0.10)."""
    loss = build(consistency_weight=2.0, boundary_weight=0.0)
    set_factors(loss, [0.2, 0.9, 0.5, 0.3, 0.8, 0.7])
    assert loss.regularization().item() == pytest.approx(2 * 0.26, rel=1e-6)


def test_first_update_clips_an_outlier_pixel_to_the_batch_median():
    """A pixel of 100 in the very first batch: its keypoint's terms count
    as at most norm_clip = 4 times the lower median of the labelled
    keypoints' terms (numpy), instead of setting the scale ~70x (MSE)
    too high."""
    pred, target, weights = random_case(11)
    weights[0, 0] = 1.
    pred[0, 0, 0, 0] = 100.
    loss = build(weighting=None).train()
    loss(*t(pred, target, weights))
    expected = batch_norm(pred, target, weights, None)
    assert loss.running_means.tolist() == pytest.approx(expected, rel=1e-6)
    awing, mse = numpy_terms(pred, target, weights, None)
    unclipped = mse.sum() / (weights != 0).sum()
    assert unclipped > 50 * expected[1]


def test_training_moves_the_factors_with_a_gradient_every_step():
    pred, target, weights = random_case(9)
    heatmaps = torch.nn.Parameter(torch.tensor(pred, dtype=torch.float32))
    loss = build()
    loss.train()
    initial = loss.keypoint_factors().detach().clone()
    assert initial.tolist() == pytest.approx([0.2, 0.8, 0.2, 0.2, 0.2, 0.2])
    optimizer = torch.optim.Adam([heatmaps, *loss.parameters()], lr=0.05)
    for _ in range(5):
        optimizer.zero_grad()
        loss(heatmaps, torch.tensor(target, dtype=torch.float32),
             torch.tensor(weights, dtype=torch.float32)).backward()
        assert loss.kaf_logits.grad is not None
        optimizer.step()
    moved = (loss.keypoint_factors() - initial).abs()
    assert (moved > 1e-3).all()
    # even a batch without any labelled keypoint gives lambda a gradient
    # (through L_reg), so DDP's find_unused_parameters=False holds
    optimizer.zero_grad()
    loss(heatmaps, torch.tensor(target, dtype=torch.float32),
         torch.zeros(3, K)).backward()
    assert loss.kaf_logits.grad is not None
    assert [n for n, _ in loss.named_parameters()] == ['kaf_logits']
    assert list(build(kaf='heuristic').parameters()) == []


def test_factors_are_logged_per_part():
    hub = MessageHub.get_instance('test_fowkal_logging')
    loss = build()
    factors = set_factors(loss, [0.1, 0.9, 0.3, 0.6, 0.5, 0.75])
    loss.train()
    loss(*t(*random_case(10)))
    assert hub.get_scalar('train/kaf_big').current() == pytest.approx(
        factors[PARTS['big']].mean(), rel=1e-6)
    assert hub.get_scalar('train/kaf_single').current() == pytest.approx(
        0.9, rel=1e-6)
    assert hub.get_scalar('train/kaf_pair').current() == pytest.approx(
        factors[PARTS['pair']].mean(), rel=1e-6)


def test_lambda_init_per_part():
    loss = build(lambda_init=dict(big=0.3, single=0.6, pair=0.45))
    assert loss.keypoint_factors().tolist() == pytest.approx(
        [0.3, 0.6, 0.3, 0.45, 0.3, 0.45])
    assert build(lambda_init=0.5).keypoint_factors().tolist() == \
        pytest.approx([0.5] * K)


# -------------------------------------------------------------- the parts
def test_parts_from_dataset_metainfo():
    loss = MODELS.build(dict(type='FoWKALLoss'))
    assert {
        name: (ids[0], ids[-1], len(ids))
        for name, ids in loss.parts.items()
    } == {
        'body': (0, 16, 17),
        'foot': (17, 22, 6),
        'face': (23, 90, 68),
        'left_hand': (91, 111, 21),
        'right_hand': (112, 132, 21)
    }
    assert loss.part_factors() == pytest.approx(
        dict(body=0.2, foot=0.2, face=0.8, left_hand=0.8, right_hand=0.8))
    coco = MODELS.build(
        dict(
            type='FoWKALLoss',
            metainfo='configs/_base_/datasets/coco.py',
            dense_parts=()))
    assert coco.parts == {'body': list(range(17))}


# -------------------------------------------------------------- bad input
@pytest.mark.parametrize('kwargs,message', [
    (dict(parts=dict(a=[0, 1], b=[1, 2])),
     r'exactly once; repeated \[1\], missing \[3\]'),
    (dict(parts=dict(a=[0, 1], b=[3])), r'missing \[2\]'),
    (dict(parts=dict(a=[0, 1], b=[])), 'empty parts'),
    (dict(num_keypoints=7), '`parts` hold 6 .* `num_keypoints` is 7'),
    (dict(gamma=0.), '`gamma` must be > 0'),
    (dict(gamma=-0.01), '`gamma` must be > 0'),
    (dict(tau=-0.1), '`tau` must be >= 0'),
    (dict(lambda_init=0.), r'`lambda_init` values must lie in \(0, 1\)'),
    (dict(lambda_init=1.), r'`lambda_init` values must lie in \(0, 1\)'),
    (dict(lambda_init=dict(dense=0.5, coarse=1.5)), '`lambda_init`'),
    (dict(lambda_init=dict(big=0.5)), '`lambda_init` as a dict'),
    (dict(dense_parts=('hands', )), r"`dense_parts` \['hands'\]"),
    (dict(kaf='fixed'), '`kaf` must be one of'),
    (dict(weighting='swahr'), '`weighting` must be one of'),
    (dict(norm_momentum=0.), '`norm_momentum`'),
    (dict(consistency_weight=-1.), '`consistency_weight` must be >= 0'),
    (dict(support_floor=-0.1), r'`support_floor` must be in \[0, 1\)'),
    (dict(support_floor=1.), r'`support_floor` must be in \[0, 1\)'),
])
def test_bad_config_fails_at_build(kwargs, message):
    with pytest.raises(ValueError, match=message):
        build(**kwargs)


@pytest.mark.parametrize('out_channels', [17, 134])
@pytest.mark.parametrize('wrapped', [False, True])
def test_head_with_other_keypoints_fails_at_build(out_channels, wrapped):
    # no `num_keypoints`: the head's out_channels is what is checked, also
    # for the FoWKAL inside AFL
    loss = dict(type='FoWKALLoss')
    if wrapped:
        loss = dict(
            type='AFLHeatmapLoss',
            base_loss=loss,
            critic=dict(type='AFLCritic', num_keypoints=133))
    with pytest.raises(
            ValueError,
            match=("`parts` hold 133 keypoint indices but the head's "
                   f'`out_channels` is {out_channels}')):
        MODELS.build(
            dict(
                type='HeatmapHead',
                in_channels=8,
                out_channels=out_channels,
                loss=loss))
    head = MODELS.build(
        dict(
            type='HeatmapHead',
            in_channels=8,
            out_channels=133,
            loss=dict(type='FoWKALLoss')))
    assert head.loss_module.num_keypoints == 133


def test_heatmaps_with_other_keypoints_fail_with_a_clear_message():
    loss = build()
    with pytest.raises(ValueError, match='K=7 channels but `parts` cover 6'):
        loss(torch.zeros(1, 7, 2, 2), torch.zeros(1, 7, 2, 2))


# ---------------------------------------------------------------- configs
WHOLEBODY = 'configs/fowkal/td-hm_hrnet-w32_dark-{}-8xb64-210e_' \
    'coco-wholebody-256x192.py'
DEMO = ('configs/fowkal/'
        'td-hm_res18_fowkal-1xb16-20e_synthetic-coco-wholebody-128x96.py')
BASELINE_WB = ('configs/baseline/'
               'td-hm_res18_1xb16-20e_synthetic-coco-wholebody-128x96.py')
WHOLEBODY_PARTS = dict(
    body=range(0, 17),
    foot=range(17, 23),
    face=range(23, 91),
    left_hand=range(91, 112),
    right_hand=range(112, 133))


@pytest.mark.parametrize('row,weighting', [('heuristic', None),
                                           ('heuristic-fwahr', 'fwahr'),
                                           ('heuristic-wahr', 'wahr')])
def test_heuristic_configs_are_the_papers_plain_awing_plus_mse(row, weighting):
    """Rows (c), (e) and heuristic + WAHR: the paper's L_heuristic, a plain
    AWing term on face and hands plus a plain MSE term on body and feet
    (each averaged per part), with no normalisation by running means, even
    on the first training call."""
    cfg = Config.fromfile(str(REPO / WHOLEBODY.format(row)))
    loss = MODELS.build(cfg.model.head.loss).train()
    rng = np.random.RandomState(12)
    pred = rng.uniform(-0.3, 1.2, (2, 133, 2, 3))
    target = rng.uniform(0, 1, (2, 133, 2, 3))
    weights = rng.choice([0., 1.], size=(2, 133))
    w = numpy_weight(pred, target, weighting) * weights[..., None, None]
    dense = np.zeros(133, bool)
    dense[23:] = True  # face and both hands
    per_pixel = np.where(dense[:, None, None], numpy_awing(pred, target),
                         (pred - target)**2)
    per_keypoint = (per_pixel * w).mean((2, 3))
    expected = sum(per_keypoint[:, list(ids)].mean(1)
                   for ids in WHOLEBODY_PARTS.values()).mean()
    value = loss(*t(pred, target, weights))
    assert value.item() == pytest.approx(expected, rel=1e-6)


def test_demo_config_changes_only_the_loss_of_the_baseline():
    demo, base = (Config.fromfile(str(REPO / c)) for c in (DEMO, BASELINE_WB))
    assert base.val_evaluator.type == 'CocoWholeBodyPartMetric'
    demo_dict, base_dict = demo.to_dict(), base.to_dict()
    assert demo_dict['model']['head'].pop('loss')['type'] == 'FoWKALLoss'
    base_dict['model']['head'].pop('loss')
    assert demo_dict == base_dict
    model = MODELS.build(demo.model)
    heatmaps = model(torch.zeros(2, 3, 128, 96), None, mode='tensor')
    assert heatmaps.shape == (2, 133, 32, 24)
