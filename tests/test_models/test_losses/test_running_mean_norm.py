"""The running-mean normaliser of FoWKAL on its own: the first update, the
blend, the clip, eval mode and bad statistics, against values by hand."""
import math

import pytest
import torch

from mmpose_afl.models.losses.running_mean_norm import (
    check_running_mean_args, running_mean_normalisers)


def call(running, terms, active=None, momentum=0.5, clip=4.0, training=True):
    terms = torch.tensor(terms)
    if active is None:
        active = torch.ones(terms.shape[1:], dtype=torch.bool)
    return running_mean_normalisers(running, terms, active, momentum, clip,
                                    training)


def test_first_update_is_the_batch_mean_with_each_term_clipped():
    running = torch.zeros(2)
    # term 0: keypoints 1, 2, 3, 100 -> lower median 2, clipped at 8:
    # mean (1 + 2 + 3 + 8) / 4 = 3.5; term 1: 1, 1, 1, 1 -> 1
    out = call(running, [[[1., 2.], [3., 100.]], [[1., 1.], [1., 1.]]])
    assert out.tolist() == pytest.approx([3.5, 1.])
    assert running.tolist() == pytest.approx([3.5, 1.])


def test_blend_with_momentum_and_clip_to_the_running_mean():
    running = torch.tensor([2., 1.])
    # batch means 3 and 100; the second is clipped at 4 * 1 = 4:
    # 0.5 * 2 + 0.5 * 3 = 2.5 and 0.5 * 1 + 0.5 * 4 = 2.5
    out = call(running, [[[3., 3.]], [[100., 100.]]])
    assert running.tolist() == pytest.approx([2.5, 2.5])
    assert torch.equal(out, running) and out is not running


def test_only_active_keypoints_count():
    running = torch.tensor([1., 1.])
    active = torch.tensor([[True, False]])
    # mean over the one active keypoint: 2 and 2 (inactive ones are 0)
    call(running, [[[2., 0.]], [[2., 0.]]], active, momentum=1.0)
    assert running.tolist() == pytest.approx([2., 2.])


def test_eval_uses_the_running_means_without_updating():
    running = torch.tensor([2., 0.])  # the second term never set
    out = call(running, [[[5., 7.]], [[3., 1.]]], training=False)
    assert out.tolist() == pytest.approx([2., 2.])  # batch mean for unset
    assert running.tolist() == [2., 0.]


def test_non_finite_or_empty_batches_leave_the_means():
    running = torch.tensor([2., 1.])
    call(running, [[[math.inf, 1.]], [[math.nan, 1.]]])
    assert running.tolist() == [2., 1.]
    call(
        running, [[[1., 1.]], [[1., 1.]]],
        active=torch.zeros(1, 2, dtype=torch.bool))
    assert running.tolist() == [2., 1.]


def test_the_result_carries_no_gradient():
    terms = torch.ones(2, 1, 2, requires_grad=True)
    out = running_mean_normalisers(
        torch.zeros(2), terms, torch.ones(1, 2, dtype=torch.bool), 0.1, 4.0,
        True)
    assert not out.requires_grad


@pytest.mark.parametrize('momentum,clip,field',
                         [(0., 4., '`norm_momentum`'),
                          (1.5, 4., '`norm_momentum`'),
                          (0.1, 0.5, '`norm_clip`'),
                          (0.1, math.inf, '`norm_clip`')])
def test_bad_arguments_name_the_field(momentum, clip, field):
    with pytest.raises(ValueError, match=field):
        check_running_mean_args(momentum, clip)
