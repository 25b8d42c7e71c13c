"""WAHRLoss against hand values and a plain numpy re-derivation."""
import math

import numpy as np
import pytest
import torch
from mmpose.registry import MODELS

import mmpose_afl  # noqa: F401

FLOOR = math.exp(-4.5)  # the default support_floor


def numpy_g(source, gamma, floor=FLOOR):
    """G^gamma, with G taken as 0 below the support floor."""
    return np.where(source >= floor, source, 0)**gamma


def numpy_wahr(pred, target, weights, gamma, weight_target=None):
    """Mean over all elements of W * (pred - target)^2 * weights, W from
    ``weight_target`` (default ``target``), per SWAHR."""
    g = numpy_g(target if weight_target is None else weight_target, gamma)
    w = np.abs(1 - pred) * g + np.abs(pred) * (1 - g)
    return ((pred - target)**2 * w * weights).mean()


def random_case(seed=0, shape=(2, 3, 4, 5)):
    rng = np.random.RandomState(seed)
    pred = rng.uniform(-0.3, 1.3, shape)
    target = rng.uniform(0, 1, shape)
    target[rng.rand(*shape) < 0.4] = 0  # outside the Gaussian support
    target[rng.rand(*shape) < 0.1] *= 1e-3  # DARK-like tails, < exp(-4.5)
    target[0, 1] = 0  # an invisible keypoint: all-zero channel
    weights = rng.choice([0., 0.5, 1.], size=shape[:2])
    return pred, target, weights


def build(**kwargs):
    return MODELS.build(dict(type='WAHRLoss', **kwargs))


def test_hand_values():
    loss = build()
    # P = 0.5, G = 1: W = |1-0.5| * 1 + 0.5 * 0 = 0.5, (0.5-1)^2 * 0.5
    pred = torch.tensor([0.5]).view(1, 1, 1, 1)
    assert loss(pred, torch.ones(1, 1, 1, 1)).item() == pytest.approx(0.125)
    # P = 0.2, G = 0: G^gamma = 0, W = |P| = 0.2, 0.2^2 * 0.2
    pred = torch.tensor([0.2]).view(1, 1, 1, 1)
    assert loss(pred, torch.zeros(1, 1, 1, 1)).item() == pytest.approx(0.008)
    # gamma 0.5, P = -0.5, G = 0.25 so G^0.5 = 0.5: W = 1.5*0.5 + 0.5*0.5
    # = 1, (-0.5 - 0.25)^2 * 1
    pred = torch.full((1, 1, 1, 1), -0.5, dtype=torch.float64)
    target = torch.full((1, 1, 1, 1), 0.25, dtype=torch.float64)
    assert build(gamma=0.5)(pred, target).item() == pytest.approx(0.5625)
    # G = 0.5^100 is below the support floor exp(-4.5): background, W = |P|
    # = 0.5; with support_floor=0, G^0.01 = 0.5 and W = 1 as above
    target = torch.full((1, 1, 1, 1), 0.5**100, dtype=torch.float64)
    assert loss(pred, target).item() == pytest.approx(0.5 * 0.5**2)
    assert build(support_floor=0.)(pred, target).item() == pytest.approx(
        (0.5 + 0.5**100)**2)


@pytest.mark.parametrize('gamma', [0.01, 0.5])
def test_matches_numpy(gamma):
    pred, target, weights = random_case()
    loss = build(gamma=gamma, use_target_weight=True, loss_weight=2.5)
    value = loss(
        torch.tensor(pred), torch.tensor(target), torch.tensor(weights))
    expected = numpy_wahr(pred, target, weights[..., None, None], gamma)
    assert value.item() == pytest.approx(2.5 * expected, rel=1e-12)


def test_weight_target_sets_the_weight_only():
    pred, target, weights = random_case(1)
    original = np.clip(target * 1.3, 0, 1)
    value = build()(
        torch.tensor(pred),
        torch.tensor(target),
        torch.tensor(weights),
        weight_target=torch.tensor(original))
    expected = numpy_wahr(
        pred, target, weights[..., None, None], 0.01, weight_target=original)
    assert value.item() == pytest.approx(expected, rel=1e-12)


def test_per_sample_agrees_with_forward():
    pred, target, weights = random_case(2)
    pred, target, weights = map(torch.tensor, (pred, target, weights))
    loss = build(loss_weight=3.0)
    per_sample = loss.per_sample(pred, target, weights)
    assert per_sample.shape == (2, )
    assert torch.equal(per_sample.mean() * 3.0, loss(pred, target, weights))
    for b in range(2):
        alone = loss.per_sample(pred[b:b + 1], target[b:b + 1],
                                weights[b:b + 1])
        assert torch.allclose(alone[0], per_sample[b])
        expected = numpy_wahr(pred[b].numpy(), target[b].numpy(),
                              weights[b].numpy()[:, None, None], 0.01)
        assert per_sample[b].item() == pytest.approx(expected, rel=1e-12)


def test_masks_follow_keypoint_mse_loss():
    # KeypointMSELoss semantics: keypoint-wise and pixel-wise weights and a
    # [B, 1, H, W] mask multiply the loss whenever given.
    pred, target, weights = random_case(3)
    pred, target, weights = map(torch.tensor, (pred, target, weights))
    loss = build(use_target_weight=False)
    pixel_weights = weights[..., None, None].expand_as(target)
    assert torch.allclose(
        loss(pred, target, weights), loss(pred, target, pixel_weights))
    mask = (torch.arange(5) < 3).double().view(1, 1, 1, 5).expand(2, 1, 4, 5)
    expected = numpy_wahr(pred.numpy(), target.numpy(),
                          mask.numpy() * weights.numpy()[..., None, None],
                          0.01)
    assert loss(pred, target, weights, mask).item() == pytest.approx(
        expected, rel=1e-12)


def test_gradient_of_the_weight_is_not_detached():
    # d/dP [W (P - T)^2] = 2 (P - T) W + (P - T)^2 dW/dP,
    # dW/dP = -sign(1 - P) G^g + sign(P) (1 - G^g)
    pred, target, weights = random_case(4)
    p = torch.tensor(pred, requires_grad=True)
    build()(p, torch.tensor(target), torch.tensor(weights)).backward()
    g = numpy_g(target, 0.01)
    w = np.abs(1 - pred) * g + np.abs(pred) * (1 - g)
    dw = -np.sign(1 - pred) * g + np.sign(pred) * (1 - g)
    grad = (2 * (pred - target) * w + (pred - target)**2 * dw)
    grad *= weights[..., None, None] / pred.size
    np.testing.assert_allclose(p.grad.numpy(), grad, rtol=1e-10, atol=1e-15)


@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_no_nan_at_zero_target(dtype):
    pred, target, weights = random_case(5)
    p = torch.tensor(pred, dtype=dtype, requires_grad=True)
    t = torch.tensor(target, dtype=dtype, requires_grad=True)
    value = build()(p, t, torch.tensor(weights, dtype=dtype))
    value.backward()
    assert torch.isfinite(value)
    assert torch.isfinite(p.grad).all() and torch.isfinite(t.grad).all()


@pytest.mark.parametrize('gamma', [0, -0.01])
def test_gamma_must_be_positive(gamma):
    with pytest.raises(ValueError, match='`gamma` must be > 0'):
        build(gamma=gamma)


def test_mixed_precision_inputs():
    # under autocast the head's output is fp16 while the targets stay fp32
    pred, target, weights = random_case(6)
    p = torch.tensor(pred, dtype=torch.float16, requires_grad=True)
    value = build()(p, torch.tensor(target, dtype=torch.float32),
                    torch.tensor(weights, dtype=torch.float32))
    value.backward()
    expected = numpy_wahr(p.detach().double().numpy(), target,
                          weights[..., None, None], 0.01)
    assert value.item() == pytest.approx(expected, rel=1e-3)  # fp16 steps
    assert torch.isfinite(p.grad).all()


def test_skip_empty_channel():
    """Channel 0: target (1, 0), prediction (0.5, 0.2) -> W (0.5, 0.2),
    loss (0.25 * 0.5, 0.04 * 0.2) = (0.125, 0.008); channel 1 has an
    all-zero target, prediction (0.5, -0.5) -> W = |P| = 0.5, loss 0.125
    each. Mean over the 4 elements: 0.383 / 4, or 0.133 / 4 when the empty
    channel is skipped (masked, as in KeypointMSELoss)."""
    pred = torch.tensor([0.5, 0.2, 0.5, -0.5]).view(1, 2, 1, 2)
    target = torch.tensor([1., 0., 0., 0.]).view(1, 2, 1, 2)
    for skip, expected in ((False, 0.383 / 4), (True, 0.133 / 4)):
        value = build(skip_empty_channel=skip)(pred, target)
        assert value.item() == pytest.approx(expected)
