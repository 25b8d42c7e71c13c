"""HSMLoss against numpy, its shape in Delta, and SigmoidHeatmapHead (the
head of the HSM configs) decoding keypoint scores in [0, 1]."""
from collections import defaultdict

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.fileio import load
from mmengine.runner import Runner
from mmpose.apis import init_model
from mmpose.models.heads import HeatmapHead
from mmpose.models.utils.tta import flip_heatmaps
from mmpose.registry import MODELS
from mmpose.testing import get_packed_inputs

import mmpose_afl  # noqa: F401
from tests.e2e import (REPO, data_options, last_checkpoint, run_test,
                       run_train, short_schedule)

CONFIGS = sorted(
    str(p.relative_to(REPO)) for p in REPO.glob('configs/hsm/*.py'))
DEMO = 'configs/hsm/td-hm_res18_hsm-1xb16-20e_synthetic-coco-128x96.py'


def numpy_hsm(logits, target, weights, beta, gamma):
    delta = np.abs(1 / (1 + np.exp(-logits)) - target)
    return ((np.exp(beta * delta) - 1) * delta**gamma * weights).mean()


def random_case(seed=0, shape=(2, 3, 4, 5)):
    rng = np.random.RandomState(seed)
    logits = rng.normal(0, 3, shape)
    target = rng.uniform(0, 1, shape)
    target[rng.rand(*shape) < 0.4] = 0
    weights = rng.choice([0., 0.5, 1.], size=shape[:2])
    return logits, target, weights


def build(**kwargs):
    return MODELS.build(dict(type='HSMLoss', **kwargs))


def test_hand_value():
    # logit 0 -> sigmoid 0.5, target 0: Delta = 0.5, (e^0.5 - 1) * 0.25
    value = build()(torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1))
    assert value.item() == pytest.approx((np.exp(0.5) - 1) * 0.25)


@pytest.mark.parametrize(
    'skip, expected',
    [
        # channel 0 (target [1, 0], logits 0): Delta = 0.5 on both pixels,
        # L0 = (e^0.5 - 1) / 4 each; channel 1 (target all 0, logits ln 3,
        # sigmoid 0.75): L1 = (e^0.75 - 1) * 9 / 16 each. The mean is over all
        # 4 elements either way (as KeypointMSELoss): (2 L0 + 2 L1) / 4 when
        # the empty channel counts, 2 L0 / 4 when it is skipped
        (False, ((np.exp(0.5) - 1) / 4 + (np.exp(0.75) - 1) * 9 / 16) / 2),
        (True, (np.exp(0.5) - 1) / 4 / 2),
    ])
def test_skip_empty_channel_by_hand(skip, expected):
    logits = torch.tensor([[[[0., 0.]], [[np.log(3.)] * 2]]])
    target = torch.tensor([[[[1., 0.]], [[0., 0.]]]])
    loss = build(skip_empty_channel=skip, loss_weight=2.)
    assert loss(logits, target).item() == pytest.approx(2 * expected)
    # with keypoint weights too (the empty channel's weight 1 changes
    # nothing when it is skipped)
    value = loss(logits, target, torch.tensor([[0.5, 1.]]))
    l0, l1 = (np.exp(0.5) - 1) / 4, (np.exp(0.75) - 1) * 9 / 16
    assert value.item() == pytest.approx(2 * (0.5 * l0 + (0 if skip else l1)) /
                                         2)


@pytest.mark.parametrize('beta,gamma', [(1., 2.), (2., 0.5), (0.3, 3.)])
def test_matches_numpy(beta, gamma):
    logits, target, weights = random_case()
    loss = build(beta=beta, gamma=gamma, loss_weight=1.5)
    value = loss(
        torch.tensor(logits), torch.tensor(target), torch.tensor(weights))
    expected = numpy_hsm(logits, target, weights[..., None, None], beta, gamma)
    assert value.item() == pytest.approx(1.5 * expected, rel=1e-12)


def test_per_sample_agrees_with_forward():
    logits, target, weights = map(torch.tensor, random_case(1))
    loss = build(loss_weight=2.0)
    per_sample = loss.per_sample(logits, target, weights)
    assert per_sample.shape == (2, )
    assert torch.equal(per_sample.mean() * 2.0, loss(logits, target, weights))
    for b in range(2):
        expected = numpy_hsm(logits[b].numpy(), target[b].numpy(),
                             weights[b].numpy()[:, None, None], 1., 2.)
        assert per_sample[b].item() == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize('target_value', [0., 0.3, 1.])
def test_zero_at_delta_zero_and_increasing_in_delta(target_value):
    loss = build()
    # sigmoid(logit) = target +- delta, delta on a grid within [0, 1]
    side = 1. if target_value < 1 else -1.
    room = 1 - target_value if side > 0 else target_value
    deltas = torch.linspace(0, room * 0.999, 50, dtype=torch.float64)
    probs = target_value + side * deltas
    logits = torch.logit(probs, eps=1e-12).view(-1, 1, 1, 1)
    values = loss.per_sample(logits, torch.full_like(logits, target_value))
    assert values[0].item() == pytest.approx(0, abs=1e-6)
    assert (values.diff() > 0).all()
    expected = (np.exp(deltas.numpy()) - 1) * deltas.numpy()**2
    np.testing.assert_allclose(values.numpy(), expected, rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize('gamma', [2., 0.5])
def test_gradient_finite_at_delta_zero(gamma):
    # target 0.5 and logit 0: Delta = 0 where d(Delta^gamma) is infinite
    # for gamma < 1; the loss's true derivative there is 0
    logits = torch.zeros(1, 2, 2, 2, requires_grad=True)
    build(gamma=gamma)(logits, torch.full((1, 2, 2, 2), 0.5)).backward()
    assert torch.equal(logits.grad, torch.zeros_like(logits))


def test_fp16_inputs():
    logits, target, weights = random_case(2)
    p = torch.tensor(logits, dtype=torch.float16, requires_grad=True)
    value = build()(p, torch.tensor(target, dtype=torch.float16),
                    torch.tensor(weights, dtype=torch.float16))
    value.backward()
    assert value.dtype == torch.float32
    assert torch.isfinite(value) and torch.isfinite(p.grad).all()
    # exp(20 * Delta) overflows fp16 (max 65504); the loss is float32
    value = build(beta=20.)(p, torch.ones_like(p))
    assert torch.isfinite(value) and value.item() > 65504


@pytest.mark.parametrize('field', ['beta', 'gamma'])
@pytest.mark.parametrize('bad', [0., -1.])
def test_parameters_must_be_positive(field, bad):
    with pytest.raises(ValueError, match=f'`{field}` must be > 0'):
        build(**{field: bad})


# SigmoidHeatmapHead -------------------------------------------------------

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


def heads(codec, seed=0):
    """A SigmoidHeatmapHead and a HeatmapHead with the same weights, whose
    logits are mostly negative (background-like)."""
    cfg = dict(
        in_channels=8,
        out_channels=4,
        deconv_out_channels=(8, ),
        deconv_kernel_sizes=(4, ),
        decoder=codec)
    torch.manual_seed(seed)
    ours = MODELS.build(dict(type='SigmoidHeatmapHead', **cfg))
    with torch.no_grad():
        for p in ours.parameters():
            p.normal_(0, 0.5)
        ours.final_layer.bias.fill_(-3.)
    stock = MODELS.build(dict(type='HeatmapHead', **cfg))
    stock.load_state_dict(ours.state_dict())
    return ours.eval(), stock.eval()


def batch(num_keypoints=4):
    data = get_packed_inputs(
        batch_size=3,
        num_keypoints=num_keypoints,
        input_size=(48, 64),
        heatmap_size=(12, 16),
        with_reg_label=False,
        with_simcc_label=False)
    return data['data_samples']


@pytest.mark.parametrize('codec', CODECS)
def test_scores_in_unit_interval_with_flip_test(codec):
    ours, stock = heads(CODECS[codec])
    samples = batch()
    feats = [(torch.rand(3, 8, 8, 6), ), (torch.rand(3, 8, 8, 6), )]
    test_cfg = dict(
        flip_test=True,
        flip_mode='heatmap',
        shift_heatmap=True,
        output_heatmaps=True)
    with torch.no_grad():
        preds, fields = ours.predict(feats, samples, test_cfg)
        stock_preds, stock_fields = stock.predict(feats, samples, test_cfg)
    stock_scores = np.stack([p.keypoint_scores for p in stock_preds])
    assert (stock_scores < 0).any()  # raw logits would give such scores
    scores = np.stack([p.keypoint_scores for p in preds])
    assert ((scores >= 0) & (scores <= 1)).all()
    # flip test averages logits, then the sigmoid; decoded as HeatmapHead
    probs = torch.stack([f.heatmaps for f in stock_fields]).sigmoid()
    for field, heatmap in zip(fields, probs):
        assert torch.allclose(field.heatmaps, heatmap)
    expected = stock.decode(probs)
    for pred, exp in zip(preds, expected):
        np.testing.assert_allclose(pred.keypoints, exp.keypoints)
        np.testing.assert_allclose(pred.keypoint_scores, exp.keypoint_scores)
    np.testing.assert_allclose(
        scores.reshape(-1),
        probs.flatten(2).max(dim=2).values.numpy().reshape(-1),
        rtol=1e-6)


def test_forward_and_loss_use_logits():
    ours, stock = heads(CODECS['msra'])
    samples = batch()
    feats = (torch.rand(3, 8, 8, 6), )
    assert torch.equal(ours(feats), stock(feats))
    losses = ours.train().loss(feats, samples)
    gt = torch.stack([d.gt_fields.heatmaps for d in samples])
    weights = torch.cat(
        [d.gt_instance_labels.keypoint_weights for d in samples])
    assert torch.allclose(losses['loss_kpt'],
                          build()(ours(feats), gt, weights))
    assert 0 <= losses['acc_pose'].item() <= 1


def test_gradient_matches_the_closed_form_derivative():
    # d/dp (e^{bD} - 1) D^g with D = |sigmoid(p) - y|:
    # [b e^{bD} D^g + (e^{bD} - 1) g D^{g-1}] * sign(sigmoid(p) - y) * s(1-s)
    beta, gamma = 1.5, 2.5
    logits, target, _ = random_case(3)
    p = torch.tensor(logits, requires_grad=True)
    build(beta=beta, gamma=gamma)(p, torch.tensor(target)).backward()
    s = 1 / (1 + np.exp(-logits))
    d = np.abs(s - target)
    d_gamma_1 = d**(gamma - 1)
    expected = (beta * np.exp(beta * d) * d**gamma + np.expm1(beta * d) * gamma
                * d_gamma_1) * np.sign(s - target) * s * (1 - s) / logits.size
    np.testing.assert_allclose(
        p.grad.numpy(), expected, rtol=1e-10, atol=1e-15)


def test_head_starts_at_the_background_prior():
    # HeatmapHead's zero bias would start every pixel at sigmoid 0.5; the
    # prior must survive init_weights(), which the runner calls
    for prior in (0.1, 0.01):
        head = MODELS.build(
            dict(
                type='SigmoidHeatmapHead',
                in_channels=8,
                out_channels=4,
                deconv_out_channels=(8, ),
                deconv_kernel_sizes=(4, ),
                prior_prob=prior))
        head.init_weights()
        bias = head.final_layer.bias.detach()
        np.testing.assert_allclose(bias.sigmoid().numpy(), prior, rtol=1e-6)
        with torch.no_grad():
            probs = head((torch.rand(2, 8, 8, 6), )).sigmoid()
        assert abs(probs.mean().item() - prior) < 0.01 * prior
        # the deconv layers keep HeatmapHead's init
        assert head.deconv_layers[0].weight.std().item() < 0.002


@pytest.mark.parametrize('prior', [0., 1., -0.5, 1.5])
def test_prior_outside_the_unit_interval_fails_at_build(prior):
    with pytest.raises(ValueError, match=r'`prior_prob` must lie in \(0, 1\)'):
        MODELS.build(
            dict(
                type='SigmoidHeatmapHead',
                in_channels=8,
                out_channels=4,
                prior_prob=prior))


@pytest.mark.parametrize('loss', [
    dict(type='HSMLoss'),
    dict(
        type='AFLHeatmapLoss',
        base_loss=dict(type='HSMLoss'),
        critic=dict(type='AFLCritic', num_keypoints=4)),
])
def test_hsm_under_a_head_without_the_sigmoid_fails_at_build(loss):
    with pytest.raises(
            ValueError,
            match=("HSMLoss takes logits, but model.head is HeatmapHead.*"
                   "model.head.type='SigmoidHeatmapHead'")):
        MODELS.build(
            dict(type='HeatmapHead', in_channels=8, out_channels=4, loss=loss))
    # the same loss under SigmoidHeatmapHead, or built on its own, is fine
    MODELS.build(
        dict(
            type='SigmoidHeatmapHead',
            in_channels=8,
            out_channels=4,
            loss=loss))
    MODELS.build(loss)

    class MySigmoidHead(HeatmapHead):  # a user's head that declares it
        applies_sigmoid = True

    assert type(
        MySigmoidHead(in_channels=8, out_channels=4,
                      loss=loss).loss_module).__name__ == loss['type']


def test_the_head_check_runs_whenever_a_head_takes_the_loss():
    head = MODELS.build(
        dict(type='HeatmapHead', in_channels=8, out_channels=4))
    with pytest.raises(ValueError, match='HSMLoss takes logits'):
        head.loss_module = MODELS.build(dict(type='HSMLoss'))
    # a module that is not a head holds it unchecked
    assert len(torch.nn.Sequential(MODELS.build(dict(type='HSMLoss')))) == 1


@pytest.mark.parametrize('codec', [
    dict(
        type='MegviiHeatmap',
        input_size=(48, 64),
        heatmap_size=(12, 16),
        kernel_size=11),
    dict(
        type='UDPHeatmap',
        input_size=(48, 64),
        heatmap_size=(12, 16),
        heatmap_type='combined'),
])
def test_decoder_must_give_gaussian_heatmaps(codec):
    with pytest.raises(ValueError, match='`decoder.type` must be a codec'):
        MODELS.build(
            dict(
                type='SigmoidHeatmapHead',
                in_channels=8,
                out_channels=4,
                decoder=codec))


# Configs --------------------------------------------------------------------


def test_every_method_config_is_covered():
    # 3 paper models, the synthetic demo and the fine-tune config
    assert len(CONFIGS) == 5 and DEMO in CONFIGS


def sigmoid_of_flip_averaged_maxima(config, checkpoint, data_root):
    """The keypoint scores the HSM demo must write, computed without
    SigmoidHeatmapHead's decode/predict: the sigmoid of the maxima of the
    logits averaged over the image and its flip (MMPose's flip test),
    per image id, one [K] row per instance."""
    cfg = Config.fromfile(str(REPO / config))
    cfg.merge_from_dict(
        dict(option.split('=', 1) for option in data_options(data_root)))
    model = init_model(cfg, str(checkpoint), device='cpu')
    loader = Runner.build_dataloader(
        dict(cfg.test_dataloader, num_workers=0, persistent_workers=False))
    test_cfg = cfg.model.test_cfg
    assert test_cfg.flip_test and test_cfg.flip_mode == 'heatmap'
    rows = defaultdict(list)
    with torch.no_grad():
        for data in loader:
            data = model.data_preprocessor(data, False)
            inputs, samples = data['inputs'], data['data_samples']
            flipped = flip_heatmaps(
                model(inputs.flip(-1), None, mode='tensor'),
                flip_indices=samples[0].metainfo['flip_indices'],
                shift_heatmap=test_cfg.shift_heatmap)
            logits = (model(inputs, None, mode='tensor') + flipped) / 2
            maxima = logits.flatten(2).max(dim=2).values.sigmoid()
            for sample, row in zip(samples, maxima.numpy()):
                rows[sample.img_id].append(row)
    return rows


def sorted_rows(rows):
    rows = np.array(rows)
    return rows[np.lexsort(rows.T[::-1])]


def test_demo_trains_and_tests_end_to_end(synthetic_coco, tmp_path):
    work_dir = tmp_path / 'work'
    log = run_train(
        DEMO, work_dir, data_root=synthetic_coco, cfg_options=short_schedule())
    assert 'loss_kpt' in log and 'coco/AP' in log
    # mim test with the config's flip test (and no OKS NMS, so that every
    # instance is written): the keypoint scores of the COCO results are the
    # sigmoid of the flip-averaged logits' maxima, recomputed here from the
    # checkpoint without the head's decoding. Raw logits, a sigmoid applied
    # twice or before the flip average would all fail this.
    prefix = tmp_path / 'results'
    checkpoint = last_checkpoint(work_dir)
    log = run_test(
        DEMO,
        checkpoint,
        tmp_path / 'test',
        data_root=synthetic_coco,
        cfg_options=short_schedule() + [
            f'test_evaluator.outfile_prefix={prefix}',
            'test_evaluator.nms_mode=none'
        ])
    assert 'coco/AP' in log
    results = defaultdict(list)
    for result in load(f'{prefix}.keypoints.json'):
        results[result['image_id']].append(result['keypoints'][2::3])
    expected = sigmoid_of_flip_averaged_maxima(DEMO, checkpoint,
                                               synthetic_coco)
    assert sorted(results) == sorted(expected) and len(expected) == 4
    for image_id, rows in expected.items():
        np.testing.assert_allclose(
            sorted_rows(results[image_id]),
            sorted_rows(rows),
            rtol=1e-5,
            err_msg=f'image {image_id}')
