"""Bottom-up SAHR (AESAHRHead), the trainable AE head (MaskedAEHead) and
codec (AssociativeEmbeddingLabels): the scaled target of several people in
one image against hand values, the losses against numpy, gradients to s,
decoding identical to the stock AE head, stock checkpoints, build errors,
the configs, and real mim train / test / --resume runs on the multi-person
synthetic set."""
import inspect
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.structures import InstanceData, PixelData
from mmpose.codecs import AssociativeEmbedding
from mmpose.registry import DATASETS, KEYPOINT_CODECS, MODELS
from mmpose.structures import PoseDataSample
from mmpose.utils import register_all_modules
from torch import nn

import mmpose_afl  # noqa: F401
from mmpose_afl import zoo
from mmpose_afl.datasets.synthetic import generate_dataset
from mmpose_afl.models.heads.sahr_branch import scale_heatmaps
from tests.e2e import (REPO, assert_same_tensors, last_checkpoint, rank_states,
                       run_dist_train, run_test, run_train, short_schedule,
                       with_probe)

register_all_modules()

FLOOR = math.exp(-4.5)
# the floor as torch compares a float32 heatmap with it (cast to float32,
# so the 3-sigma rim, float32 exp(-4.5), is inside)
FLOOR32 = np.float32(FLOOR)
COCO = 'configs/sahr/ae_hrnet-w32_sahr-wahr-8xb24-300e_coco-512x512.py'
TAYLOR = ('configs/sahr/'
          'ae_hrnet-w32_sahr-taylor-wahr-8xb24-300e_coco-512x512.py')
DEMO = ('configs/sahr/'
        'ae_res18_sahr-wahr-1xb8-40e_synthetic-coco-multi-scale-256x256.py')
BASELINE = ('configs/baseline/'
            'ae_res18_1xb8-40e_synthetic-coco-multi-scale-256x256.py')
STOCK_AE = ('body_2d_keypoint/associative_embedding/coco/'
            'ae_hrnet-w32_8xb24-300e_coco-512x512.py')
CODEC = dict(
    type='AssociativeEmbeddingLabels',
    input_size=(16, 16),
    heatmap_size=(16, 16),
    sigma=2,
    decode_keypoint_order=[0, 1],
    decode_max_instances=5)
HEAD = dict(
    in_channels=8,
    num_keypoints=2,
    deconv_out_channels=None,
    tag_loss=dict(type='AssociativeEmbeddingLoss', loss_weight=0.01),
    decoder=CODEC)

# the scaled target of two people of different scales -----------------------


def two_people_heatmap():
    """[1, 1, 32, 32] AE target of person A at (x, y) = (8, 10) and B at
    (22, 20), sigma 2, and a scale map with s = 0.5 on A's half (x < 16)
    and s = -0.3 on B's."""
    codec = AssociativeEmbedding(
        input_size=(32, 32), heatmap_size=(32, 32), sigma=2)
    encoded = codec.encode(
        np.array([[[8., 10.]], [[22., 20.]]]), np.ones((2, 1)))
    gt = torch.tensor(encoded['heatmaps'], dtype=torch.float64)[None]
    scales = torch.full_like(gt, 0.5)
    scales[..., 16:] = -0.3
    return gt, scales


# (x, y): gt^(1 + s) = exp(-(1 + s) d^2 / 8) by hand, d^2 to the person's
# keypoint; A: s = 0.5, B: s = -0.3
HAND_POWER = {
    (8, 10): 1.0,
    (9, 10): 0.829029,
    (10, 11): 0.391606,
    (11, 13): 0.034218,
    (14, 11): 0.0,  # d^2 = 37: gt 0.0098 < exp(-4.5)
    (22, 20): 1.0,
    (23, 20): 0.916219,
    (24, 21): 0.645649,
    (25, 23): 0.207008,
    (27, 23): 0.051047,
    (28, 26): 0.0,  # d^2 = 72: gt = exp(-9) > 0 but outside the support
    (16, 15): 0.0,  # between the people
}
# gt (1 + s ln gt + (s ln gt)^2 / 2), the official code's form
HAND_TAYLOR = {(9, 10): 0.829064, (27, 23): 0.044045}


def test_scaled_target_of_two_people_of_different_scales():
    gt, scales = two_people_heatmap()
    assert gt[0, 0, 10, 8] == 1 and gt[0, 0, 20, 22] == 1
    assert gt[0, 0, 26, 28] > 0  # the codec's square patch
    power = scale_heatmaps(gt, scales, 'power')[0, 0]
    for (x, y), value in HAND_POWER.items():
        assert power[y, x].item() == pytest.approx(value, abs=1e-6), (x, y)
    taylor = scale_heatmaps(gt, scales, 'taylor')[0, 0]
    for (x, y), value in HAND_TAYLOR.items():
        assert taylor[y, x].item() == pytest.approx(value, abs=1e-6), (x, y)
    # the whole map: each person's Gaussian narrowed / widened by its own
    # s inside the 3-sigma disc (d^2 < 36; on its rim, d^2 = 36, the codec's
    # float32 exp(-4.5) rounds below the floor: not compared)
    ys, xs = np.mgrid[:32, :32]
    expected = np.zeros((32, 32))
    rim = np.zeros((32, 32), bool)
    for (cx, cy), s in (((8, 10), 0.5), ((22, 20), -0.3)):
        d2 = (xs - cx)**2 + (ys - cy)**2
        expected = np.where(d2 < 36, np.exp(-(1 + s) * d2 / 8), expected)
        rim |= d2 == 36
    np.testing.assert_allclose(
        power.numpy()[~rim], expected[~rim], rtol=1e-6, atol=1e-12)


# helpers for head tests -----------------------------------------------------


def build_head(type_='AESAHRHead', **kwargs):
    return MODELS.build(dict(type=type_, **dict(HEAD, **kwargs)))


class FixedScales(nn.Module):
    """Stands in for ``scale_layers``: returns the given scale maps."""

    def __init__(self, scales):
        super().__init__()
        self.scales = scales

    def forward(self, x):
        return self.scales


def fake_batch(seed=0, dtype=torch.float32):
    """Two 16x16 images, 2 keypoint types: image 0 has two people, image 1
    one, encoded by the codec; image 0's mask drops a band of rows."""
    rng = np.random.RandomState(seed)
    codec = KEYPOINT_CODECS.build(CODEC)
    samples = []
    for num in (2, 1):
        keypoints = rng.randint(2, 14, (num, 2, 2)).astype(float)
        visible = np.ones((num, 2))
        visible[0, 1] = 0 if num == 1 else 1
        encoded = codec.encode(keypoints, visible)
        mask = np.ones((1, 16, 16), bool)
        if num == 2:
            mask[:, 5:7] = False
        sample = PoseDataSample(
            metainfo=dict(
                flip_indices=[1, 0],
                img_shape=(16, 16),
                input_size=(16, 16),
                input_center=np.array([8., 8.]),
                input_scale=np.array([16., 16.])))
        sample.gt_fields = PixelData(
            heatmaps=torch.tensor(encoded['heatmaps'], dtype=dtype),
            heatmap_mask=torch.tensor(mask))
        sample.gt_instance_labels = InstanceData(
            keypoint_indices=torch.tensor(encoded['keypoint_indices']),
            keypoint_weights=torch.tensor(encoded['keypoint_weights']))
        samples.append(sample)
    return samples


def stacked(samples, field):
    return torch.stack([getattr(s.gt_fields, field) for s in samples])


def numpy_power(gt, s):
    support = gt >= FLOOR32
    return np.where(support, np.exp(
        (1 + s) * np.log(np.where(support, gt, 1))), 0)


def numpy_taylor(gt, s):
    support = gt >= FLOOR32
    log = np.log(np.where(support, gt, 1))
    return np.where(support, gt * (1 + log * s + 0.5 * (log * s)**2), 0)


# the losses -----------------------------------------------------------------


@pytest.mark.parametrize('mode', ['power', 'taylor'])
def test_losses_match_numpy_with_scale_maps_varying_per_pixel(mode):
    head = build_head(scale_target=mode, scale_loss_weight=2.0)
    samples = fake_batch()
    s = torch.tensor(
        np.random.RandomState(1).uniform(-0.5, 1, (2, 2, 16, 16)),
        dtype=torch.float32)
    head.scale_layers = FixedScales(s)
    feats = (torch.rand(2, 8, 16, 16), )
    losses = head.loss(feats, samples)

    pred, tags = (t.detach().double().numpy() for t in head.forward(feats))
    gt = stacked(samples, 'heatmaps').double().numpy()
    mask = stacked(samples, 'heatmap_mask').double().numpy()
    s = s.double().numpy()
    support = gt >= FLOOR32
    target = numpy_power(gt, s) if mode == 'power' else numpy_taylor(gt, s)
    g = np.where(support, gt**0.01, 0)  # WAHR weight from the original gt
    w = np.abs(1 - pred) * g + np.abs(pred) * (1 - g)
    loss_kpt = ((pred - target)**2 * w * mask).mean()
    loss_scale = (s**2 * support * mask).mean() * 2.0
    assert losses['loss_kpt'].item() == pytest.approx(loss_kpt, rel=1e-5)
    assert losses['loss_scale'].item() == pytest.approx(loss_scale, rel=1e-5)
    # the tag loss is the stock one on the stock tags
    stock = MODELS.build(HEAD['tag_loss'])
    pull, push = stock(
        torch.tensor(tags, dtype=torch.float32),
        [d.gt_instance_labels.keypoint_indices for d in samples])
    assert losses['loss_pull'].item() == pytest.approx(pull.item())
    assert losses['loss_push'].item() == pytest.approx(push.item())
    assert losses['loss_push'].item() > 0  # two people in image 0


def test_at_init_s_is_zero_and_the_keypoint_loss_is_wahr():
    head = build_head()
    samples = fake_batch(2)
    feats = (torch.rand(2, 8, 16, 16), )
    gt, mask = stacked(samples, 'heatmaps'), stacked(samples, 'heatmap_mask')
    wahr = MODELS.build(dict(type='WAHRLoss'))
    for _ in range(2):  # at construction and after init_weights()
        _, _, scales = head.forward_with_scales(feats)
        assert torch.equal(scales, torch.zeros_like(scales))
        losses = head.loss(feats, samples)
        heatmaps, _ = head.forward(feats)
        # s = 0: the target is gt on its support, 0 on the codec's square
        # patch corners below exp(-4.5) (scale_heatmaps)
        expected = wahr(
            heatmaps,
            torch.where(gt >= FLOOR, gt, 0),
            None,
            mask,
            weight_target=gt)
        assert torch.allclose(losses['loss_kpt'], expected)
        assert losses['loss_scale'].item() == 0
        head.init_weights()
    assert head.final_layer.weight.abs().max() > 0  # Normal init ran


def test_masked_ae_head_loss_and_why_it_exists():
    samples = fake_batch(3)
    feats = (torch.rand(2, 8, 16, 16), )
    head = build_head(
        'MaskedAEHead',
        keypoint_loss=dict(type='KeypointMSELoss', use_target_weight=True))
    losses = head.loss(feats, samples)
    pred = head.forward(feats)[0].detach().double().numpy()
    gt = stacked(samples, 'heatmaps').double().numpy()
    mask = stacked(samples, 'heatmap_mask').double().numpy()
    assert losses['loss_kpt'].item() == pytest.approx(
        ((pred - gt)**2 * mask).mean(), rel=1e-5)
    assert set(losses) == {'loss_kpt', 'loss_pull', 'loss_push'}
    # the stock head passes per-person keypoint weights ([sum N, K] = [3, 2])
    # as weights of the [B, K] = [2, 2] heatmap channels: the batch fails
    stock = build_head(
        'AssociativeEmbeddingHead',
        keypoint_loss=dict(type='KeypointMSELoss', use_target_weight=True))
    with pytest.raises(AssertionError, match='mismatched shapes'):
        stock.loss(feats, samples)


def ae_head_loss(head, feats, samples):
    return sum(v for k, v in head.loss(feats, samples).items()
               if k.startswith('loss'))


def assert_finite_state(head):
    for name, tensor in head.state_dict().items():
        if tensor.is_floating_point():
            assert tensor.isfinite().all(), name


@pytest.mark.parametrize('type_', ['AESAHRHead', 'MaskedAEHead'])
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
def test_bottom_up_heads_under_autocast(type_, dtype):
    """The edge-input fuzz cases
    (tests/test_models/test_losses/test_loss_fuzz.py) for the bottom-up
    heads: under CPU autocast the loss is finite and within the dtype's
    precision of float32's."""
    try:
        with torch.autocast('cpu', dtype=dtype):
            torch.ones(1) @ torch.ones(1)
    except RuntimeError as error:  # torch 2.1: bfloat16 only on the CPU
        pytest.skip(f'no {dtype} CPU autocast in this torch: {error}')
    head = build_head(type_)
    samples, feats = fake_batch(4), (torch.rand(2, 8, 16, 16), )
    expected = ae_head_loss(head, feats, samples)
    with torch.autocast('cpu', dtype=dtype):
        value = ae_head_loss(head, feats, samples)
    value.backward()
    torch.testing.assert_close(value.float(), expected, rtol=3e-2, atol=1e-5)
    assert all(p.grad is None or p.grad.isfinite().all()
               for p in head.parameters())
    assert_finite_state(head)


@pytest.mark.parametrize('type_', ['AESAHRHead', 'MaskedAEHead'])
def test_bottom_up_heads_channels_last_and_bad_shapes(type_):
    head = build_head(type_)
    samples, feats = fake_batch(5), (torch.rand(2, 8, 16, 16), )
    expected = ae_head_loss(head, feats, samples)
    torch.testing.assert_close(
        ae_head_loss(
            head,
            tuple(f.to(memory_format=torch.channels_last) for f in feats),
            samples), expected)
    for sample in samples:  # gt one pixel narrower than the output
        gt = sample.gt_fields
        sample.gt_fields = PixelData(
            heatmaps=gt.heatmaps[..., :-1],
            heatmap_mask=gt.heatmap_mask[..., :-1])
    with pytest.raises(ValueError, match=r'\[2, 2, 16, 15\]'):
        head.loss(feats, samples)


@pytest.mark.parametrize('pixel', [math.nan, math.inf, 1e30])
def test_bottom_up_sahr_head_bad_pixel_leaves_the_state_finite(pixel):
    """One bad value in the final layer's output (what an fp16 overflow
    gives; as in tests/test_models/test_losses/test_loss_fuzz.py): the loss
    may be non-finite, the head's state stays finite, and on the next batch
    the head gives what a twin that saw the same batch without the bad value
    gives."""
    head, twin = build_head(), build_head()
    twin.load_state_dict(head.state_dict())
    samples, feats = fake_batch(6), (torch.rand(2, 8, 16, 16), )

    def corrupt(module, inputs, output):
        output = output.clone()
        output[0, 0, 3, 3] = pixel
        return output

    hook = head.final_layer.register_forward_hook(corrupt)
    head.loss(feats, samples)
    hook.remove()
    twin.loss(feats, samples)
    assert_finite_state(head)
    torch.testing.assert_close(
        ae_head_loss(head, feats, samples), ae_head_loss(twin, feats, samples))
    for (name, a), b in zip(head.state_dict().items(),
                            twin.state_dict().values()):
        assert torch.equal(a, b), name


def test_an_image_without_people_is_background_only():
    samples = fake_batch(7)
    codec = KEYPOINT_CODECS.build(CODEC)
    empty = codec.encode(np.zeros((0, 2, 2)), np.zeros((0, 2)))
    samples[1].gt_fields = PixelData(
        heatmaps=torch.tensor(empty['heatmaps']),
        heatmap_mask=torch.ones(1, 16, 16, dtype=torch.bool))
    samples[1].gt_instance_labels = InstanceData(
        keypoint_indices=torch.tensor(empty['keypoint_indices']),
        keypoint_weights=torch.tensor(empty['keypoint_weights']))
    head = build_head()
    with torch.no_grad():
        head.scale_layers[3].bias.fill_(0.3)
    feats = (torch.rand(2, 8, 16, 16), )
    losses = head.loss(feats, samples)
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    assert all(
        torch.isfinite(p.grad).all() for p in head.parameters()
        if p.grad is not None)
    # image 1 adds nothing to the regulariser: no support pixel
    gt = stacked(samples, 'heatmaps').numpy()
    mask = stacked(samples, 'heatmap_mask').numpy()
    assert losses['loss_scale'].item() == pytest.approx(
        (0.09 * (gt >= FLOOR32) * mask).mean(), rel=1e-5)
    assert not (gt[1] > 0).any()


@pytest.mark.parametrize('mode', ['power', 'taylor'])
def test_gradients_reach_s(mode):
    # s is the bias of the zero-weight last conv: compare d loss_kpt / d s
    # with central finite differences, the regulariser switched off
    head = build_head(scale_target=mode, scale_loss_weight=0.).double()
    samples = fake_batch(4, torch.float64)
    feats = (torch.rand(2, 8, 16, 16, dtype=torch.float64), )
    bias = head.scale_layers[3].bias
    with torch.no_grad():
        bias.copy_(torch.tensor([0.2, -0.3]))
    head.loss(feats, samples)['loss_kpt'].backward()
    numeric = []
    for k in range(2):
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


def test_regulariser_gradient_counts_masked_support_pixels():
    # d/ds [w mean(s^2 support mask)] = 2 w s sum(support mask) / N
    head = build_head(scale_loss_weight=3.)
    samples = fake_batch(5)
    with torch.no_grad():
        head.scale_layers[3].bias.fill_(0.5)
    head.loss((torch.rand(2, 8, 16, 16), ), samples)['loss_scale'].backward()
    gt = stacked(samples, 'heatmaps').numpy()
    mask = stacked(samples, 'heatmap_mask').numpy()
    counted = ((gt >= FLOOR32) * mask).sum(axis=(0, 2, 3))
    assert ((gt >= FLOOR32) * (1 - mask)).sum() > 0  # the mask matters here
    np.testing.assert_allclose(
        head.scale_layers[3].bias.grad.numpy(),
        3 * 2 * 0.5 * counted / gt.size,
        rtol=1e-5)


# inference and checkpoints --------------------------------------------------


@pytest.mark.parametrize('flip_test', [False, True])
@pytest.mark.parametrize('s', [0.0, 0.7])
def test_predictions_identical_to_the_stock_ae_head(flip_test, s):
    torch.manual_seed(0)
    stock = build_head('AssociativeEmbeddingHead').eval()
    with torch.no_grad():
        for p in stock.parameters():
            p.normal_(0, 0.5)
    head = build_head().eval()
    result = head.load_state_dict(stock.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert set(result.missing_keys) == {
        k
        for k in head.state_dict() if k.startswith('scale_layers.')
        and not k.endswith('num_batches_tracked')
    }
    with torch.no_grad():  # s = 0, or scale maps that must not matter
        head.scale_layers[3].bias.fill_(s)

    samples = fake_batch(6)
    # as BottomupPoseEstimator passes them: a list of the backbone's
    # features, or the features of the image and of its flip
    feats = [torch.rand(2, 8, 16, 16)]
    if flip_test:
        feats = [tuple(feats), (torch.rand(2, 8, 16, 16), )]
    test_cfg = dict(
        flip_test=flip_test,
        shift_heatmap=False,
        restore_heatmap_size=True,
        align_corners=False,
        output_heatmaps=True)
    with torch.no_grad():
        preds, fields = head.predict(feats, samples, test_cfg)
        stock_preds, stock_fields = stock.predict(feats, samples, test_cfg)
    assert sum(len(p.keypoints) for p in preds) > 0
    for a, b in zip(preds, stock_preds):
        assert np.array_equal(a.keypoints, b.keypoints)
        assert np.array_equal(a.keypoint_scores, b.keypoint_scores)
        assert np.array_equal(a.bbox_scores, b.bbox_scores)
    for a, b in zip(fields, stock_fields):
        assert torch.equal(a.heatmaps, b.heatmaps)
        assert torch.equal(a.tags, b.tags)


def test_stock_ae_checkpoint_loads_into_the_sahr_coco_model():
    # what `load_from` does with the zoo's AE HRNet-w32 checkpoint
    stock_cfg = Config.fromfile(str(zoo.mmpose_config_root() / STOCK_AE))
    cfg = Config.fromfile(str(REPO / COCO))
    for c in (stock_cfg, cfg):
        c.model.backbone.init_cfg = None  # no download
    stock = MODELS.build(stock_cfg.model)
    model = MODELS.build(cfg.model)
    result = model.load_state_dict(stock.state_dict(), strict=False)
    assert result.unexpected_keys == []
    assert result.missing_keys and all(
        k.startswith('head.scale_layers.') for k in result.missing_keys)
    loaded = model.state_dict()
    for key, value in stock.state_dict().items():
        assert torch.equal(loaded[key], value)


@pytest.mark.parametrize('config', [COCO, TAYLOR, DEMO])
def test_zoo_baseline_is_the_stock_ae_model(config):
    entries = zoo.load_entries(zoo.default_metafiles())
    entry = zoo.find_baseline(str(REPO / config), entries)
    assert entry.config == 'configs/' + STOCK_AE
    assert entry.metrics['AP'] == 0.656


# build errors ---------------------------------------------------------------


@pytest.mark.parametrize('kwargs,field', [
    (dict(scale_kernel_size=8), '`scale_kernel_size`'),
    (dict(scale_kernel_size=3.0), '`scale_kernel_size`'),
    (dict(min_scale_exponent=0.), '`min_scale_exponent`'),
    (dict(scale_target='cubic'), '`scale_target`'),
    (dict(scale_loss_weight=-1.), '`scale_loss_weight`'),
    (dict(support_floor=1.), '`support_floor`'),
    (dict(keypoint_loss=dict(type='WAHRLoss', support_floor=0.)),
     '`keypoint_loss.support_floor`'),
    (dict(
        decoder=dict(
            type='MSRAHeatmap',
            input_size=(16, 16),
            heatmap_size=(16, 16),
            sigma=2)), '`decoder.type`'),
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


# codec and data --------------------------------------------------------------


@pytest.fixture(scope='module')
def multi_scale_coco(tmp_path_factory):
    """A multi-person synthetic COCO set (4 train, 2 val images)."""
    root = tmp_path_factory.mktemp('synthetic_coco_multi_scale')
    generate_dataset(
        root, 'coco', num_train=4, num_val=2, seed=0, layout='multi_scale')
    return root


def test_codec_packs_keypoint_indices_through_the_pipeline(multi_scale_coco):
    cfg = Config.fromfile(str(REPO / DEMO))
    dataset = DATASETS.build(
        dict(cfg.train_dataloader.dataset, data_root=str(multi_scale_coco)))
    sample = dataset[0]['data_samples']
    labels = sample.gt_instance_labels
    people = len(sample.gt_instances.keypoints)
    assert people >= 2
    assert labels.keypoint_indices.shape == (people, 17, 2)
    assert labels.keypoint_weights.shape == (people, 17)
    assert sample.gt_fields.heatmaps.shape == (17, 64, 64)
    assert sample.gt_fields.heatmap_mask.shape == (1, 64, 64)
    # same encoding as the stock codec
    codec = dict(cfg.codec)
    ours = KEYPOINT_CODECS.build(codec)
    stock = KEYPOINT_CODECS.build(dict(codec, type='AssociativeEmbedding'))
    keypoints = np.random.RandomState(0).uniform(0, 256, (3, 17, 2))
    a, b = ours.encode(keypoints), stock.encode(keypoints)
    assert a.keys() == b.keys()
    for key in a:
        assert np.array_equal(a[key], b[key])
    assert type(stock).label_mapping_table == {}  # what breaks stock AE


# configs ---------------------------------------------------------------------


def test_demo_and_baseline_start_alike_at_one_seed():
    # what a paired comparison needs: with ReseedBeforeInitHook's reseed
    # before init_weights(), every tensor the baseline has is the same in
    # the SAHR model (the scale branch is built and initialised last)
    from mmengine.runner import set_random_seed
    states = []
    for config in (BASELINE, DEMO):
        set_random_seed(1)
        model = MODELS.build(Config.fromfile(str(REPO / config)).model)
        set_random_seed(1)
        model.init_weights()
        states.append(model.state_dict())
    baseline, sahr = states
    assert set(sahr) - set(baseline) == {
        k
        for k in sahr if k.startswith('head.scale_layers.')
    }
    for key, value in baseline.items():
        assert torch.equal(sahr[key], value), key


@pytest.fixture(scope='module')
def demo_run(multi_scale_coco, tmp_path_factory):
    """(work dir, console log) of a 1-epoch ``mim train`` of the demo on
    the multi-person set (2 iterations of batch 2, one validation)."""
    work_dir = tmp_path_factory.mktemp('ae_sahr_demo')
    log = run_train(
        DEMO,
        work_dir,
        data_root=multi_scale_coco,
        cfg_options=short_schedule(max_epochs=1, batch_size=2))
    return work_dir, log


def test_demo_trains_tests_and_resumes(demo_run, multi_scale_coco, tmp_path):
    work_dir, log = demo_run
    for key in ('loss_kpt', 'loss_scale', 'loss_pull', 'loss_push',
                'coco/AP (M)'):
        assert key in log, key
    checkpoint = last_checkpoint(work_dir)
    assert checkpoint.name == 'epoch_1.pth'
    state = torch.load(
        checkpoint, map_location='cpu', weights_only=False)['state_dict']
    assert 'head.scale_layers.3.weight' in state

    log = run_test(
        DEMO,
        checkpoint,
        tmp_path / 'test',
        data_root=multi_scale_coco,
        cfg_options=short_schedule())
    assert 'Epoch(test)' in log and 'coco/AP' in log

    resumed = tmp_path / 'resumed'
    shutil.copytree(work_dir, resumed)
    (resumed / 'last_checkpoint').write_text(str(resumed / 'epoch_1.pth'))
    log = run_train(
        DEMO,
        resumed,
        data_root=multi_scale_coco,
        cfg_options=short_schedule(max_epochs=2, batch_size=2),
        extra_args=['--resume'])
    assert 'resumed epoch: 1' in log
    assert 'Epoch(train) [1]' not in log and 'Epoch(train) [2]' in log
    assert last_checkpoint(resumed).name == 'epoch_2.pth'


def predict_all(model, images):
    """Bottom-up inference: keypoints, scores, heatmaps and tags of each
    image."""
    from mmpose.apis import inference_bottomup

    # after one epoch no heatmap reaches the default 0.1: decode anyway
    model.head.decoder.decode_keypoint_thr = 0.
    model.test_cfg['output_heatmaps'] = True
    outputs = []
    for image in images:
        (result, ) = inference_bottomup(model, image)
        outputs += [
            result.pred_instances.keypoints,
            result.pred_instances.keypoint_scores,
            result.pred_fields.heatmaps.numpy(),
            result.pred_fields.tags.numpy()
        ]
    return outputs


# predict_all with the stock config and the slim checkpoint in a fresh
# interpreter that cannot import mmpose_afl
STOCK_INFERENCE = inspect.getsource(predict_all) + """
import sys
import numpy as np, torch
sys.modules['mmpose_afl'] = None  # any import of the plugin fails
from mmpose.apis import init_model
config, checkpoint, out, *images = sys.argv[1:]
model = init_model(config, None, device='cpu')
slim = torch.load(checkpoint, map_location='cpu', weights_only=False)
model.load_state_dict(slim['state_dict'], strict=True)
np.savez(out, *predict_all(model, images))
"""


def test_slim_checkpoint_predicts_the_same_in_stock_mmpose(
        demo_run, multi_scale_coco, tmp_path):
    from mmpose.apis import init_model
    work_dir, _ = demo_run
    checkpoint = tmp_path / 'trained.pth'
    shutil.copy(work_dir / 'epoch_1.pth', checkpoint)
    slim_path = tmp_path / 'slim.pth'
    subprocess.run([
        sys.executable, 'tools/slim_checkpoint.py',
        str(checkpoint),
        str(slim_path)
    ],
                   cwd=REPO,
                   check=True,
                   capture_output=True)
    stock = Config.fromfile(str(tmp_path / 'slim.py'))
    assert stock.model.head.type == 'AssociativeEmbeddingHead'
    assert stock.model.head.decoder.type == 'AssociativeEmbedding'
    assert 'mmpose_afl' not in (tmp_path / 'slim.py').read_text()
    slim = torch.load(slim_path, map_location='cpu', weights_only=False)
    assert not any('scale_layers' in k for k in slim['state_dict'])

    images = sorted(str(p) for p in (multi_scale_coco / 'val2017').iterdir())
    out = tmp_path / 'stock.npz'
    proc = subprocess.run([
        sys.executable, '-c', STOCK_INFERENCE,
        str(tmp_path / 'slim.py'),
        str(slim_path),
        str(out), *images
    ],
                          capture_output=True,
                          text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    found = np.load(out)
    stock_outputs = [found[f'arr_{i}'] for i in range(len(found.files))]

    ckpt = torch.load(checkpoint, map_location='cpu', weights_only=False)
    model = init_model(
        Config.fromstring(ckpt['meta']['cfg'], '.py'), None, device='cpu')
    model.load_state_dict(ckpt['state_dict'], strict=True)
    ours = predict_all(model, images)
    assert len(ours) == len(stock_outputs) == 4 * len(images)
    assert all(len(keypoints) > 0 for keypoints in ours[::4])
    for a, b in zip(ours, stock_outputs):
        np.testing.assert_array_equal(a, b)


def test_demo_in_two_process_ddp(multi_scale_coco, tmp_path):
    probe = with_probe(DEMO, tmp_path)
    work_dir = tmp_path / 'ddp'
    log = run_dist_train(
        probe,
        work_dir,
        nproc=2,
        data_root=multi_scale_coco,
        cfg_options=short_schedule(max_epochs=1, batch_size=1))
    assert 'Distributed training: True' in log
    # DDP with find_unused_parameters=False: a parameter without a gradient
    # (e.g. an unused scale branch) would fail the second iteration
    assert 'Epoch(train) [1][2/2]' in log
    rank0, rank1 = rank_states(work_dir)
    assert rank0['find_unused_parameters'] is False
    assert assert_same_tensors(rank0['state_dict'], rank1['state_dict']) > 50
    start = rank_states(work_dir, when='start')[0]['state_dict']
    key = 'head.scale_layers.3.weight'
    assert not torch.equal(start[key], rank0['state_dict'][key])  # trained
