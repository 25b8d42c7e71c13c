"""Every loss and head of mmpose_afl fed edge and bad inputs.

The subjects are all the losses the plugin registers (``WAHRLoss``,
``HSMLoss``, ``FoWKALLoss`` with FWAHR and without pixel weights,
``AFLHeatmapLoss`` around MMPose's MSE and each of them) and the ``loss`` of
both registered heads (``SAHRHead`` with WAHR, ``SigmoidHeatmapHead`` with
HSM). The other registrations are no loss or head: ``AFLCritic`` (only
ever fed topologies by AFL, covered through it), ``AFLCriticHook`` (steps
an ``AFLCriticTrainer``, as :func:`step` does) and ``WholeBodyPartMetric``.

What each case must give (each is one test below):

- **batch 1**: the loss of that sample in a larger batch (FoWKAL's
  normalisers fixed); AFL with one sample is its base loss (the
  normalised weight of a lone sample is 1).
- **B = 0**: a zero data term (plus FoWKAL's ``L_reg``) that back-propagates
  an empty gradient, nothing learnt from it (FoWKAL's running means, AFL's
  critic); a head has no gt to stack and raises torch's ``stack expects a
  non-empty TensorList``, as MMPose's own ``HeatmapHead`` (no MMPose data
  loader yields an empty batch).
- **all keypoint weights 0**: a data term of exactly 0 and a zero gradient.
- **all-zero target**: a finite loss and gradient (WAHR: ``mean |P|^3``;
  HSM: ``mean (e^s - 1) s^2``, ``s = sigmoid(P)``).
- **one NaN / +inf / -inf / 1e30 pixel** in the output (what an fp16
  overflow under ``--amp`` gives) or in the target: the loss may be
  non-finite (NaN / inf, as MMPose's own MSE gives, so that the AMP scaler
  skips the step; HSM, on logits, is finite for every non-NaN output
  value: a saturated sigmoid). What must hold: training state stays
  finite, and the next clean batch gives exactly what a twin that never
  saw the bad batch gives (loss, gradient, state): FoWKAL learns nothing
  from a non-finite statistic, AFL skips the critic step of a batch with
  any non-finite pixel. Documented exceptions, both for the *finite*
  1e30: FoWKAL without pixel weights learns from a 1e30 output pixel, its
  AWing running mean clipped to at most ``1 + m (norm_clip - 1)`` times
  (so the next loss lies within that factor of the twin's); AFL trains
  its critic on a batch with a 1e30 pixel (its topology is finite and a
  legal one), so the critic differs from the twin's but is finite. In the
  heads the pixel is put into the final layer's output.
- **fp16 / bf16**, as the input dtype and under ``torch.autocast`` on the
  CPU: finite, within the dtype's precision of the float32 loss.
- **mismatched shapes** (target, keypoint weights, mask): a ``ValueError``
  naming the loss, the field and the shapes, before anything is computed
  or learnt; gt heatmaps of another size than the head's output: the
  ``ValueError`` of ``SigmoidHeatmapHead``'s loss, of ``SAHRHead`` itself
  (before it scales the target).
- **channels_last** inputs: the same loss and gradient as contiguous ones.

After every case the training state is finite: FoWKAL's running means and
``kaf_logits``, AFL's critic weights and its optimizer's state, the heads'
parameters and BatchNorm statistics.
"""
import math
import warnings

import pytest
import torch
from mmpose.registry import MODELS
from mmpose.testing import get_packed_inputs

import mmpose_afl  # noqa: F401
from mmpose_afl.engine.afl_critic_trainer import AFLCriticTrainer

K, H, W = 2, 3, 4
PARTS = dict(coarse=[0], dense=[1])
FOWKAL = dict(type='FoWKALLoss', parts=PARTS, dense_parts=('dense', ))
MSE = dict(type='KeypointMSELoss', use_target_weight=True)
LOSSES = {
    'WAHR': dict(type='WAHRLoss'),
    'HSM': dict(type='HSMLoss'),
    'FoWKAL': FOWKAL,
    'FoWKAL-unweighted': dict(FOWKAL, weighting=None),
}
LOSSES.update({
    f'AFL({name})':
    dict(
        type='AFLHeatmapLoss',
        base_loss=base,
        critic=dict(type='AFLCritic', num_keypoints=K))
    for name, base in [('MSE', MSE), (
        'WAHR', LOSSES['WAHR']), ('HSM', LOSSES['HSM']), ('FoWKAL', FOWKAL)]
})
NAN, INF = float('nan'), float('inf')


@pytest.fixture(autouse=True, scope='module')
def one_thread():
    """Tiny tensors: one thread is faster, and does not fight the other
    test processes for the cores (~10x faster on a loaded machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make(name):
    """The loss in training mode, an AFL loss with the critic trainer that
    AFLCriticHook would give it (``loss.trainer``); the same seed, so two
    calls give twins."""
    torch.manual_seed(0)
    loss = MODELS.build(LOSSES[name]).train()
    if hasattr(loss, 'critic'):
        loss.trainer = AFLCriticTrainer(loss)
    return loss


def state(module):
    """The tensors of the training state, by name."""
    tensors = dict(module.state_dict())
    critic = getattr(module, 'critic', None)
    if critic is not None:
        tensors.update({
            f'critic.{k}': v
            for k, v in critic.state_dict().items()
        })
        optimizer = module.trainer.optim_wrapper.optimizer
        for i, values in enumerate(optimizer.state.values()):
            tensors.update({
                f'critic_optimizer.{i}.{k}': v
                for k, v in values.items() if torch.is_tensor(v)
            })
    return tensors


def assert_state_finite(module):
    bad = [
        k for k, v in state(module).items()
        if v.is_floating_point() and not v.isfinite().all()
    ]
    assert not bad, f'non-finite training state: {bad}'


def batch(seed=0, b=2, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(b, K, H, W, generator=gen)
    output = target + 0.3 * torch.randn(b, K, H, W, generator=gen)
    return output.to(dtype), target.to(dtype), torch.ones(b, K)


def step(loss, output, target, weights=None, mask=None):
    """One training iteration as the runner and AFLCriticHook run it:
    forward, backward, critic step. Returns the loss, the gradient w.r.t.
    the output and the critic step's statistics."""
    output = output.detach().clone().requires_grad_(True)
    value = loss(output, target, weights, mask)
    value.backward()
    stats = None
    if hasattr(loss, 'critic'):
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # the once-only skip warning
            stats = loss.trainer.step()
    return value.detach(), output.grad, stats or {}


def regularization(loss):
    base = getattr(loss, 'base_loss', loss)
    if hasattr(base, 'regularization'):
        return base.regularization().detach()
    return torch.zeros(())


# ------------------------------------------------------------------ cases
@pytest.mark.parametrize('name', LOSSES)
def test_batch_of_one(name):
    loss = make(name)
    output, target, weights = batch()
    if name.startswith('AFL'):
        # a lone sample's normalised weight is 1: AFL is its base loss
        value, grad, _ = step(loss, output[:1], target[:1], weights[:1])
        loss.eval()
        expected = loss.base_loss(output[:1], target[:1], weights[:1])
    else:
        if name.startswith('FoWKAL'):  # fixed normalisers
            loss.running_means.fill_(0.05)
        loss.eval()
        value, grad, _ = step(loss, output[:1], target[:1], weights[:1])
        expected = loss.per_sample(output, target, weights)[0] * \
            loss.loss_weight + regularization(loss)
    torch.testing.assert_close(value, expected.detach())
    assert grad.isfinite().all() and grad.abs().sum() > 0
    assert_state_finite(loss)


@pytest.mark.parametrize('name', LOSSES)
def test_empty_batch(name):
    loss = make(name)
    before = {k: v.clone() for k, v in state(loss).items()}
    output, target, weights = batch(b=0)
    value, grad, stats = step(loss, output, target, weights)
    assert value.item() == regularization(loss).item()
    assert grad.shape == output.shape and stats == {}
    after = state(loss)
    assert all(torch.equal(after[k], v) for k, v in before.items())
    assert_state_finite(loss)


@pytest.mark.parametrize('name', LOSSES)
def test_all_weights_zero(name):
    loss = make(name)
    output, target, weights = batch()
    value, grad, _ = step(loss, output, target, torch.zeros_like(weights))
    assert value.item() == regularization(loss).item()
    assert grad.eq(0).all()
    if 'FoWKAL' in name:  # nothing labelled to learn the scale from
        base = getattr(loss, 'base_loss', loss)
        assert base.running_means.eq(0).all()
    assert_state_finite(loss)


@pytest.mark.parametrize('name', LOSSES)
def test_all_zero_target(name):
    loss = make(name)
    output, target, weights = batch()
    value, grad, _ = step(loss, output, torch.zeros_like(target), weights)
    assert value.isfinite() and grad.isfinite().all()
    if name == 'WAHR':  # G = 0: W = |P|, loss = mean |P| P^2
        torch.testing.assert_close(value, output.abs().pow(3).mean())
    if name == 'HSM':
        s = output.double().sigmoid()
        torch.testing.assert_close(value.double(),
                                   (s.exp() - 1).mul(s**2).mean())
    assert_state_finite(loss)


@pytest.mark.parametrize('name', LOSSES)
@pytest.mark.parametrize('pixel', [NAN, INF, -INF, 1e30])
@pytest.mark.parametrize('where', ['output', 'target'])
def test_one_bad_pixel(name, pixel, where):
    loss, twin = make(name), make(name)
    for module in (loss, twin):
        step(module, *batch(0))
    output, target, weights = batch(1)
    (output if where == 'output' else target)[1, 0, 2, 3] = pixel
    value, _, _ = step(loss, output, target, weights)
    if name.endswith('HSM') and where == 'output' and not math.isnan(pixel):
        assert value.isfinite()  # a saturated sigmoid
    assert_state_finite(loss)

    torch.manual_seed(1)  # the same gradient-penalty mix for both
    after = step(loss, *batch(2))
    torch.manual_seed(1)
    expected = step(twin, *batch(2))
    assert_state_finite(loss)
    if name == 'FoWKAL-unweighted' and pixel == 1e30 and where == 'output':
        # a finite AWing term, clipped: at most 1 + 0.01 * 3 times the mean
        # (a 1e30 target pixel gives AWing an exponent of -1e30: inf, so
        # that batch's statistic is skipped)
        ratio = (after[0] / expected[0]).item()
        assert 1 / 1.03 - 1e-6 <= ratio < 1
        return
    if name.startswith('AFL') and pixel == 1e30:
        assert after[2]['skipped_critic_steps'] == 0  # a finite topology
        return
    torch.testing.assert_close(after[0], expected[0], rtol=0, atol=0)
    torch.testing.assert_close(after[1], expected[1], rtol=0, atol=0)
    assert after[2] == expected[2]
    twin_state = state(twin)
    for key, value in state(loss).items():
        assert torch.equal(value, twin_state[key]), key


@pytest.mark.parametrize('name', LOSSES)
@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('how', ['input', 'autocast'])
def test_low_precision(name, dtype, how):
    loss, reference = make(name), make(name)
    output, target, weights = batch()
    expected, _, _ = step(reference, output, target, weights)
    if how == 'input':
        value, grad, _ = step(loss, output.to(dtype), target.to(dtype),
                              weights.to(dtype))
    else:
        with torch.autocast('cpu', dtype=dtype):
            value, grad, _ = step(loss, output, target, weights)
    assert value.isfinite() and grad.isfinite().all()
    tolerance = 2e-2 if dtype == torch.bfloat16 else 2e-3
    torch.testing.assert_close(
        value.float(), expected, rtol=tolerance, atol=1e-5)
    assert_state_finite(loss)


@pytest.mark.parametrize('name', LOSSES)
@pytest.mark.parametrize('target, weights, mask, field, shape', [
    ((2, K, 1, W), (2, K), None, '`target`', [2, K, 1, W]),
    ((1, K, H, W), (2, K), None, '`target`', [1, K, H, W]),
    ((2, K, H, W), (2, K + 1), None, '`target_weights`', [2, K + 1]),
    ((2, K, H, W), (2, K), (2, K, H, 1), '`mask`', [2, K, H, 1]),
])
def test_mismatched_shapes(name, target, weights, mask, field, shape):
    loss = make(name)
    before = {k: v.clone() for k, v in state(loss).items()}
    args = [
        None if s is None else torch.rand(s) for s in (target, weights, mask)
    ]
    with pytest.raises(ValueError) as error:
        loss(torch.rand(2, K, H, W), *args)
    message = str(error.value)
    assert message.startswith(
        f"{LOSSES[name]['type']}: ") and f'{field} {shape}' in message
    assert str([2, K, H, W]) in message  # the output's shape
    assert getattr(loss, 'last_samples', None) is None
    after = state(loss)
    assert all(torch.equal(after[k], v) for k, v in before.items())


@pytest.mark.parametrize('name', LOSSES)
def test_channels_last(name):
    loss, reference = make(name), make(name)
    output, target, weights = batch()
    expected = step(reference, output, target, weights)
    channels_last = [
        t.to(memory_format=torch.channels_last) for t in (output, target)
    ]
    value, grad, _ = step(loss, *channels_last, weights)
    torch.testing.assert_close(value, expected[0])
    torch.testing.assert_close(grad, expected[1])
    assert_state_finite(loss)


# ------------------------------------------------------------------ heads
HEADS = {
    'SAHRHead': dict(type='SAHRHead'),
    'SigmoidHeatmapHead': dict(type='SigmoidHeatmapHead'),
}
HEAD_H, HEAD_W = 6, 4  # one deconv doubles the 3 x 2 feature map


def make_head(name):
    torch.manual_seed(0)
    head = MODELS.build(
        dict(
            HEADS[name],
            in_channels=8,
            out_channels=K,
            deconv_out_channels=(8, ),
            deconv_kernel_sizes=(4, )))
    if name == 'SAHRHead':
        with torch.no_grad():  # s != 0, so the target is really scaled
            head.scale_layers[3].bias.fill_(0.3)
    return head.train()


def head_batch(b=2, seed=0, size=(HEAD_H, HEAD_W)):
    gen = torch.Generator().manual_seed(seed)
    feats = (torch.rand(b, 8, 3, 2, generator=gen), )
    samples = get_packed_inputs(
        batch_size=b, num_keypoints=K, heatmap_size=size[::-1],
        with_reg_label=False, with_simcc_label=False)['data_samples'] \
        if b else []
    for sample in samples:
        sample.gt_fields.heatmaps = torch.rand(K, *size, generator=gen)
    return feats, samples


def head_loss(head, feats, samples):
    losses = head.loss(feats, samples)
    return sum(v for k, v in losses.items() if k.startswith('loss'))


def assert_head_state_finite(head):
    bad = [
        k for k, v in head.state_dict().items()
        if v.is_floating_point() and not v.isfinite().all()
    ]
    assert not bad, f'non-finite head state: {bad}'


@pytest.mark.parametrize('name', HEADS)
def test_head_batch_of_one_and_empty_batch(name):
    head = make_head(name)
    feats, samples = head_batch(b=1)
    value = head_loss(head, feats, samples)
    assert value.isfinite() and value > 0
    value.backward()
    with pytest.raises(RuntimeError, match='non-empty'):
        head_loss(head, *head_batch(b=0))
    assert_head_state_finite(head)


@pytest.mark.parametrize('name', HEADS)
def test_head_all_weights_zero_and_zero_target(name):
    head = make_head(name)
    feats, samples = head_batch()
    for sample in samples:
        sample.gt_instance_labels.keypoint_weights.zero_()
    assert head.loss(feats, samples)['loss_kpt'].item() == 0
    feats, samples = head_batch()
    for sample in samples:
        sample.gt_fields.heatmaps.zero_()
    value = head_loss(head, feats, samples)
    assert value.isfinite()
    value.backward()
    assert all(p.grad is None or p.grad.isfinite().all()
               for p in head.parameters())
    assert_head_state_finite(head)


@pytest.mark.parametrize('name', HEADS)
@pytest.mark.parametrize('pixel', [NAN, INF, -INF, 1e30])
def test_head_one_bad_heatmap_pixel(name, pixel):
    """The bad pixel is put into the heatmaps the final layer outputs, as
    an fp16 overflow there would; the BatchNorm statistics before it and
    the next clean batch are those of a twin head."""
    head, twin = make_head(name), make_head(name)

    def overflow(module, args, output):
        output = output.clone()
        output[1, 0, 2, 3] = pixel
        return output

    feats, samples = head_batch()
    hook = head.final_layer.register_forward_hook(overflow)
    value = head_loss(head, feats, samples)
    hook.remove()
    head_loss(twin, feats, samples)
    if name == 'SigmoidHeatmapHead' and not math.isnan(pixel):
        assert value.isfinite()  # HSM on a saturated sigmoid
    assert_head_state_finite(head)
    feats, samples = head_batch(seed=1)
    torch.testing.assert_close(
        head_loss(head, feats, samples),
        head_loss(twin, feats, samples),
        rtol=0,
        atol=0)
    twin_state = twin.state_dict()
    for key, tensor in head.state_dict().items():
        assert torch.equal(tensor, twin_state[key]), key


@pytest.mark.parametrize('name, dtype', [
    ('SAHRHead', torch.float16),
    ('SAHRHead', torch.bfloat16),
    ('SigmoidHeatmapHead', torch.float16),
    ('SigmoidHeatmapHead', torch.bfloat16),
])
def test_head_under_autocast(name, dtype):
    head, reference = make_head(name), make_head(name)
    feats, samples = head_batch()
    expected = head_loss(reference, feats, samples)
    with torch.autocast('cpu', dtype=dtype):
        value = head_loss(head, feats, samples)
    assert value.isfinite()
    tolerance = 3e-2 if dtype == torch.bfloat16 else 3e-3
    torch.testing.assert_close(
        value.float(), expected, rtol=tolerance, atol=1e-5)
    value.backward()
    assert all(p.grad is None or p.grad.isfinite().all()
               for p in head.parameters())
    assert_head_state_finite(head)


@pytest.mark.parametrize('name', HEADS)
def test_head_channels_last(name):
    head, reference = make_head(name), make_head(name)
    feats, samples = head_batch()
    expected = head_loss(reference, feats, samples)
    feats = tuple(f.to(memory_format=torch.channels_last) for f in feats)
    torch.testing.assert_close(head_loss(head, feats, samples), expected)
    assert_head_state_finite(head)


@pytest.mark.parametrize('name, owner', [('SigmoidHeatmapHead', 'HSMLoss'),
                                         ('SAHRHead', 'SAHRHead')])
def test_head_gt_of_another_size_names_the_shapes(name, owner):
    """The head's loss (SigmoidHeatmapHead) or the head itself, before it
    scales the target (SAHRHead), names both shapes."""
    head = make_head(name)
    feats, samples = head_batch(size=(HEAD_H, HEAD_W + 1))
    with pytest.raises(
            ValueError,
            match=(rf'{owner}: `output` \[2, 2, 6, 4\] and '
                   rf'`target` \[2, 2, 6, 5\]')):
        head.loss(feats, samples)
