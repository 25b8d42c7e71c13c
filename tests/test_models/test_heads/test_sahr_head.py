"""SAHRHead: the scale-adapted target, its effective sigma, the loss and
regulariser against numpy, gradients to s, inference identical to
HeatmapHead, stock checkpoints, build errors and the SAHR configs."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpose.codecs import MSRAHeatmap
from mmpose.registry import MODELS
from mmpose.testing import get_packed_inputs

import mmpose_afl  # noqa: F401
from mmpose_afl.models.heads.sahr_branch import scale_heatmaps
from tests.e2e import (REPO, data_options, last_checkpoint, run_train,
                       short_schedule)

# the top-down configs (the bottom-up ae_* ones have their own head)
CONFIGS = sorted(
    str(p.relative_to(REPO)) for p in REPO.glob('configs/sahr/td-*.py'))
DEMO = ('configs/sahr/'
        'td-hm_res18_sahr-wahr-1xb16-20e_synthetic-coco-128x96.py')
WB_DEMO = ('configs/sahr/td-hm_res18_sahr-wahr-1xb16-20e_'
           'synthetic-coco-wholebody-128x96.py')
CODECS = {
    'msra':
    dict(
        type='MSRAHeatmap',
        input_size=(48, 64),
        heatmap_size=(12, 16),
        sigma=2),
    'dark':
    dict(
        type='MSRAHeatmap',
        input_size=(48, 64),
        heatmap_size=(12, 16),
        sigma=2,
        unbiased=True),
    'udp':
    dict(
        type='UDPHeatmap', input_size=(48, 64), heatmap_size=(12, 16),
        sigma=2),
}
HEAD = dict(
    in_channels=8,
    out_channels=3,
    deconv_out_channels=(8, ),
    deconv_kernel_sizes=(4, ),
    decoder=CODECS['msra'])

FLOOR = np.exp(-4.5)  # the 3-sigma value, SAHRHead's default support floor


def numpy_taylor(gt, s):
    """The official code's target: gt + gt ln(gt) s + gt ln(gt)^2 s^2 / 2
    inside the support gt >= exp(-4.5), 0 outside."""
    log = np.log(np.where(gt >= FLOOR, gt, 1))
    return np.where(gt >= FLOOR, gt + gt * log * s + 0.5 * gt * log**2 * s**2,
                    0)


def numpy_power(gt, exponent):
    """gt^exponent inside the support gt >= exp(-4.5), 0 outside."""
    return np.where(gt >= FLOOR, gt**exponent, 0)


def gaussian_heatmaps(sigma=2., size=(24, 32)):
    """[1, 1, H, W] MSRA Gaussian at an integer pixel (12, 15)."""
    codec = MSRAHeatmap(input_size=size, heatmap_size=size, sigma=sigma)
    encoded = codec.encode(np.array([[[12., 15.]]]), np.ones((1, 1)))
    return torch.tensor(encoded['heatmaps'], dtype=torch.float64)[None]


def random_gt(seed=0, shape=(2, 3, 4, 5)):
    """Values in [0, 1]: 40 % zeros, 15 % in (0, exp(-4.5)) (a DARK
    target's tail, outside the support), the rest uniform."""
    rng = np.random.RandomState(seed)
    gt = rng.uniform(0, 1, shape)
    draw = rng.rand(*shape)
    gt[draw < 0.15] = rng.uniform(1e-6, FLOOR, shape)[draw < 0.15]
    gt[draw > 0.6] = 0
    return gt


# the scaled target ---------------------------------------------------------


def test_power_is_exact_power_inside_support():
    gt = random_gt()
    s = np.random.RandomState(1).uniform(-0.5, 2, gt.shape)
    scaled = scale_heatmaps(torch.tensor(gt), torch.tensor(s), 'power')
    np.testing.assert_allclose(
        scaled.numpy(), numpy_power(gt, 1 + s), rtol=1e-12)
    assert (scaled.numpy()[gt < FLOOR] == 0).all()
    assert ((gt > 0) & (gt < FLOOR)).any()  # the floor is exercised


def test_power_clamps_the_exponent():
    gt = random_gt(2)
    s = np.full(gt.shape, -0.95)
    scaled = scale_heatmaps(
        torch.tensor(gt), torch.tensor(s), 'power', min_exponent=0.2)
    np.testing.assert_allclose(
        scaled.numpy(), numpy_power(gt, 0.2), rtol=1e-12)


def test_taylor_is_the_official_form_and_close_to_power_for_small_s():
    gt = random_gt(3)
    gt[gt > 0] = np.maximum(gt[gt > 0], 1e-3)
    s = np.random.RandomState(4).uniform(-0.05, 0.05, gt.shape)
    taylor = scale_heatmaps(torch.tensor(gt), torch.tensor(s), 'taylor')
    np.testing.assert_allclose(taylor.numpy(), numpy_taylor(gt, s), rtol=1e-12)
    power = scale_heatmaps(torch.tensor(gt), torch.tensor(s), 'power')
    # remainder of the expansion of exp(s ln gt): <= gt |s ln gt|^3 / 6 e^x
    bound = gt * np.abs(s * np.log(np.where(gt >= FLOOR, gt, 1)))**3 / 6 * 1.5
    assert (np.abs(taylor.numpy() - power.numpy()) <= bound + 1e-15).all()
    # and they differ at large s, so the modes are really different
    big = torch.full_like(torch.tensor(gt), 1.0)
    assert not torch.allclose(
        scale_heatmaps(torch.tensor(gt), big, 'taylor'),
        scale_heatmaps(torch.tensor(gt), big, 'power'))


def fit_sigma(heatmap):
    """Least-squares fit of ln h = c - d^2 / (2 sigma^2) over the support of
    a [H, W] heatmap, centred at its maximum."""
    h = heatmap.numpy()
    cy, cx = np.unravel_index(h.argmax(), h.shape)
    ys, xs = np.nonzero(h > 0)
    d2 = (ys - cy)**2 + (xs - cx)**2
    slope, _ = np.polyfit(d2, np.log(h[ys, xs]), 1)
    return np.sqrt(-1 / (2 * slope))


@pytest.mark.parametrize('s', [0.0, 0.5, -0.36, 2.0])
def test_effective_sigma_of_scaled_gaussian(s):
    sigma = 2.
    gt = gaussian_heatmaps(sigma)
    assert fit_sigma(gt[0, 0]) == pytest.approx(sigma, rel=1e-6)
    scaled = scale_heatmaps(gt, torch.full_like(gt, s), 'power')
    assert fit_sigma(scaled[0, 0]) == pytest.approx(
        sigma / np.sqrt(1 + s), rel=1e-6)


@pytest.mark.parametrize('s', [0.02, 0.05, -0.05])
def test_effective_sigma_of_taylor_form_for_small_s(s):
    gt = gaussian_heatmaps(2.)
    taylor = scale_heatmaps(gt, torch.full_like(gt, s), 'taylor')
    assert fit_sigma(taylor[0, 0]) == pytest.approx(
        2. / np.sqrt(1 + s), rel=2e-3)


def test_taylor_form_is_not_a_narrower_gaussian_for_larger_s():
    # Why 'power' is the default: on a 3-sigma support |s ln gt| reaches
    # 4.5 s, and past |s ln gt| = 1 the quadratic term raises the tails, so
    # s = 0.5 widens the official code's target instead of narrowing it.
    gt = gaussian_heatmaps(2.)
    taylor = scale_heatmaps(gt, torch.full_like(gt, 0.5), 'taylor')
    assert fit_sigma(taylor[0, 0]) > 2.


@pytest.mark.parametrize('mode', ['power', 'taylor'])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float16])
def test_no_nan_from_zero_gt_or_extreme_s(mode, dtype):
    gt = torch.tensor(random_gt(5), dtype=dtype)
    gt[0, 0, 0, :3] = torch.tensor([1e-7, 1., 0.], dtype=dtype)
    s = torch.tensor(
        np.random.RandomState(6).uniform(-5, 5, gt.shape),
        dtype=dtype,
        requires_grad=True)
    scaled = scale_heatmaps(gt, s, mode)
    scaled.sum().backward()
    assert torch.isfinite(scaled).all() and torch.isfinite(s.grad).all()
    outside = gt.double() < FLOOR
    assert outside.any() and (scaled[outside] == 0).all()
    assert (s.grad[outside] == 0).all()


# the head's loss -----------------------------------------------------------


def build_head(**kwargs):
    return MODELS.build(dict(type='SAHRHead', **dict(HEAD, **kwargs)))


def fake_batch(gt, seed=0):
    samples = get_packed_inputs(
        batch_size=gt.shape[0],
        num_keypoints=gt.shape[1],
        input_size=(48, 64),
        heatmap_size=(12, 16),
        with_reg_label=False,
        with_simcc_label=False)['data_samples']
    weights = np.random.RandomState(seed).choice([0., 1., 2.], gt.shape[:2])
    for sample, heatmaps, w in zip(samples, gt, weights):
        sample.gt_fields.heatmaps = torch.tensor(heatmaps, dtype=torch.float32)
        sample.gt_instance_labels.keypoint_weights = torch.tensor(
            w[None], dtype=torch.float32)
    return samples, weights


@pytest.mark.parametrize('mode', ['power', 'taylor'])
def test_loss_and_regulariser_match_numpy(mode):
    head = build_head(scale_target=mode, scale_loss_weight=2.0)
    scales = np.array([0.3, -0.2, 0.05])
    with torch.no_grad():  # s = bias of the zero-weight last conv
        head.scale_layers[3].bias.copy_(torch.tensor(scales))
    gt = random_gt(7, (2, 3, 16, 12))
    samples, weights = fake_batch(gt)
    feats = (torch.rand(2, 8, 8, 6), )
    losses = head.loss(feats, samples)
    pred = head.forward(feats).detach().double().numpy()

    s = np.broadcast_to(scales[None, :, None, None], gt.shape)
    target = numpy_power(gt, 1 + s) if mode == 'power' else numpy_taylor(gt, s)
    g = numpy_power(gt, 0.01)  # WAHR weight from the original heatmaps
    w = np.abs(1 - pred) * g + np.abs(pred) * (1 - g)
    loss_kpt = ((pred - target)**2 * w * weights[..., None, None]).mean()
    loss_scale = (s**2 * (gt >= FLOOR)).mean() * 2.0
    assert losses['loss_kpt'].item() == pytest.approx(loss_kpt, rel=1e-5)
    assert losses['loss_scale'].item() == pytest.approx(loss_scale, rel=1e-5)
    assert 0 <= losses['acc_pose'].item() <= 1


def test_at_init_s_is_zero_and_the_loss_is_plain_wahr():
    # plain WAHR on the target cut off at the support: at s = 0 the scaled
    # target is gt inside the support and 0 outside
    head = build_head()
    gt = random_gt(8, (2, 3, 16, 12))
    samples, weights = fake_batch(gt)
    feats = (torch.rand(2, 8, 8, 6), )
    for _ in range(2):  # at construction and after init_weights()
        _, scales = head.forward_with_scales(feats)
        assert torch.equal(scales, torch.zeros_like(scales))
        losses = head.loss(feats, samples)
        wahr = MODELS.build(dict(type='WAHRLoss'))
        expected = wahr(
            head(feats), torch.tensor(gt * (gt >= FLOOR), dtype=torch.float32),
            torch.tensor(weights, dtype=torch.float32))
        assert torch.allclose(losses['loss_kpt'], expected)
        assert losses['loss_scale'].item() == 0
        head.init_weights()
    assert head.final_layer.weight.abs().max() > 0  # Normal init ran


@pytest.mark.parametrize('mode', ['power', 'taylor'])
def test_gradients_reach_s(mode):
    # s is the bias of the zero-weight last conv: compare d loss_kpt / d s
    # with central finite differences, the regulariser switched off
    head = build_head(scale_target=mode, scale_loss_weight=0.).double()
    gt = random_gt(9, (2, 3, 16, 12))
    samples, _ = fake_batch(gt)
    for sample in samples:
        sample.gt_fields.heatmaps = sample.gt_fields.heatmaps.double()
        labels = sample.gt_instance_labels
        labels.keypoint_weights = labels.keypoint_weights.double()
    feats = (torch.rand(2, 8, 8, 6, dtype=torch.float64), )
    bias = head.scale_layers[3].bias
    with torch.no_grad():
        bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    head.loss(feats, samples)['loss_kpt'].backward()
    numeric = []
    for k in range(3):
        values = []
        for step in (1e-6, -1e-6):
            with torch.no_grad():
                bias[k] += step
                values.append(head.loss(feats, samples)['loss_kpt'].item())
                bias[k] -= step
        numeric.append((values[0] - values[1]) / 2e-6)
    assert np.abs(numeric).min() > 0
    np.testing.assert_allclose(bias.grad.numpy(), numeric, rtol=1e-5)
    assert head.scale_layers[3].weight.grad.abs().max() > 0


def test_regulariser_gradient():
    # d/ds [w mean(s^2 [gt >= floor])] = 2 w s [gt >= floor] / N
    head = build_head(scale_loss_weight=3.)
    gt = random_gt(11, (2, 3, 16, 12))
    samples, _ = fake_batch(gt)
    with torch.no_grad():
        head.scale_layers[3].bias.fill_(0.5)
    head.loss((torch.rand(2, 8, 8, 6), ), samples)['loss_scale'].backward()
    expected = 3 * 2 * 0.5 * (gt >= FLOOR).sum(axis=(0, 2, 3)) / gt.size
    np.testing.assert_allclose(
        head.scale_layers[3].bias.grad.numpy(), expected, rtol=1e-5)


def test_other_losses_get_the_scaled_target_only():
    head = build_head(
        loss=dict(type='KeypointMSELoss', use_target_weight=True))
    with torch.no_grad():
        head.scale_layers[3].bias.fill_(0.4)
    gt = random_gt(10, (2, 3, 16, 12))
    samples, weights = fake_batch(gt)
    feats = (torch.rand(2, 8, 8, 6), )
    pred = head(feats).detach().double().numpy()
    expected = ((pred - numpy_power(gt, 1.4))**2 *
                weights[..., None, None]).mean()
    assert head.loss(feats, samples)['loss_kpt'].item() == pytest.approx(
        expected, rel=1e-5)


# inference and checkpoints --------------------------------------------------


@pytest.mark.parametrize('codec', CODECS)
@pytest.mark.parametrize('flip_test', [False, True])
def test_predictions_identical_to_heatmap_head(codec, flip_test):
    cfg = dict(HEAD, decoder=CODECS[codec])
    torch.manual_seed(0)
    stock = MODELS.build(dict(type='HeatmapHead', **cfg)).eval()
    with torch.no_grad():
        for p in stock.parameters():
            p.normal_(0, 0.3)
    head = MODELS.build(dict(type='SAHRHead', **cfg)).eval()
    result = head.load_state_dict(stock.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys and all(
        k.startswith('scale_layers.') for k in result.missing_keys)
    # (BatchNorm tolerates a missing num_batches_tracked)
    assert set(result.missing_keys) == {
        k
        for k in head.state_dict() if k.startswith('scale_layers.')
        and not k.endswith('num_batches_tracked')
    }
    with torch.no_grad():  # non-zero scale maps must not matter
        head.scale_layers[3].bias.fill_(0.7)

    samples = get_packed_inputs(
        batch_size=2,
        num_keypoints=3,
        input_size=(48, 64),
        heatmap_size=(12, 16),
        with_reg_label=False,
        with_simcc_label=False)['data_samples']
    feats = (torch.rand(2, 8, 8, 6), )
    if flip_test:
        feats = [feats, (torch.rand(2, 8, 8, 6), )]
    test_cfg = dict(
        flip_test=flip_test,
        flip_mode='heatmap',
        shift_heatmap=True,
        output_heatmaps=True)
    with torch.no_grad():
        preds, fields = head.predict(feats, samples, test_cfg)
        stock_preds, stock_fields = stock.predict(feats, samples, test_cfg)
    for a, b in zip(preds, stock_preds):
        assert np.array_equal(a.keypoints, b.keypoints)
        assert np.array_equal(a.keypoint_scores, b.keypoint_scores)
    for a, b in zip(fields, stock_fields):
        assert torch.equal(a.heatmaps, b.heatmaps)


def test_stock_model_checkpoint_loads_into_the_sahr_model():
    # what `load_from` does with a checkpoint of the baseline (HeatmapHead)
    baseline = Config.fromfile(
        str(REPO / 'configs/baseline/'
            'td-hm_res18_1xb16-20e_synthetic-coco-128x96.py'))
    stock = MODELS.build(baseline.model)
    model = MODELS.build(Config.fromfile(str(REPO / DEMO)).model)
    result = model.load_state_dict(stock.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys and all(
        k.startswith('head.scale_layers.') for k in result.missing_keys)
    for key, value in stock.state_dict().items():
        assert torch.equal(model.state_dict()[key], value)


# build errors ---------------------------------------------------------------


@pytest.mark.parametrize('kwargs,field', [
    (dict(scale_kernel_size=8), '`scale_kernel_size`'),
    (dict(scale_kernel_size=0), '`scale_kernel_size`'),
    (dict(scale_kernel_size=3.0), '`scale_kernel_size`'),
    (dict(min_scale_exponent=0.), '`min_scale_exponent`'),
    (dict(min_scale_exponent=-0.5), '`min_scale_exponent`'),
    (dict(scale_target='cubic'), '`scale_target`'),
    (dict(scale_loss_weight=-1.), '`scale_loss_weight`'),
    (dict(support_floor=1.), '`support_floor`'),
    (dict(support_floor=-0.01), '`support_floor`'),
    (dict(loss=dict(type='WAHRLoss', support_floor=0.)),
     '`loss.support_floor`'),
    (dict(
        decoder=dict(
            type='MegviiHeatmap',
            input_size=(48, 64),
            heatmap_size=(12, 16),
            kernel_size=11)), '`decoder.type`'),
    (dict(
        decoder=dict(
            type='UDPHeatmap',
            input_size=(48, 64),
            heatmap_size=(12, 16),
            heatmap_type='combined')), '`decoder.type`'),
])
def test_build_errors_name_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field.replace('.', r'\.')):
        build_head(**kwargs)


def test_effective_sigma():
    head = build_head(min_scale_exponent=0.25)
    s = torch.tensor([0., 0.5, -0.36, -0.9])
    expected = 2. / np.sqrt(np.maximum(1 + s.numpy(), 0.25))
    np.testing.assert_allclose(
        head.effective_sigma(s).numpy(), expected, rtol=1e-6)


def test_kernel_size_is_configurable():
    head = build_head(scale_kernel_size=5)
    assert head.scale_layers[3].kernel_size == (5, 5)
    assert head.scale_layers[3].groups == 3
    _, scales = head.forward_with_scales((torch.rand(1, 8, 8, 6), ))
    assert scales.shape == (1, 3, 16, 12)


# configs --------------------------------------------------------------------

TAYLOR = [c for c in CONFIGS if 'sahr-taylor-wahr' in c]


def test_every_method_config_is_covered():
    # 3 paper models (power and taylor each), 2 synthetic demos and the
    # fine-tune config
    assert len(CONFIGS) == 9 and len(TAYLOR) == 3 and DEMO in CONFIGS
    assert WB_DEMO in CONFIGS


@pytest.mark.parametrize('config', TAYLOR)
def test_taylor_config_is_its_power_twin_with_the_official_target(config):
    # both models are built in tests/test_configs/test_configs_build.py;
    # here the configs compared
    taylor = Config.fromfile(str(REPO / config))
    power = Config.fromfile(
        str(REPO / config.replace('sahr-taylor-wahr', 'sahr-wahr')))
    assert taylor.model.head.scale_target == 'taylor'
    assert power.model.head.scale_target == 'power'
    taylor.model.head.pop('scale_target')
    power.model.head.pop('scale_target')
    assert taylor.to_dict() == power.to_dict()


def test_demo_trains_end_to_end_and_scales_are_drawn(synthetic_coco, tmp_path):
    work_dir = tmp_path / 'work'
    log = run_train(
        DEMO, work_dir, data_root=synthetic_coco, cfg_options=short_schedule())
    assert 'loss_scale' in log and 'coco/AP' in log
    checkpoint = last_checkpoint(work_dir)
    state = torch.load(
        checkpoint, map_location='cpu', weights_only=False)['state_dict']
    # s trained: its last conv starts at exactly 0 (weight and bias), and
    # Adam moves a parameter only where a gradient reached it (at s = 0 the
    # regulariser's gradient 2 s is 0, so it is the heatmap loss's)
    for name in ('weight', 'bias'):
        assert state[f'head.scale_layers.3.{name}'].abs().max() > 0, name

    out = tmp_path / 'scales'
    subprocess.run([
        sys.executable, 'tools/vis_sahr_scales.py', DEMO,
        str(checkpoint), '--num-images', '3', '--draw', '1', '--out',
        str(out), '--cfg-options', *data_options(synthetic_coco)
    ],
                   cwd=REPO,
                   check=True,
                   capture_output=True)
    summary = json.loads((out / 'sigma_eff.json').read_text())
    assert summary['sigma'] == 2 and summary['num_images'] == 3
    assert len(summary['keypoints']) == 17
    # after two tiny steps s is still about 0: sigma_eff about sigma, but
    # not exactly (the scale maps drawn are the trained ones, not zeros)
    stats = summary['keypoints'].values()
    for keypoint in stats:
        assert keypoint['mean'] == pytest.approx(2., abs=0.05)
    assert any(k['mean'] != 2. or k['std'] > 0 for k in stats)
    assert (out / 'sigma_eff.png').is_file()
    assert (out / 'image_0.png').is_file()
