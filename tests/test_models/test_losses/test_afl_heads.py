"""AFL on SimCC and regression heads: the adapters' per-sample losses and
coordinates against independent re-derivations, one topology for one pose
whatever the head family, wrong pairings named at build time or before the
first step, the non-finite guards, the benchmark's per-method reference,
RTMW's head under AFL as under its stock loss, RTMPose's Albumentation
transform, and real ``mim train`` runs (RTMPose-t with resume and 2-process
DDP, RTMPose-m WholeBody, RLE)."""
import math
import shutil
import warnings
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpose.registry import MODELS
from torch import nn

import mmpose_afl  # noqa: F401
from mmpose_afl.benchmark import (accuracy_configs, accuracy_methods,
                                  accuracy_report)
from mmpose_afl.engine.hooks.afl_critic_hook import AFLCriticHook
from mmpose_afl.evaluation.sample_oks import sample_diagnostics
from mmpose_afl.models.afl_critic import coordinate_topology, heatmap_topology
from mmpose_afl.models.losses.afl_adapters import expected_bins
from tests.afl_helpers import critic_step, set_critic
from tests.e2e import (REPO, assert_same_tensors, rank_states, run_dist_train,
                       run_train, short_schedule, with_probe)
from tests.test_models.test_losses.test_afl_loss import \
    per_sample as per_sample_losses
from tests.trained_runs import trained

RTMPOSE_T = 'configs/afl/rtmpose-t_afl-1xb16-20e_synthetic-coco-128x96.py'
RLE = 'configs/afl/td-reg_res18_rle-afl-1xb16-20e_synthetic-coco-128x96.py'
WHOLEBODY = 'configs/afl/rtmpose-m_afl-8xb64-270e_coco-wholebody-256x192.py'
STOCK_RTMPOSE_T = ('.venv/lib/python3.11/site-packages/mmpose/.mim/configs/'
                   'body_2d_keypoint/rtmpose/coco/'
                   'rtmpose-t_8xb256-420e_coco-256x192.py')
RTMPOSE_KLD = dict(
    type='KLDiscretLoss', use_target_weight=True, beta=10., label_softmax=True)


class ConstantCritic(nn.Module):
    """d = 0 for every topology: all difficulties 1/2, equal weights."""

    def __init__(self, num_keypoints):
        super().__init__()
        self.num_keypoints = num_keypoints
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, topology):
        return topology.flatten(1).sum(1) * 0 + 0 * self.dummy


def afl(loss_type, base_loss, k=3, **kwargs):
    return MODELS.build(
        dict(
            type=loss_type,
            base_loss=base_loss,
            critic=dict(type='AFLCritic', num_keypoints=k),
            **kwargs)).eval()


def simcc_batch(seed=0, b=3, k=4, lx=12, ly=16):
    gen = torch.Generator().manual_seed(seed)
    pred = (torch.randn(b, k, lx,
                        generator=gen), torch.randn(b, k, ly, generator=gen))
    gt = (torch.rand(b, k, lx,
                     generator=gen), torch.rand(b, k, ly, generator=gen))
    weights = torch.ones(b, k)
    weights[1, 2] = 0
    weights[2, 0] = 0.5
    return pred, gt, weights


def numpy_kld_per_sample(pred,
                         gt,
                         weights,
                         beta,
                         label_softmax,
                         label_beta,
                         mask=None,
                         mask_weight=1.):
    """KLDiscretLoss per sample, one keypoint and axis at a time."""

    def softmax(v):
        e = np.exp(v - v.max())
        return e / e.sum()

    b, k = weights.shape
    out = np.zeros(b)
    for i in range(b):
        for j in range(k):
            for p, g in zip(pred, gt):
                logits, labels = p[i, j].numpy().astype(np.float64), \
                    g[i, j].numpy().astype(np.float64)
                log_pt = np.log(softmax(beta * logits))
                q = softmax(label_beta * labels) if label_softmax else labels
                kl = np.where(q > 0,
                              q * (np.log(np.where(q > 0, q, 1)) - log_pt),
                              0).mean()
                factor = mask_weight if mask and j in mask else 1.
                out[i] += kl * weights[i, j].item() * factor
        out[i] /= k
    return out


# ------------------------------------------------------------------ SimCC
@pytest.mark.parametrize(
    'base_loss',
    [
        RTMPOSE_KLD,
        dict(type='KLDiscretLoss', use_target_weight=True),  # no label softmax
        dict(
            type='KLDiscretLoss',
            use_target_weight=True,
            beta=2.,
            label_softmax=True,
            label_beta=5.,
            mask=[1, 3],
            mask_weight=0.3),
    ])
def test_simcc_per_sample_loss_matches_numpy_and_sums_to_the_stock_loss(
        base_loss):
    pred, gt, weights = simcc_batch()
    loss = afl('AFLSimCCLoss', base_loss, k=4)
    per_sample = per_sample_losses(loss, pred, gt, weights)
    expected = numpy_kld_per_sample(pred, gt, weights,
                                    base_loss.get('beta', 1.),
                                    base_loss.get('label_softmax', False),
                                    base_loss.get('label_beta', 10.),
                                    base_loss.get('mask'),
                                    base_loss.get('mask_weight', 1.))
    np.testing.assert_allclose(per_sample.numpy(), expected, rtol=1e-5)
    # KLDiscretLoss sums over the batch: so does AFL with equal weights
    stock = MODELS.build(base_loss)(pred, gt, weights)
    torch.testing.assert_close(per_sample.sum(), stock)
    set_critic(loss, ConstantCritic(4))
    torch.testing.assert_close(loss.eval()(pred, gt, weights), stock)


def test_expected_simcc_coordinate_by_hand():
    coords, present = expected_bins(
        torch.tensor([[[0., 1., 3., 0.], [0., 0., 0., 0.]]]))
    # (1 * 1 + 2 * 3) / 4 = 1.75; the empty distribution has no mass
    assert coords.tolist() == [[1.75, 0.]]
    assert present.tolist() == [[True, False]]
    # the prediction: softmax(beta * logits), beta = 1 and logits log(1, 1,
    # 2) give (1/4, 1/4, 1/2): 0/4 + 1/4 + 2/2 = 1.25 bins, 0.625 input px
    # at split ratio 2; the target (label_softmax=False): (0, 1, 1) / 2 ->
    # 1.5 bins, 0.75 px
    loss = afl(
        'AFLSimCCLoss',
        dict(type='KLDiscretLoss', use_target_weight=True),
        k=1)
    loss.adapter.simcc_split_ratio = 2.
    logits = torch.log(torch.tensor([1., 1., 2.])).view(1, 1, 3)
    labels = torch.tensor([0., 1., 1.]).view(1, 1, 3)
    inputs = ((logits, logits), (labels, labels), torch.ones(1, 1))
    samples = loss.adapter.keypoints(*inputs)
    torch.testing.assert_close(samples.pred, torch.tensor([[[.625, .625]]]))
    torch.testing.assert_close(samples.gt, torch.tensor([[[.75, .75]]]))
    assert samples.size == (1.5, 1.5)  # 3 bins / ratio 2
    # argmax bins 2 (pred) and 1 (the first maximum of the target): the
    # error is |(2, 2) - (1, 1)| / 2 = sqrt(2) / 2 input px
    error = sample_diagnostics(loss.adapter, inputs)['error']
    assert error.item() == pytest.approx(math.sqrt(2) / 2)


# ------------------------------------------------------------- regression
def regression_batch(seed=0, b=3, k=4):
    gen = torch.Generator().manual_seed(seed)
    pred = torch.rand(b, k, 2, generator=gen)
    sigma = torch.randn(b, k, 2, generator=gen)
    target = torch.rand(b, k, 2, generator=gen)
    weights = torch.ones(b, k, 1)
    weights[1, 2] = 0
    return pred, sigma, target, weights


def test_rle_per_sample_loss_matches_a_per_sample_derivation():
    pred, sigma, target, weights = regression_batch()
    loss = afl(
        'AFLRegressionLoss',
        dict(type='RLELoss', use_target_weight=True),
        k=4,
        input_size=(96, 128))
    flow = loss.base_loss.flow_model
    expected = []
    for b in range(3):  # RLE's formula, one sample at a time
        s = sigma[b].sigmoid()
        error = (pred[b] - target[b]) / (s + 1e-9)
        log_phi = flow.log_prob(error).unsqueeze(-1)
        terms = torch.log(s) - log_phi + torch.log(2 * s) + error.abs()
        expected.append((terms * weights[b]).sum())
    per_sample = per_sample_losses(loss, pred, sigma, target, weights)
    torch.testing.assert_close(per_sample, torch.stack(expected))
    # size_average: RLELoss is the batch mean of these, and so is AFL
    stock = loss.base_loss(pred, sigma, target, weights)
    torch.testing.assert_close(per_sample.mean(), stock)
    set_critic(loss, ConstantCritic(4))
    torch.testing.assert_close(loss.eval()(pred, sigma, target, weights),
                               stock)
    # without size_average RLELoss sums over the batch: AFL too
    loss = afl(
        'AFLRegressionLoss',
        dict(type='RLELoss', use_target_weight=True, size_average=False),
        k=4,
        input_size=(96, 128))
    set_critic(loss, ConstantCritic(4))
    torch.testing.assert_close(loss.eval()(pred, sigma, target, weights),
                               loss.base_loss(pred, sigma, target, weights))


def test_smooth_l1_per_sample_loss_matches_numpy():
    pred, _, target, weights = regression_batch(seed=1)
    pred = pred * 3  # some errors above SmoothL1's beta of 1
    loss = afl(
        'AFLRegressionLoss',
        dict(type='SmoothL1Loss', use_target_weight=True, loss_weight=2.),
        k=4,
        input_size=(96, 128))
    d = np.abs((pred * weights - target * weights).numpy())
    terms = np.where(d < 1, 0.5 * d**2, d - 0.5)
    expected = 2. * terms.mean(axis=(1, 2))
    per_sample = per_sample_losses(loss, pred, target, weights)
    np.testing.assert_allclose(per_sample.numpy(), expected, rtol=1e-6)
    set_critic(loss, ConstantCritic(4))
    torch.testing.assert_close(loss.eval()(pred, target, weights),
                               loss.base_loss(pred, target, weights))


def test_regression_coordinates_and_error_are_input_pixels():
    pred = torch.tensor([[[0.5, 0.25], [0.1, 0.2]]])
    target = torch.tensor([[[0.5, 0.5], [0.9, 0.9]]])
    weights = torch.tensor([[[1.], [0.]]])
    loss = afl(
        'AFLRegressionLoss',
        dict(type='SmoothL1Loss'),
        k=2,
        input_size=(96, 128))
    samples = loss.adapter.keypoints(pred, target, weights)
    diagnostics = sample_diagnostics(loss.adapter, (pred, target, weights))
    torch.testing.assert_close(samples.pred[0, 0], torch.tensor([48., 32.]))
    torch.testing.assert_close(samples.gt[0, 0], torch.tensor([48., 64.]))
    assert samples.size == (96, 128)
    # only the labelled keypoint counts: |(48, 32) - (48, 64)| = 32 px
    assert diagnostics['error'].tolist() == [32.]
    assert diagnostics['labels'].tolist() == [1]
    assert samples.gt_present.tolist() == [[True, False]]


# ---------------------------------------------------- one topology for all
# a pose in a 96x128 (W, H) input, on multiples of 4 so that the heatmap
# codec (stride 4) needs no rounding, and inside the borders so that no
# Gaussian is cut off; the third keypoint is unlabelled
POSE = np.array([[[20., 24.], [72., 40.], [48., 64.], [28., 100.], [64.,
                                                                    104.]]])
VISIBLE = np.array([[1., 1., 0., 1., 1.]])


def test_one_pose_has_one_topology_in_every_head_family():
    """The pose encoded by MMPose's own codecs as heatmaps (MSRA, 24x32),
    as SimCC 1-D distributions (split ratio 2) and as normalised regression
    coordinates: the three adapters give the topology of the exact pose
    coordinates, for the target and for a prediction that matches it."""
    from mmpose.codecs import MSRAHeatmap, RegressionLabel, SimCCLabel
    exact = coordinate_topology(
        torch.tensor(POSE, dtype=torch.float32), torch.tensor(VISIBLE > 0),
        (96, 128))

    encoded = MSRAHeatmap(
        input_size=(96, 128), heatmap_size=(24, 32),
        sigma=2).encode(POSE, VISIBLE)
    heatmaps = torch.tensor(encoded['heatmaps'])[None].float()
    weights = torch.tensor(encoded['keypoint_weights']).float()
    loss = afl('AFLHeatmapLoss', dict(type='KeypointMSELoss'), k=5)
    samples = loss.adapter.keypoints(heatmaps, heatmaps, weights)
    topologies = {'heatmap': loss.topologies(samples)}

    encoded = SimCCLabel(
        input_size=(96, 128),
        sigma=(2.45, 2.83),
        simcc_split_ratio=2.0,
        normalize=False).encode(POSE, VISIBLE)
    gt = (torch.tensor(encoded['keypoint_x_labels']).float(),
          torch.tensor(encoded['keypoint_y_labels']).float())
    weights = torch.tensor(encoded['keypoint_weights']).float()
    for name, base_loss in (('simcc',
                             dict(
                                 type='KLDiscretLoss',
                                 use_target_weight=True)),
                            ('simcc, label softmax', RTMPOSE_KLD)):
        loss = afl('AFLSimCCLoss', base_loss, k=5)
        loss.adapter.simcc_split_ratio = 2.0
        # a perfect prediction: logits whose softmax(beta * logits) is the
        # distribution the loss compares it with
        target = loss.adapter.target_distribution
        pred = tuple(
            torch.log(target(g) / target(g).sum(-1, keepdim=True)) /
            base_loss.get('beta', 1.) for g in gt)
        samples = loss.adapter.keypoints(pred, gt, weights)
        assert samples.size == (96, 128)
        topologies[name] = loss.topologies(samples)

    encoded = RegressionLabel(input_size=(96, 128)).encode(POSE, VISIBLE)
    labels = torch.tensor(encoded['keypoint_labels']).float()
    weights = torch.tensor(encoded['keypoint_weights']).float()[..., None]
    loss = afl(
        'AFLRegressionLoss',
        dict(type='RLELoss', use_target_weight=True),
        k=5,
        input_size=(96, 128))
    samples = loss.adapter.keypoints(labels, torch.zeros_like(labels), labels,
                                     weights)
    topologies['regression'] = loss.topologies(samples)

    for family, (real, fake) in topologies.items():
        # RTMPose's label softmax (label_beta 10) gives the target
        # distribution a floor of exp(0) per bin next to exp(10) at the
        # peak, which pulls its expected coordinate up to 0.2 input px
        # towards the middle: a topology within 3e-3 of the exact one
        tolerance = 5e-3 if 'softmax' in family else 1e-4
        torch.testing.assert_close(
            real,
            exact,
            atol=tolerance,
            rtol=0,
            msg=lambda m: f'{family} target: {m}')
        # the perfect prediction has the target's topology exactly
        torch.testing.assert_close(
            fake,
            real,
            atol=1e-5,
            rtol=0,
            msg=lambda m: f'{family} prediction: {m}')
    assert exact[0, :, 2].abs().sum() == 0  # the unlabelled keypoint
    # a frame of another aspect ratio is another topology: the frame matters
    assert not torch.allclose(
        coordinate_topology(
            torch.tensor(POSE, dtype=torch.float32), torch.tensor(VISIBLE > 0),
            (128, 128)),
        exact,
        atol=1e-2)


def test_heatmap_topology_is_centroids_through_coordinate_topology():
    """Pinned: heatmap_topology is the coordinate topology of the
    centroids in a (W, H) heatmap frame, bit for bit."""
    from mmpose_afl.models.afl_critic import keypoint_centroids
    heatmaps = torch.rand(2, 5, 8, 6)
    weights = torch.tensor([[1., 0., 1., 1., 1.], [1., 1., 1., 1., 0.]])
    centroids, present = keypoint_centroids(heatmaps, 0.3, weights)
    assert torch.equal(
        heatmap_topology(heatmaps, 0.3, weights),
        coordinate_topology(centroids, present, (6, 8)))


# ----------------------------------------------------------------- pairing
@pytest.mark.parametrize('loss_type,base_loss,names', [
    ('AFLSimCCLoss', dict(type='KeypointMSELoss'),
     ('AFLSimCCLoss', 'KeypointMSELoss', 'AFLHeatmapLoss')),
    ('AFLHeatmapLoss', RTMPOSE_KLD,
     ('AFLHeatmapLoss', 'KLDiscretLoss', 'AFLSimCCLoss')),
    ('AFLHeatmapLoss', dict(type='RLELoss'),
     ('AFLHeatmapLoss', 'RLELoss', 'AFLRegressionLoss')),
    ('AFLRegressionLoss', RTMPOSE_KLD,
     ('AFLRegressionLoss', 'KLDiscretLoss', 'AFLSimCCLoss')),
    ('AFLSimCCLoss', dict(type='AFLSimCCLoss'), ('AFLSimCCLoss', 'base_loss')),
])
def test_a_wrong_base_loss_fails_at_build_naming_both(loss_type, base_loss,
                                                      names):
    with pytest.raises(ValueError) as error:
        afl(loss_type, base_loss, k=17)
    for name in names:
        assert name in str(error.value)


RTMCC_HEAD = dict(
    type='RTMCCHead',
    in_channels=16,
    out_channels=17,
    input_size=(96, 128),
    in_featuremap_size=(3, 4),
    simcc_split_ratio=2.0,
    final_layer_kernel_size=7,
    gau_cfg=dict(
        hidden_dims=32,
        s=16,
        expansion_factor=2,
        dropout_rate=0.,
        drop_path=0.,
        act_fn='SiLU',
        use_rel_bias=False,
        pos_enc=False))
HEATMAP_HEAD = dict(
    type='HeatmapHead',
    in_channels=16,
    out_channels=17,
    deconv_out_channels=None)
RLE_HEAD = dict(
    type='RLEHead',
    in_channels=16,
    num_joints=17,
    decoder=dict(type='RegressionLabel', input_size=(96, 128)))
REGRESSION_HEAD = dict(RLE_HEAD, type='RegressionHead')
SIMCC_AFL = dict(
    type='AFLSimCCLoss',
    base_loss=RTMPOSE_KLD,
    critic=dict(type='AFLCritic', num_keypoints=17))
HEATMAP_AFL = dict(
    type='AFLHeatmapLoss', critic=dict(type='AFLCritic', num_keypoints=17))
RLE_AFL = dict(
    type='AFLRegressionLoss',
    base_loss=dict(type='RLELoss', use_target_weight=True),
    critic=dict(type='AFLCritic', num_keypoints=17))
SMOOTH_L1_AFL = dict(RLE_AFL, base_loss=dict(type='SmoothL1Loss'))


def _hook_before_run(head):
    model = nn.ModuleDict(dict(head=MODELS.build(head)))
    hook = AFLCriticHook()
    hook.before_run(SimpleNamespace(model=model, cfg={}))
    return hook, model['head']


@pytest.mark.parametrize('head,loss,names', [
    (HEATMAP_HEAD, SIMCC_AFL, ('AFLSimCCLoss', 'HeatmapHead')),
    (RTMCC_HEAD, HEATMAP_AFL, ('AFLHeatmapLoss', 'RTMCCHead')),
    (HEATMAP_HEAD, RLE_AFL, ('AFLRegressionLoss', 'HeatmapHead')),
    (RTMCC_HEAD, RLE_AFL, ('AFLRegressionLoss', 'RTMCCHead')),
    (REGRESSION_HEAD, RLE_AFL, ('RLELoss', 'RegressionHead')),
    (RLE_HEAD, SMOOTH_L1_AFL, ('SmoothL1Loss', 'RLEHead')),
    (dict(RTMCC_HEAD, out_channels=16), SIMCC_AFL,
     ('critic.num_keypoints', 'out_channels')),
    (dict(RLE_HEAD, num_joints=16), RLE_AFL,
     ('critic.num_keypoints', 'num_joints')),
])
def test_a_wrong_head_fails_before_the_first_step_naming_both(
        head, loss, names):
    with pytest.raises(ValueError) as error:
        _hook_before_run(dict(head, loss=loss))
    for name in names:
        assert name in str(error.value)


def test_the_hook_reads_what_each_adapter_needs_from_its_head():
    hook, head = _hook_before_run(
        dict(RTMCC_HEAD, simcc_split_ratio=3.0, loss=SIMCC_AFL))
    assert [t.loss for t in hook.trainers] == [head.loss_module]
    assert head.loss_module.adapter.simcc_split_ratio == 3.0
    _, head = _hook_before_run(dict(RLE_HEAD, loss=RLE_AFL))
    assert head.loss_module.adapter.input_size == (96, 128)
    with pytest.raises(
            ValueError,
            match=r'input_size.*\(64, 64\).*'
            r'decoder.input_size \(96, 128\)'):
        _hook_before_run(
            dict(RLE_HEAD, loss=dict(RLE_AFL, input_size=(64, 64))))
    with pytest.raises(ValueError, match='input size is unknown'):
        _hook_before_run(dict(RLE_HEAD, decoder=None, loss=RLE_AFL))
    # heatmap losses keep working under any heatmap head
    _, head = _hook_before_run(dict(HEATMAP_HEAD, loss=HEATMAP_AFL))


def test_inputs_of_another_family_are_a_clear_error():
    loss = afl('AFLSimCCLoss', RTMPOSE_KLD, k=3)
    heatmaps = torch.rand(2, 3, 8, 6)
    with pytest.raises(
            ValueError, match='AFLSimCCLoss: `pred_simcc`.*'
            'AFLHeatmapLoss'):
        loss.eval()(heatmaps, heatmaps, torch.ones(2, 3))
    loss = afl(
        'AFLRegressionLoss',
        dict(type='SmoothL1Loss'),
        k=3,
        input_size=(96, 128))
    with pytest.raises(ValueError, match=r'`pred` \[2, 3, 8, 6\]'):
        loss.eval()(heatmaps, heatmaps, torch.ones(2, 3, 1))


RTMW_HEAD = dict(
    type='RTMWHead',
    in_channels=32,
    out_channels=5,
    input_size=(96, 128),
    in_featuremap_size=(3, 4),
    simcc_split_ratio=2.0,
    final_layer_kernel_size=7,
    gau_cfg=RTMCC_HEAD['gau_cfg'],
    decoder=dict(
        type='SimCCLabel',
        input_size=(96, 128),
        sigma=(2.45, 2.83),
        simcc_split_ratio=2.0,
        normalize=False))


def test_rtmw_head_under_afl_computes_its_stock_loss_on_its_pose():
    """RTMW's two-level head (``feats`` = the stride-16 and stride-32 maps)
    under AFLSimCCLoss: the hook accepts it and reads its split ratio; with
    a constant critic ``head.loss`` is the stock head's (same weights, same
    labels from MMPose's codec); the critic sees the labelled pose's
    topology in input pixels; gradients are finite; it decodes as the stock
    head does."""
    from mmengine.structures import InstanceData
    from mmpose.codecs import SimCCLabel
    from mmpose.structures import PoseDataSample
    loss_cfg = dict(SIMCC_AFL, critic=dict(type='AFLCritic', num_keypoints=5))
    hook, head = _hook_before_run(dict(RTMW_HEAD, loss=loss_cfg))
    loss = head.loss_module
    assert [t.loss for t in hook.trainers] == [loss]
    assert loss.adapter.simcc_split_ratio == 2.0
    stock = MODELS.build(dict(RTMW_HEAD, loss=RTMPOSE_KLD))
    stock.load_state_dict(head.state_dict())  # the critic is not a key
    set_critic(loss, ConstantCritic(5))

    codec = SimCCLabel(**{
        k: v
        for k, v in RTMW_HEAD['decoder'].items() if k != 'type'
    })
    samples = []
    for shift in (0., 4.):  # two people: the pose and the pose moved
        encoded = codec.encode(POSE + shift, VISIBLE)
        sample = PoseDataSample(metainfo=dict(input_size=(96, 128)))
        sample.gt_instance_labels = InstanceData(
            **{
                key: torch.tensor(encoded[key]).float()
                for key in ('keypoint_x_labels', 'keypoint_y_labels',
                            'keypoint_weights')
            })
        samples.append(sample)
    torch.manual_seed(0)
    feats = (torch.randn(2, 16, 8, 6), torch.randn(2, 32, 4, 3))
    head.train(), stock.train()
    losses, stock_losses = head.loss(feats,
                                     samples), stock.loss(feats, samples)
    torch.testing.assert_close(losses['loss_kpt'], stock_losses['loss_kpt'])
    assert losses['acc_pose'] == stock_losses['acc_pose']
    losses['loss_kpt'].backward()
    grads = [p.grad for p in head.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    head.eval(), stock.eval()
    with torch.no_grad():
        (pred, ), (stock_pred, ) = (
            h.predict(tuple(f[:1] for f in feats), samples[:1])
            for h in (head, stock))
    np.testing.assert_array_equal(pred.keypoints, stock_pred.keypoints)

    gt = tuple(
        torch.cat([
            getattr(s.gt_instance_labels, f'keypoint_{a}'
                    '_labels') for s in samples
        ]) for a in 'xy')
    weights = torch.cat(
        [s.gt_instance_labels.keypoint_weights for s in samples])
    with torch.no_grad():
        keypoint_samples = loss.adapter.keypoints(
            head.forward(feats), gt, weights)
    real, _ = loss.topologies(keypoint_samples)
    for i, shift in enumerate((0., 4.)):
        exact = coordinate_topology(
            torch.tensor(POSE + shift, dtype=torch.float32),
            torch.tensor(VISIBLE > 0), (96, 128))
        # within the label softmax's pull (see the family test above)
        torch.testing.assert_close(real[i:i + 1], exact, atol=5e-3, rtol=0)


# ------------------------------------------------------------ non-finite
def test_a_nonfinite_simcc_logit_or_coordinate_never_reaches_the_critic():
    pred, gt, weights = simcc_batch(k=3)
    pred[0][0, 1, 3] = math.inf
    loss = afl('AFLSimCCLoss', RTMPOSE_KLD, k=3)
    loss.train()(pred, gt, weights)
    assert loss.last_samples['weight'].isfinite().all()
    with pytest.warns(UserWarning, match='non-finite SimCC logit'):
        stats = critic_step(loss)
    assert stats['skipped_critic_steps'] == 1
    assert stats['nonfinite_samples'] == 1

    pred, sigma, target, weights = regression_batch(k=3)
    pred[2, 0, 1] = math.nan
    loss = afl(
        'AFLRegressionLoss',
        dict(type='RLELoss', use_target_weight=True),
        k=3,
        input_size=(96, 128))
    loss.train()(pred, sigma, target, weights)
    difficulty = loss.last_samples['difficulty']
    assert difficulty.isfinite().all()
    torch.testing.assert_close(difficulty[2], difficulty[:2].mean())
    with pytest.warns(UserWarning, match='non-finite coordinate'):
        assert critic_step(loss)['skipped_critic_steps'] == 1


def test_a_simcc_critic_learns_to_separate_real_from_fake():
    torch.manual_seed(0)
    _, gt, weights = simcc_batch(b=8, k=3)
    pred = tuple(torch.zeros_like(g) for g in gt)  # every keypoint centred
    loss = afl(
        'AFLSimCCLoss',
        dict(type='KLDiscretLoss', use_target_weight=True),
        k=3,
        critic_optimizer=dict(type='Adam', lr=1e-3, betas=(.5, .9)),
        n_critic=5)
    for _ in range(10):
        loss.train()(pred, gt, weights)
        stats = critic_step(loss)
    assert stats['wasserstein'] > 0.1
    assert stats['difficulty_mean'] > 0.5  # fakes now look hard


# --------------------------------------------------------------- benchmark
def test_each_afl_variant_is_paired_with_its_own_head():
    assert accuracy_report.reference_of('AFL (RTMPose-t)') == 'RTMPose-t'
    assert accuracy_report.reference_of('AFL (RLE)') == 'RLE'
    assert accuracy_report.reference_of('AFL (MSE)') == 'MSE'
    for method in ('RTMPose-t', 'AFL (RTMPose-t)', 'RLE', 'AFL (RLE)'):
        config, _ = accuracy_methods.METHODS[method]['coco']
        assert (REPO / config).is_file()
    runs = {
        m: {
            0: {
                'coco/AP': ap
            },
            1: {
                'coco/AP': ap + 0.1
            }
        }
        for m, ap in (('MSE', 0.5), ('AFL (MSE)', 0.6), ('RTMPose-t', 0.3),
                      ('AFL (RTMPose-t)', 0.2), ('RLE', 0.4), ('AFL (RLE)',
                                                               0.4))
    }
    groups = dict(accuracy_report.paired_groups(runs))
    assert {
        r: list(g)
        for r, g in groups.items()
    } == {
        'MSE': ['MSE', 'AFL (MSE)', 'RTMPose-t', 'RLE'],
        'RTMPose-t': ['RTMPose-t', 'AFL (RTMPose-t)'],
        'RLE': ['RLE', 'AFL (RLE)']
    }
    settings = dict(accuracy_methods.PRESETS['cpu'], seeds=[0, 1])
    full = {
        m: {
            s:
            dict(
                dict.fromkeys((k for _, k in accuracy_methods.COLUMNS['coco']),
                              -1.), **v)
            for s, v in r.items()
        }
        for m, r in runs.items()
    }
    text = '\n'.join(
        accuracy_report.report({'coco': full}, {'coco': (8, 4)}, settings,
                               'cmd', 'cpu', []))
    # AFL (RTMPose-t) - RTMPose-t = -0.1 at both seeds: worse; AFL (RLE)
    # equals RLE
    section = text.split('### Paired difference to RTMPose-t')[1]
    assert '| AP | 0.350 ± 0.071 | -0.100 ± 0.000 ▼ |' in section
    section = text.split('### Paired difference to RLE')[1]
    assert '| AP | 0.450 ± 0.071 | +0.000 ± 0.000 = |' in section
    assert 'Δ AFL (RTMPose-t)' not in text.split(
        '### Paired difference to MSE')[1].split('### Per seed')[0]


def test_resize_sets_the_simcc_head_features_too():
    cfg = Config.fromfile(str(REPO / RTMPOSE_T))
    accuracy_configs.resize_input(cfg._cfg_dict, (192, 256))
    assert cfg.model.head.input_size == (192, 256)
    assert cfg.model.head.in_featuremap_size == (6, 8)
    assert cfg.codec.input_size == (192, 256)

    # the SimCC sigma in input pixels: back to the stock 256x192 one
    # (4.9, 5.66) everywhere the codec is used (decoder, both pipelines)
    def codecs(node):
        if isinstance(node, dict):
            if node.get('type') == 'SimCCLabel':
                yield node
            node = list(node.values())
        if isinstance(node, (list, tuple)):
            for child in node:
                yield from codecs(child)

    found = list(codecs(cfg._cfg_dict.to_dict()))
    assert len(found) >= 4  # codec, decoder, GenerateTarget of 2 pipelines
    for codec in found:
        assert tuple(codec['input_size']) == (192, 256)
        np.testing.assert_allclose(codec['sigma'], (4.9, 5.66))


# ---------------------------------------------------------- albumentation
def test_stock_rtmpose_albumentation_runs_on_a_synthetic_image(synthetic_coco):
    """The stock RTMPose-t pipeline's Albumentation (Blur, MedianBlur,
    CoarseDropout(max_holes=1, max_height=0.4, ...) with p = 1) on one
    synthetic image: the installed albumentations takes the stock
    arguments and cuts a hole of at least 0.2 x 0.2 of the image."""
    import random

    import cv2
    from mmpose.registry import TRANSFORMS
    cfg = Config.fromfile(str(REPO / STOCK_RTMPOSE_T))
    albu, = [t for t in cfg.train_pipeline if t['type'] == 'Albumentation']
    assert albu['transforms'][2]['max_holes'] == 1
    transform = TRANSFORMS.build(albu)
    image = cv2.imread(str(next((synthetic_coco / 'train2017').glob('*'))))
    random.seed(0)
    np.random.seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', DeprecationWarning)
        out = transform(dict(img=image.copy()))['img']
    assert out.shape == image.shape and out.dtype == np.uint8
    holes = (out == 0).all(-1) & (image != 0).any(-1)
    assert holes.mean() >= 0.2 * 0.2 * 0.9


# --------------------------------------------------------------- mim train
def _records(work_dir):
    import json
    return [
        json.loads(line)
        for line in (work_dir /
                     'afl_difficulty_rank0.jsonl').read_text().splitlines()
    ]


def test_rtmpose_t_trains_with_afl_and_resumes_its_critic(
        synthetic_coco, tmp_path, tmp_path_factory):
    work_dir = tmp_path / 'afl'
    shutil.copytree(
        trained(RTMPOSE_T, tmp_path_factory, synthetic_coco), work_dir)
    log = (work_dir / 'console_train.log').read_text()
    for name in ('afl_critic_loss', 'afl_wasserstein', 'afl_ess',
                 'afl_difficulty_mean', 'afl_nonfinite_steps'):
        assert name in log, name
    # a plain run records no per-sample diagnostics
    assert not list(work_dir.glob('afl_difficulty_rank*.jsonl'))
    saved = torch.load(
        work_dir / 'epoch_1.pth', map_location='cpu',
        weights_only=False)['afl_critic']
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_1.pth'))
    probe = with_probe(RTMPOSE_T, tmp_path)
    log = run_train(
        probe,
        work_dir,
        synthetic_coco,
        cfg_options=short_schedule(max_epochs=2),
        extra_args=['--resume'])
    assert 'resumed epoch: 1' in log and 'Epoch(train) [2]' in log
    restored = rank_states(work_dir, nproc=1, when='start')[0]['afl_critic']
    assert assert_same_tensors(saved, restored) > 8
    end = rank_states(work_dir, nproc=1, when='end')[0]['afl_critic']
    steps = [{int(v['step'])
              for v in s[0]['optimizer']['state'].values()}
             for s in (saved, end)]
    assert steps[1] == {2 * s for s in steps[0]} and steps[0] != {0}


def test_rle_ddp_keeps_critic_and_pose_model_identical(synthetic_coco,
                                                       tmp_path):
    probe = with_probe(RLE, tmp_path)
    work_dir = tmp_path / 'ddp'
    log = run_dist_train(
        probe,
        work_dir,
        nproc=2,
        data_root=synthetic_coco,
        cfg_options=short_schedule(max_epochs=1, batch_size=2))
    assert 'Distributed training: True' in log
    assert 'Epoch(train) [1][2/' in log and 'afl_critic_loss' in log
    rank0, rank1 = rank_states(work_dir)
    assert assert_same_tensors(rank0['state_dict'], rank1['state_dict']) > 50
    assert assert_same_tensors(rank0['afl_critic'], rank1['afl_critic']) > 8
    assert rank0['afl_critic'][0]['optimizer']['state']
    # the RLE flow model is part of the pose model, trained by its optimizer
    assert any('flow_model' in k for k in rank0['state_dict'])


def test_stock_wholebody_rtmpose_m_trains_with_afl(synthetic_wholebody,
                                                   tmp_path):
    """The stock-based COCO-WholeBody RTMPose-m 256x192 AFL config itself,
    on the synthetic WholeBody data: 133-keypoint critic, EMA and the
    pipeline switch, a few iterations, no validation."""
    work_dir = tmp_path / 'wholebody'
    hooks = [
        h['type'] for h in Config.fromfile(str(REPO / WHOLEBODY)).custom_hooks
    ]
    track = f'custom_hooks.{hooks.index("AFLCriticHook")}.num_tracked=8'
    log = run_train(
        WHOLEBODY,
        work_dir,
        synthetic_wholebody,
        'wholebody',
        cfg_options=short_schedule(max_epochs=1, val_interval=2) + [
            'model.backbone.init_cfg=None',
            'val_dataloader.dataset.bbox_file=None',
            'test_dataloader.dataset.bbox_file=None', track
        ])
    assert 'Epoch(train) [1][2/' in log and 'afl_critic_loss' in log
    records = _records(work_dir)
    assert records and all(0 < r['labels'] <= 133 for r in records)
    assert all(r['error'] is None or r['error'] >= 0 for r in records)
    saved = torch.load(
        work_dir / 'epoch_1.pth', map_location='cpu', weights_only=False)
    assert saved['afl_critic'][0]['optimizer']['state']
    assert 'ema_state_dict' in saved  # the stock EMAHook ran alongside


@pytest.mark.parametrize('reference,method', [('RTMPose-t', 'AFL (RTMPose-t)'),
                                              ('RLE', 'AFL (RLE)')])
def test_afl_on_a_head_starts_like_its_reference(reference, method,
                                                 synthetic_coco, tmp_path):
    """At one seed the AFL variant and its plain run start from the same
    network weights and the same first batches (the critic is built from a
    fork of the random stream and shifts nothing), so the paired
    difference measures AFL."""
    from tests.test_tools.test_bench_accuracy import _start
    settings = dict(accuracy_methods.PRESETS['cpu'], batch_size=4)
    starts = [
        _start(
            accuracy_configs.run_config('coco', m, 3, settings, synthetic_coco,
                                        tmp_path), True, tmp_path)
        for m in (reference, method)
    ]
    (ref_weights, ref_inputs), (weights, inputs) = starts
    shared = [k for k in ref_weights if k in weights]
    assert len(shared) > 50
    for key in shared:
        assert torch.equal(weights[key], ref_weights[key]), key
    for x, y in zip(inputs, ref_inputs):
        assert torch.equal(x, y)
