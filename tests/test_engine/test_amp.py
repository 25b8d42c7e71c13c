"""AMP without a GPU: every method trains 2 iterations under MMEngine's own
``AmpOptimWrapper(dtype='bfloat16')`` on the CPU (only its GPU assert
lifted, tests/amp_runs.py), an AFL run resumes that way, and every logged
scalar and every checkpoint tensor is finite; MMPose's stock heads fail
under bf16 without ``Float32HeadOutputsHook`` and train with it; the
losses that compute in float32 stay finite at fp16's limits."""
import copy
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mmpose_afl.utils.run_checks import nonfinite_tensors
from tests.amp_runs import (METHODS, REPO, allow_cpu_amp, amp_run, bf16_runner,
                            train_scalars)

BASELINE = 'configs/baseline/td-hm_res18_1xb16-20e_synthetic-coco-128x96.py'
FP16_MAX = float(torch.finfo(torch.float16).max)


def _assert_finite_scalars(scalars: dict, iterations: int) -> None:
    assert len(scalars['train/loss']) == iterations
    bad = {
        name: values
        for name, values in scalars.items()
        if not all(map(math.isfinite, values))
    }
    assert not bad, f'non-finite logged scalars: {bad}'


@pytest.mark.parametrize('name', list(METHODS))
def test_every_method_trains_under_bf16_autocast(name, request,
                                                 tmp_path_factory):
    runner, work_dir, dtypes, _ = amp_run(name, request, tmp_path_factory)
    wrapper = runner.optim_wrapper
    assert type(wrapper).__name__ == 'AmpOptimWrapper'
    assert wrapper.cast_dtype is torch.bfloat16
    assert dtypes == {torch.bfloat16}  # autocast was on in every forward
    assert runner.iter == 2
    _assert_finite_scalars(train_scalars(runner), 2)
    assert nonfinite_tensors(work_dir / 'epoch_1.pth') == []
    checkpoint = torch.load(
        work_dir / 'epoch_1.pth', map_location='cpu', weights_only=False)
    assert 'loss_scaler' in checkpoint['optimizer']
    if name.startswith('afl'):
        assert checkpoint['afl_critic'][0]['critic']


def test_afl_resumes_under_bf16_autocast(request, tmp_path_factory):
    first = amp_run('afl', request, tmp_path_factory).work_dir
    config, _ = METHODS['afl']
    resumed = tmp_path_factory.mktemp('amp_afl_resumed')
    with allow_cpu_amp():
        runner = bf16_runner(
            config,
            request.getfixturevalue('synthetic_coco'),
            resumed,
            max_epochs=2,
            resume_from=first / 'epoch_1.pth')
        runner.train()
    assert runner.iter == 4 and runner.epoch == 2
    log = next(Path(runner.log_dir).glob('*.log')).read_text()
    assert 'resumed epoch: 1, iter: 2' in log
    assert 'no critic state' not in log
    # the message hub's history comes back with the checkpoint
    _assert_finite_scalars(train_scalars(runner), 4)
    assert nonfinite_tensors(resumed / 'epoch_2.pth') == []


def test_stock_head_fails_under_bf16_without_float32_head_hook(
        synthetic_coco, tmp_path):
    # what docs/gpu.md tells users: MMPose's HeatmapHead computes its
    # accuracy in numpy, which has no bfloat16
    with allow_cpu_amp():
        runner = bf16_runner(
            BASELINE, synthetic_coco, tmp_path, float32_head=False)
        with pytest.raises(TypeError, match='BFloat16'):
            runner.train()


class _Head(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 1)

    def forward(self, x):
        out = self.conv(x).to(torch.bfloat16)
        return out, [out], dict(heatmaps=out), torch.ones(1, dtype=torch.long)


class _Model(nn.Module):

    def __init__(self):
        super().__init__()
        self.head = _Head()


def test_float32_head_outputs_hook_casts_every_float_output():
    from mmpose_afl.engine.hooks import Float32HeadOutputsHook
    model = _Model()
    runner = type('Runner', (), dict(model=model))()
    Float32HeadOutputsHook().before_run(runner)
    out, listed, mapping, labels = model.head(torch.ones(1, 2, 2, 2))
    assert out.dtype == listed[0].dtype == torch.float32
    assert mapping['heatmaps'].dtype == torch.float32
    assert labels.dtype == torch.long
    assert out.requires_grad  # the cast keeps the graph
    assert set(model.state_dict()) == {'head.conv.weight', 'head.conv.bias'}
    # a deep copy (EMA) casts too, through its own layers
    copied = copy.deepcopy(model)
    with torch.no_grad():
        copied.head.conv.bias.fill_(7.)
    assert copied.head(torch.zeros(1, 2, 1,
                                   1))[0].flatten().tolist() == [7.] * 3
    assert model.head(torch.zeros(1, 2, 1,
                                  1))[0].flatten().tolist() != [7.] * 3
    with pytest.raises(ValueError, match='no `head`'):
        Float32HeadOutputsHook().before_run(
            type('Runner', (), dict(model=nn.Linear(1, 1)))())


# fp16 at its limits: what the losses get under CUDA fp16 autocast (the
# head's outputs in fp16), against a float64 re-derivation in numpy. The
# loss is float32 and finite; a gradient past fp16's range on the way back
# into the fp16 output is the GradScaler's to catch (it skips the step)


def test_wahr_is_finite_and_exact_at_fp16_limits():
    from mmpose_afl.models.losses import WAHRLoss

    # |P - T| = 300: its square, 90000, is past fp16's 65504
    output = torch.tensor([[[[300., -300.], [0.5, 1000.]]]],
                          dtype=torch.float16,
                          requires_grad=True)
    target = torch.tensor([[[[0., 1.], [0.5, 0.]]]])
    loss = WAHRLoss(gamma=0.01, support_floor=0.)(output, target)
    p = output.detach().double().numpy()
    g = target.double().numpy()
    g_pow = np.where(g > 0, g**0.01, 0.)
    weight = np.abs(1 - p) * g_pow + np.abs(p) * (1 - g_pow)
    expected = (weight * (p - g)**2).mean()
    assert loss.dtype == torch.float32
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)


@pytest.mark.parametrize('mode', ['power', 'taylor'])
def test_sahr_target_and_penalty_are_finite_at_fp16_limits(mode):
    from mmpose_afl.models.heads.sahr_branch import scaled_target_and_penalty

    # s = 300: s^2 = 90000 and (s ln gt)^2 = 1.8e6 are past fp16's range;
    # gt = 0.02 is inside the support, ln gt = -3.9
    gt = torch.tensor([[[[1., 0.02], [0.5, 0.]]]])
    scales = torch.tensor([[[[300., 300.], [-0.95, 300.]]]],
                          dtype=torch.float16,
                          requires_grad=True)
    scaled, penalty = scaled_target_and_penalty(gt, scales, None, mode, 0.1,
                                                0.0111)
    s = scales.detach().double().numpy()
    g = gt.double().numpy()
    support = g >= 0.0111
    log_g = np.log(np.where(support, g, 1.))
    if mode == 'power':
        expected = np.exp(np.maximum(1 + s, 0.1) * log_g)
    else:
        expected = g * (1 + s * log_g + 0.5 * (s * log_g)**2)
    expected = np.where(support, expected, 0.)
    assert penalty.dtype == scaled.dtype == torch.float32
    np.testing.assert_allclose(scaled.detach().numpy(), expected, rtol=1e-5)
    assert math.isclose(penalty.item(), (s**2 * support).mean(), rel_tol=1e-5)
    (scaled.sum() + penalty).backward()
    assert torch.isfinite(scales.grad).all()


def test_hsm_is_finite_and_exact_at_fp16_limits():
    from mmpose_afl.models.losses import HSMLoss

    # beta = 20: exp(20 * Delta) reaches 4.9e8, past fp16's range
    output = torch.tensor([[[[FP16_MAX, -FP16_MAX], [0., 3.]]]],
                          dtype=torch.float16,
                          requires_grad=True)
    target = torch.tensor([[[[0., 1.], [0.5, 0.]]]])
    loss = HSMLoss(beta=20., gamma=2.)(output, target)
    p = output.detach().double().numpy()
    delta = np.abs(1 / (1 + np.exp(-p)) - target.double().numpy())
    expected = (np.expm1(20 * delta) * delta**2).mean()
    assert loss.dtype == torch.float32
    assert math.isclose(loss.item(), expected, rel_tol=1e-5)


@pytest.mark.parametrize('name', list(METHODS))
def test_host_syncs_of_a_training_step_are_documented(name, request,
                                                      tmp_path_factory):
    # every call site that copies a value to the host in one training
    # step (item, tolist, cpu, bool(tensor), ...) is listed with its reason
    # in docs/gpu.md; the counts of each method are written next to the
    # runs for the docs
    syncs = amp_run(name, request, tmp_path_factory).syncs
    (tmp_path_factory.getbasetemp() / f'host_syncs_{name}.json').write_text(
        json.dumps(dict(sorted(syncs.items())), indent=1))
    assert syncs, 'nothing counted: the counter is not on'
    doc = (REPO / 'docs' / 'gpu.md').read_text()
    undocumented = {
        site: count
        for site, count in syncs.items()
        if site.split(' (')[0].split(' via ')[0] not in doc
    }
    assert not undocumented, f'host syncs missing in docs/gpu.md: {syncs}'
