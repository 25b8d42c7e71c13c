"""The Gaussian support of WAHRLoss and SAHRHead on targets from MMPose's
own encoders: the standard ``MSRAHeatmap``, DARK (``unbiased=True``) and
``UDPHeatmap``. DARK never cuts its Gaussian off, so ``gt > 0`` is most of
its heatmap; with the support ``gt >= exp(-4.5)`` (the 3-sigma value) the
losses see the same foreground and background under all three."""
import numpy as np
import pytest
import torch
from mmpose.codecs import MSRAHeatmap, UDPHeatmap
from mmpose.registry import MODELS
from mmpose.testing import get_packed_inputs

import mmpose_afl  # noqa: F401
from mmpose_afl.models.heads.sahr_branch import scale_heatmaps
from mmpose_afl.models.losses import gaussian_support

SIGMA = 2
SIZE = (24, 32)  # [W, H]; input = heatmap size, so no encoder rescales
ENCODERS = {
    'standard': MSRAHeatmap(SIZE, SIZE, sigma=SIGMA),
    'dark': MSRAHeatmap(SIZE, SIZE, sigma=SIGMA, unbiased=True),
    'udp': UDPHeatmap(SIZE, SIZE, sigma=SIGMA),
}
# integer keypoints (x, y): one inside, one near the border
KEYPOINTS = np.array([[[10., 15.], [3., 29.]]])
SUBPIXEL = np.array([[[10.3, 14.6], [17.5, 20.5]]])


def encode(name, keypoints=KEYPOINTS):
    """[1, K, H, W] heatmaps of ``keypoints`` [1, K, 2], float32 as the
    data pipeline gives them (the pixels exactly 3 sigma from an integer
    keypoint hold float32(exp(-4.5)), which is a little below the float64
    exp(-4.5): cast to float64, they would fall out of the support)."""
    heatmaps = ENCODERS[name].encode(keypoints,
                                     np.ones(keypoints.shape[:2]))['heatmaps']
    return torch.tensor(heatmaps)[None]


def disc(centres):
    """[1, K, H, W] bool: pixels at most 3 sigma from each centre."""
    ys, xs = np.mgrid[:SIZE[1], :SIZE[0]]
    return torch.tensor(
        np.stack([(xs - x)**2 + (ys - y)**2 <= (3 * SIGMA)**2
                  for x, y in centres]))[None]


def predictions(seed=0):
    return torch.tensor(
        np.random.RandomState(seed).uniform(-0.3, 1.3, (1, 2, 32, 24)),
        dtype=torch.float32)


def pixel_weights(loss, pred, gt):
    """The WAHR weight W of every pixel: the per-pixel loss W (P - T)^2
    with T = P - 1, read off as the gradient of the mean loss with respect
    to pixel-wise target weights (times the number of pixels)."""
    ones = torch.ones_like(pred, requires_grad=True)
    loss(pred, pred - 1, ones, weight_target=gt).backward()
    return ones.grad * pred.numel()


# the support -----------------------------------------------------------------


def test_gt_above_zero_is_most_of_a_dark_heatmap():
    # what breaks `gt > 0` as a foreground test: 13x13 patches (169 pixels,
    # 90 at the border) under the standard and UDP encoders, all 768
    # pixels (695 for the border keypoint) under DARK
    positive = {
        name: (encode(name) > 0).sum(dim=(2, 3))[0].tolist()
        for name in ENCODERS
    }
    assert positive == {
        'standard': [169, 90],
        'dark': [768, 695],
        'udp': [169, 90]
    }


def test_support_is_the_3_sigma_disc_under_every_encoder():
    expected = disc(KEYPOINTS[0])
    for name in ENCODERS:
        assert torch.equal(gaussian_support(encode(name)), expected), name
    # lattice points of radius 6; the border keypoint's disc is cut
    assert expected.sum(dim=(2, 3))[0].tolist() == [113, 71]


def test_subpixel_keypoints_move_only_the_standard_disc_rim():
    # DARK and UDP centre the Gaussian on the keypoint, the standard
    # encoder on the rounded keypoint int(x + 0.5): the same disc for DARK
    # and UDP; the standard one differs only in pixels about 3 sigma away
    dark = gaussian_support(encode('dark', SUBPIXEL))
    assert torch.equal(dark, disc(SUBPIXEL[0]))
    assert torch.equal(gaussian_support(encode('udp', SUBPIXEL)), dark)
    standard = gaussian_support(encode('standard', SUBPIXEL))
    assert torch.equal(standard, disc(np.floor(SUBPIXEL[0] + 0.5)))
    ys, xs = np.mgrid[:SIZE[1], :SIZE[0]]
    for k, (x, y) in enumerate(SUBPIXEL[0]):
        differ = (standard ^ dark)[0, k].numpy()
        distance = np.hypot(xs - x, ys - y)[differ]
        assert differ.sum() == (14, 16)[k]  # of 112 to 115 pixels
        assert (np.abs(distance - 3 * SIGMA) < 0.71).all()


def test_floor_zero_is_gt_above_zero():
    gt = encode('dark')
    assert torch.equal(gaussian_support(gt, 0.), gt > 0)


# WAHR --------------------------------------------------------------------


def build_wahr(**kwargs):
    return MODELS.build(dict(type='WAHRLoss', **kwargs))


def test_wahr_weight_is_the_same_under_every_encoder():
    # numpy: W = |1 - P| g + |P| (1 - g), g = gt^0.01 in the 3-sigma disc
    # and 0 outside, so W = |P| on the background
    pred = predictions()
    p = pred.numpy()
    inside = disc(KEYPOINTS[0]).numpy()
    g = np.where(inside, encode('standard').numpy()**0.01, 0)
    expected = np.abs(1 - p) * g + np.abs(p) * (1 - g)
    for name in ENCODERS:
        weights = pixel_weights(build_wahr(), pred, encode(name)).numpy()
        np.testing.assert_allclose(weights, expected, rtol=1e-5)
        np.testing.assert_allclose(
            weights[~inside], np.abs(p[~inside]), rtol=1e-6)


def test_wahr_weight_with_floor_zero_counts_dark_tails_as_foreground():
    # the old `gt > 0`: DARK's tails get g = gt^0.01 (mean 0.70 here), so
    # the background weight is far from |P|; the standard target's is only
    # off in the corners of its 13x13 patch (56 pixels, 19 at the border)
    pred = torch.full((1, 2, 32, 24), 0.02)
    background = ~disc(KEYPOINTS[0])
    dark = encode('dark')
    old = pixel_weights(build_wahr(support_floor=0.), pred, dark)
    g = dark.numpy()**0.01
    np.testing.assert_allclose(
        old.numpy(), 0.98 * g + 0.02 * (1 - g), rtol=1e-6)
    assert old[background].mean() > 0.4
    new = pixel_weights(build_wahr(), pred, dark)
    assert torch.allclose(new[background], torch.tensor(0.02))
    standard = pixel_weights(
        build_wahr(support_floor=0.), pred, encode('standard'))
    above = standard > 0.02 + 1e-6
    assert torch.equal(above & background,
                       (encode('standard') > 0) & background)
    assert int((above & background).sum()) == 56 + 19


def test_wahr_loss_on_a_dark_target_matches_numpy():
    # the regression target keeps DARK's tails: loss = mean(W (P - T)^2)
    pred, target = predictions(1), encode('dark')
    p, t = pred.numpy(), target.numpy()
    g = np.where(disc(KEYPOINTS[0]).numpy(), t**0.01, 0)
    w = np.abs(1 - p) * g + np.abs(p) * (1 - g)
    assert (t[g == 0] > 0).mean() > 0.9
    assert build_wahr()(pred, target).item() == pytest.approx(
        (w * (p - t)**2).mean(), rel=1e-6)


@pytest.mark.parametrize('floor', [-0.1, 1., 1.5])
def test_wahr_support_floor_is_checked_at_build(floor):
    with pytest.raises(ValueError, match='WAHRLoss: `support_floor`'):
        build_wahr(support_floor=floor)


# SAHR -------------------------------------------------------------------


def test_scaled_target_is_the_same_under_every_encoder():
    # numpy: gt^(1 + s) in the 3-sigma disc, 0 outside
    s = torch.tensor(
        np.random.RandomState(2).uniform(-0.5, 1, (1, 2, 32, 24)),
        dtype=torch.float32)
    inside = disc(KEYPOINTS[0]).numpy()
    expected = np.where(inside, encode('standard').numpy()**(1 + s.numpy()), 0)
    for mode in ('power', 'taylor'):
        for name in ENCODERS:
            scaled = scale_heatmaps(encode(name), s, mode)
            assert (scaled.numpy()[~inside] == 0).all(), (mode, name)
            if mode == 'power':
                np.testing.assert_allclose(scaled.numpy(), expected, rtol=1e-6)
            else:  # DARK's float64 Gaussian rounds a little differently
                assert torch.allclose(
                    scaled,
                    scale_heatmaps(encode('standard'), s, mode),
                    rtol=1e-6,
                    atol=0)
    old = scale_heatmaps(encode('dark'), s, support_floor=0.)
    assert (old.numpy()[~inside] > 0).mean() > 0.85  # 88 %: DARK's tails


def build_sahr(support_floor=None):
    floor = {} if support_floor is None else dict(support_floor=support_floor)
    return MODELS.build(
        dict(
            type='SAHRHead',
            in_channels=8,
            out_channels=2,
            deconv_out_channels=(8, ),
            deconv_kernel_sizes=(4, ),
            loss=dict(type='WAHRLoss', use_target_weight=True, **floor),
            **floor))


def sahr_losses(head, gt):
    samples = get_packed_inputs(
        batch_size=1,
        num_keypoints=2,
        input_size=SIZE,
        heatmap_size=SIZE,
        with_reg_label=False,
        with_simcc_label=False)['data_samples']
    samples[0].gt_fields.heatmaps = gt[0]
    samples[0].gt_instance_labels.keypoint_weights = torch.ones(1, 2)
    torch.manual_seed(0)
    return head.loss((torch.rand(1, 8, 16, 12), ), samples)


def test_sahr_losses_are_the_same_under_every_encoder():
    # s = the bias of the zero-weight last conv; the regulariser is
    # mean(s^2 [3-sigma disc]) * 1.0
    scales = torch.tensor([0.4, -0.3])
    inside = disc(KEYPOINTS[0]).numpy()
    expected = (scales.numpy()[None, :, None, None]**2 * inside).mean()
    losses = {}
    for floor in (None, 0.):
        head = build_sahr(floor)
        with torch.no_grad():
            head.scale_layers[3].bias.copy_(scales)
        losses[floor] = {
            name: sahr_losses(head, encode(name))
            for name in ENCODERS
        }
    for name, result in losses[None].items():
        assert result['loss_scale'].item() == pytest.approx(expected, rel=1e-6)
        assert result['loss_kpt'].item() == pytest.approx(
            losses[None]['standard']['loss_kpt'].item(), rel=1e-6), name
    # the old `gt > 0` regularises DARK's whole map (751 + 665 of 1536
    # pixels) and regresses its scaled tails
    old = losses[0.]['dark']
    positive = encode('dark').numpy() > 0
    assert old['loss_scale'].item() == pytest.approx(
        (scales.numpy()[None, :, None, None]**2 * positive).mean(), rel=1e-6)
    assert old['loss_scale'].item() > 5 * expected
    assert old['loss_kpt'].item() != pytest.approx(
        losses[None]['dark']['loss_kpt'].item(), rel=1e-3)


def test_the_3_sigma_pixel_is_inside_in_float32_and_float64():
    """A pixel exactly 3 sigma from an integer keypoint holds float32
    exp(-4.5); compared in float64 it must not fall out (with the float64
    floor exp(-4.5) it would: float32 rounds it down by 2e-10)."""
    import math

    from mmpose.codecs import MSRAHeatmap

    from mmpose_afl.models.losses import gaussian_support
    codec = MSRAHeatmap(input_size=(48, 64), heatmap_size=(12, 16), sigma=2)
    heatmap = torch.from_numpy(
        codec.encode(np.array([[[24., 32.]]]))['heatmaps'])[0]
    rim = heatmap[8 + 6, 6]  # 3 sigma = 6 px below the centre (x 6, y 8)
    assert rim == torch.tensor(math.exp(-4.5), dtype=torch.float32)
    assert gaussian_support(heatmap)[14, 6]
    assert gaussian_support(heatmap.double())[14, 6]
    assert not (heatmap.double() >= math.exp(-4.5))[14, 6]
