"""LossWeightedHeatmapLoss: weights and loss against hand values, the base
loss for equal losses or gamma 0, non-finite losses, bad gamma, the code
it shares with AFL, and a real ``mim train`` of its demo config without
AFLCriticHook."""
import math

import numpy as np
import pytest
import torch

from tests.trained_runs import trained

COCO_CONFIG = ('configs/loss_weighted/'
               'td-hm_res18_loss-weighted-1xb16-20e_synthetic-coco-128x96.py')


def build(**kwargs):
    from mmpose.registry import MODELS

    import mmpose_afl  # noqa: F401
    return MODELS.build(dict(type='LossWeightedHeatmapLoss', **kwargs))


def hand_batch():
    """Three samples, K 2, 1x2 heatmaps, prediction 0: per-pixel squared
    errors are the target's squares, so the per-sample MSEs (mean over the
    4 pixels) are 1, 1/4 and 0."""
    target = torch.zeros(3, 2, 1, 2)
    target[0] = 1.
    target[1, 0, 0, 0] = 1.
    output = torch.zeros_like(target, requires_grad=True)
    return output, target, torch.ones(3, 2)


@pytest.mark.parametrize('gamma', [1., 2., 0.5])
def test_weights_and_loss_by_hand(gamma):
    output, target, weights = hand_batch()
    loss = build(gamma=gamma, loss_weight=2.).train()
    value = loss(output, target, weights)
    per_sample = np.array([1., .25, 0.])
    w = per_sample**gamma / (per_sample**gamma).mean()
    if gamma == 1.:  # by hand: 1.25 / 3 mean -> weights 2.4, 0.6, 0
        np.testing.assert_allclose(w, [2.4, 0.6, 0.])
    assert value.item() == pytest.approx(2. * (w * per_sample).mean())
    np.testing.assert_allclose(loss.last_samples['weight'], w, rtol=1e-6)
    # the weights are constants: d loss / d output = 2 * w_b * dL_b/do,
    # with dL_b/do = 2 (o - t) / 4 pixels, averaged over the 3 samples
    value.backward()
    expected = 2. * torch.tensor(w, dtype=torch.float32).view(3, 1, 1, 1) \
        * 2 * (output.detach() - target) / 4 / 3
    torch.testing.assert_close(output.grad, expected)


def test_equal_losses_or_gamma_zero_give_the_base_loss():
    from mmpose.models.losses import KeypointMSELoss
    mse = KeypointMSELoss(use_target_weight=True, loss_weight=3.)
    # every sample has the same loss: all weights 1
    target = torch.zeros(4, 2, 3, 3)
    target[:, 0, 1, 1] = 1.
    output = torch.zeros_like(target)
    weights = torch.ones(4, 2)
    loss = build(
        base_loss=dict(
            type='KeypointMSELoss', use_target_weight=True, loss_weight=3.))
    torch.testing.assert_close(loss.train()(output, target, weights),
                               mse(output, target, weights))
    torch.testing.assert_close(loss.last_samples['weight'], torch.ones(4))
    # gamma 0: equal weights whatever the losses
    output, target, weights = hand_batch()
    flat = build(
        gamma=0.,
        base_loss=dict(
            type='KeypointMSELoss', use_target_weight=True, loss_weight=3.))
    torch.testing.assert_close(flat.train()(output, target, weights),
                               mse(output, target, weights))


def test_all_zero_losses_and_an_empty_batch_are_not_nan():
    target = torch.zeros(3, 2, 2, 2)
    loss = build().train()
    assert loss(target.clone(), target, torch.ones(3, 2)).item() == 0.
    torch.testing.assert_close(loss.last_samples['weight'], torch.ones(3))
    empty = torch.zeros(0, 2, 2, 2, requires_grad=True)
    value = loss(empty, empty.detach(), torch.ones(0, 2))
    assert value.item() == 0.
    value.backward()


@pytest.mark.parametrize('bad', [math.inf, math.nan])
def test_a_nonfinite_sample_loss_leaves_the_other_weights_finite(bad):
    """Sample 0's loss is inf / NaN: it gets the mean of the others'
    weights before normalisation (1 and 1/4 -> 5/8), the weights stay
    finite and the loss is as non-finite as the base loss itself."""
    output, target, weights = hand_batch()
    output = output.detach().clone()
    output[0, 0, 0, 0] = bad
    loss = build().train()
    value = loss(output, target, weights)
    assert not math.isfinite(value.item())
    weight = loss.last_samples['weight']
    assert weight.isfinite().all()
    # ratios to the largest finite loss (1/4): sample 1 -> 1, sample 2 -> 0,
    # sample 0 -> their mean 1/2; normalised to mean 1: 1, 2, 0
    torch.testing.assert_close(weight, torch.tensor([1., 2., 0.]))


def test_large_gamma_neither_overflows_nor_underflows():
    losses = torch.tensor([1e3, 2e3, 1e-3])
    target = torch.zeros(3, 1, 1, 1)
    output = losses.sqrt().view(3, 1, 1, 1)
    loss = build(gamma=60.).train()
    loss(output, target, torch.ones(3, 1))
    weight = loss.last_samples['weight']
    assert weight.isfinite().all()
    # (1/2)^60 = 8.7e-19 of the largest; mean 1 over 3 samples
    torch.testing.assert_close(
        weight.double(),
        torch.tensor([2.**-60, 1., 0.]).double() * 3 / (1 + 2.**-60),
        rtol=1e-5,
        atol=1e-12)


@pytest.mark.parametrize('gamma', [-1., math.inf, math.nan, 'one', True, None])
def test_bad_gamma_names_the_field(gamma):
    with pytest.raises(ValueError, match='`gamma`'):
        build(gamma=gamma)


def test_shares_afl_weighting_and_needs_no_critic():
    from mmpose_afl.models.losses.afl_loss import AFLHeatmapLoss
    from mmpose_afl.models.losses.loss_weighted_loss import \
        LossWeightedHeatmapLoss as Loss
    from mmpose_afl.models.losses.reweighted_loss import ReweightedLoss
    assert issubclass(Loss, ReweightedLoss)
    # one implementation of the per-sample loss, weighting and reduction
    for name in ('reweighted', 'per_sample_losses'):
        assert getattr(Loss, name) is getattr(AFLHeatmapLoss, name), name
    loss = build()
    assert not hasattr(loss, 'critic') and not list(loss.parameters())
    # a base loss AFL refuses is refused the same way
    with pytest.raises(ValueError, match='base_loss'):
        build(base_loss=dict(type='NoSuchLoss'))


def test_no_centroids_peaks_or_topology_are_computed(monkeypatch):
    """The loss needs its per-sample losses only."""
    from mmpose_afl.models.losses.afl_adapters import heatmap

    def forbidden(*args, **kwargs):
        raise AssertionError('computed keypoints')

    monkeypatch.setattr(heatmap, 'keypoint_centroids', forbidden)
    gen = torch.Generator().manual_seed(0)
    output, target = torch.rand(
        2, 3, 4, 5, generator=gen), torch.rand(
            2, 3, 4, 5, generator=gen)
    build().train()(output, target, torch.ones(2, 3))


def test_demo_trains_without_the_afl_hook(synthetic_coco, tmp_path_factory):
    work_dir = trained(COCO_CONFIG, tmp_path_factory, synthetic_coco)
    log = (work_dir / 'console_train.log').read_text()
    import re
    losses = [float(v) for v in re.findall(r'loss_kpt: ([^ ]+)', log)]
    assert len(losses) >= 2 and all(math.isfinite(v) and v > 0 for v in losses)
    assert 'Epoch(val) [1]' in log and 'coco/AP: ' in log
