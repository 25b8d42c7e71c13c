"""Bad inputs to the per-sample heatmap losses (WAHRLoss, HSMLoss,
FoWKALLoss, and AFLHeatmapLoss around them): wrong shapes name the loss and
both shapes, an empty batch gives a zero loss that back-propagates, and a
bad pixel never leaves training state (FoWKAL's running means, AFL's critic)
non-finite."""
import pytest
import torch
from mmpose.registry import MODELS

import mmpose_afl  # noqa: F401

PARTS = dict(coarse=[0], dense=[1])


def build(loss_type, **kwargs):
    if loss_type == 'FoWKALLoss':
        kwargs = dict(parts=PARTS, dense_parts=('dense', ), **kwargs)
    return MODELS.build(dict(type=loss_type, **kwargs))


LOSSES = ['WAHRLoss', 'HSMLoss', 'FoWKALLoss']


# ------------------------------------------------------------------ shapes
@pytest.mark.parametrize('loss_type', LOSSES)
@pytest.mark.parametrize(
    'field, target, weights, mask, expected',
    [
        # a target broadcast along H (HSMLoss used to accept it silently)
        ('`target`', (2, 2, 1, 4), None, None, '[2, 2, 1, 4]'),
        ('`target`', (1, 2, 3, 4), None, None, '[1, 2, 3, 4]'),  # batch 1 vs 2
        ('`target_weights`', (2, 2, 3, 4), (2, 3), None, '[2, 3]'),
        ('`target_weights`', (2, 2, 3, 4), (2, 2, 3), None, '[2, 2, 3]'),
        ('`mask`', (2, 2, 3, 4), None, (2, 2, 3, 1), '[2, 2, 3, 1]'),
        ('`mask`', (2, 2, 3, 4), None, (2, 2, 3), '[2, 2, 3]'),
    ])
def test_wrong_shapes_name_the_loss_field_and_shapes(loss_type, field, target,
                                                     weights, mask, expected):
    loss = build(loss_type)
    ones = [None if s is None else torch.ones(s) for s in (weights, mask)]
    with pytest.raises(ValueError) as error:
        loss(torch.zeros(2, 2, 3, 4), torch.zeros(target), *ones)
    message = str(error.value)
    assert message.startswith(f'{loss_type}: ')
    assert field in message and expected in message
    assert '[2, 2, 3, 4]' in message  # the output's shape


@pytest.mark.parametrize('loss_type', LOSSES)
def test_accepted_weight_and_mask_shapes_give_the_same_loss(loss_type):
    """[B, K] weights = the same weights per pixel; a [B, 1, H, W] mask =
    the same mask on every channel."""
    torch.manual_seed(0)
    output, target = torch.rand(2, 2, 3, 4), torch.rand(2, 2, 3, 4)
    weights = torch.tensor([[1., 0.], [0.5, 1.]])
    mask = (torch.rand(2, 1, 3, 4) > 0.5).float()
    loss = build(loss_type).eval()
    expected = loss(output, target, weights[:, :, None,
                                            None].expand(2, 2, 3, 4),
                    mask.expand(2, 2, 3, 4))
    torch.testing.assert_close(loss(output, target, weights, mask), expected)


def test_wahr_weight_target_of_another_shape_is_an_error():
    with pytest.raises(ValueError, match=r'`weight_target` \[2, 2, 1, 4\]'):
        build('WAHRLoss')(
            torch.zeros(2, 2, 3, 4),
            torch.zeros(2, 2, 3, 4),
            weight_target=torch.zeros(2, 2, 1, 4))


# ------------------------------------------------------------ empty batch
@pytest.mark.parametrize('loss_type, kwargs', [
    ('WAHRLoss', {}),
    ('HSMLoss', {}),
    ('FoWKALLoss', dict(kaf='heuristic')),
    ('FoWKALLoss', dict(weighting=None)),
    ('FoWKALLoss', {}),
])
def test_an_empty_batch_gives_a_zero_data_term_that_back_propagates(
        loss_type, kwargs):
    loss = build(loss_type, loss_weight=3., **kwargs).train()
    output = torch.zeros(0, 2, 3, 4, requires_grad=True)
    value = loss(output, torch.zeros(0, 2, 3, 4), torch.ones(0, 2))
    # the data term is 0; FoWKAL's learned factors still add L_reg, which
    # does not depend on the samples
    expected = loss.regularization() if hasattr(
        loss, 'regularization') else torch.zeros(())
    assert value.item() == expected.item()
    assert value.grad_fn is not None
    value.backward()
    assert output.grad is not None and output.grad.shape == output.shape
    if loss_type == 'FoWKALLoss':  # nothing to learn the scale from
        assert loss.running_means.eq(0).all()


def test_a_one_sample_batch_is_its_per_sample_loss():
    """B = 1 by hand: WAHR with P = 0.5 everywhere, one pixel of G = 1, so
    W = |P| = 0.5 on the background (G^g = 0) and |1 - P| = 0.5 on the peak;
    loss = mean(0.5 * (P - G)^2) = 0.5 * 0.25 = 0.125 at every pixel."""
    target = torch.zeros(1, 1, 2, 2)
    target[0, 0, 0, 0] = 1
    value = build('WAHRLoss')(torch.full((1, 1, 2, 2), 0.5), target)
    assert value.item() == pytest.approx(0.125)


# ------------------------------------------------- FoWKAL's running means
def clean_batch(seed):
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(2, 2, 3, 4, generator=gen)
    output = target + 0.3 * torch.randn(2, 2, 3, 4, generator=gen)
    return output, target, torch.ones(2, 2)


def with_pixel(value, seed=1):
    output, target, weights = clean_batch(seed)
    output[1, 0, 2, 3] = value
    return output, target, weights


@pytest.mark.parametrize('weighting', [None, 'fwahr'])
def test_bad_pixels_never_leave_the_running_means_non_finite(weighting):
    """An inf, a -inf and a 1e30 pixel, between two clean batches, against
    a twin loss that sees only the clean ones. Every non-finite batch
    statistic is skipped: with FWAHR all of them are (the 1e30 pixel's
    weight ~1e30 times its square overflows), so the twin's loss and
    gradient are met exactly. Without weights the 1e30 pixel's AWing term
    is finite (AWing is linear in a large error), ~1e28 times the running
    mean, and is clipped to norm_clip = 4 times it: the AWing running mean
    grows by exactly 1 + m (4 - 1) = 1.3 (m = 0.1), and so the next clean
    loss and each pixel's gradient lie between the twin's / 1.3 and the
    twin's (both terms' gradients have the sign of P^ - P)."""
    kwargs = dict(weighting=weighting, norm_momentum=0.1)
    loss, twin = build('FoWKALLoss', **kwargs), build('FoWKALLoss', **kwargs)
    for module in (loss, twin):
        module.train()(*clean_batch(0))
    start = twin.running_means.clone()
    assert start.gt(0).all()
    for value in (float('inf'), float('-inf'), 1e30):
        loss(*with_pixel(value))
        assert loss.running_means.isfinite().all()
    factor = torch.tensor([1.3 if weighting is None else 1., 1.])
    torch.testing.assert_close(loss.running_means, start * factor)

    values, grads = [], []
    for module in (loss, twin):
        output, target, weights = clean_batch(2)
        output.requires_grad_(True)
        value = module(output, target, weights) - module.regularization()
        value.backward()
        values.append(value.detach())
        grads.append(output.grad)
    assert loss.running_means.isfinite().all()
    if weighting is None:
        assert twin.running_means[0] < loss.running_means[0] <= \
            1.3 * twin.running_means[0]
        assert values[1] / 1.3 <= values[0] < values[1]
        ratio = grads[0][grads[1] != 0] / grads[1][grads[1] != 0]
        assert ratio.min() >= 1 / 1.3 - 1e-6 and ratio.max() <= 1 + 1e-6
    else:
        torch.testing.assert_close(values[0], values[1], rtol=0, atol=0)
        torch.testing.assert_close(grads[0], grads[1], rtol=0, atol=0)


def test_an_outlier_pixel_lifts_the_running_mean_by_a_bounded_factor():
    """One pixel of 100 used to lift the MSE running mean ~60000x; now at
    most 1 + m (norm_clip - 1) = 1 + 0.01 * 3 = 1.03."""
    loss = build('FoWKALLoss').train()
    loss(*clean_batch(0))
    start = loss.running_means.clone()
    loss(*with_pixel(100.))
    assert (loss.running_means <= 1.03 * start * (1 + 1e-6)).all()
    assert (loss.running_means > start).all()  # the clip did bind


def test_norm_clip_below_one_is_rejected():
    with pytest.raises(ValueError, match='`norm_clip`'):
        build('FoWKALLoss', norm_clip=0.5)


# ----------------------------------------------------- AFL around them
@pytest.mark.parametrize('base_loss', [
    dict(type='KeypointMSELoss', use_target_weight=True),
    dict(type='WAHRLoss'),
    dict(type='HSMLoss'),
    dict(type='FoWKALLoss', parts=PARTS, dense_parts=('dense', )),
])
def test_afl_on_an_empty_batch_gives_a_zero_data_term(base_loss):
    """AFL's data term of an empty batch is 0 (plus FoWKAL's L_reg, as the
    base loss itself adds it), back-propagates, and queues no critic
    step."""
    loss = MODELS.build(
        dict(
            type='AFLHeatmapLoss',
            base_loss=base_loss,
            critic=dict(type='AFLCritic', num_keypoints=2)))
    output = torch.zeros(0, 2, 3, 4, requires_grad=True)
    value = loss.train()(output, torch.zeros(0, 2, 3, 4), torch.ones(0, 2))
    base = loss.base_loss
    expected = base.regularization() if hasattr(
        base, 'regularization') else torch.zeros(())
    assert value.item() == expected.item()
    value.backward()
    assert output.grad.shape == output.shape
    assert loss.last_samples is None and loss.pop_critic_batch() is None
