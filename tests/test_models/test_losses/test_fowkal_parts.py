"""FoWKAL's part layout: the checks, the one-hot map, 1/N_part, the dense
mask and the initial factors, against values written out by hand."""
import pytest
import torch

from mmpose_afl.models.losses.fowkal_parts import PartLayout, check_parts

# parts of 3, 1 and 2 keypoints, not in index order
PARTS = dict(big=[0, 2, 4], single=[1], pair=[3, 5])


def test_onehot_shares_and_dense_mask_by_hand():
    layout = PartLayout(PARTS, dense_parts=('pair', ))
    assert layout.num_keypoints == 6
    assert layout.onehot().tolist() == [[1, 0, 1, 0, 1, 0], [0, 1, 0, 0, 0, 0],
                                        [0, 0, 0, 1, 0, 1]]
    assert layout.part_share().tolist() == pytest.approx(
        [1 / 3, 1, 1 / 3, 1 / 2, 1 / 3, 1 / 2])
    assert layout.dense().tolist() == [0, 0, 0, 1, 0, 1]


def test_initial_factors_by_hand():
    layout = PartLayout(PARTS, dense_parts=('single', ))
    assert layout.initial_factors(dict(dense=0.8, coarse=0.2)).tolist() == \
        pytest.approx([0.2, 0.8, 0.2, 0.2, 0.2, 0.2])
    assert layout.initial_factors(dict(big=0.3, single=0.6,
                                       pair=0.45)).tolist() == pytest.approx(
                                           [0.3, 0.6, 0.3, 0.45, 0.3, 0.45])
    assert layout.initial_factors(0.5).tolist() == [0.5] * 6


@pytest.mark.parametrize('lambda_init,message', [
    (0., r'values must lie in \(0, 1\)'),
    (True, r'values must lie in \(0, 1\)'),
    (dict(dense=0.5), "as a dict needs the keys"),
])
def test_bad_initial_factors(lambda_init, message):
    with pytest.raises(ValueError, match=message):
        PartLayout(PARTS, ()).initial_factors(lambda_init)


@pytest.mark.parametrize('parts,num_keypoints,message', [
    ({}, None, 'non-empty dict'),
    (dict(a=[0, 1], b=[1, 2]), None, r'repeated \[1\], missing \[3\]'),
    (dict(a=[0, 1.0]), None, r'non-integers \[1.0\]'),
    (dict(a=[0, 1]), 3, '`parts` hold 2 keypoint indices but '
     '`num_keypoints` is 3'),
])
def test_bad_parts(parts, num_keypoints, message):
    with pytest.raises(ValueError, match=message):
        check_parts(parts, num_keypoints)


def test_dense_parts_must_be_parts():
    with pytest.raises(ValueError, match=r"`dense_parts` \['hand'\]"):
        PartLayout(PARTS, dense_parts=('hand', ))


def test_layout_tensors_are_new_each_call():
    layout = PartLayout(PARTS, ())
    layout.onehot().zero_()
    assert torch.equal(layout.onehot().sum(1), torch.tensor([3., 1., 2.]))
