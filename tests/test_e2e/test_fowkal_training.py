"""FoWKAL in real training on the synthetic COCO-WholeBody data: the demo
config trains with ``mim train``, logs the per-part metric and the factors,
checkpoints and resumes the factors, keeps them identical under 2-process
DDP, and ``tools/draw_kaf.py`` draws them."""
import importlib.util

import pytest
import torch

from tests.e2e import (REPO, assert_same_tensors, last_checkpoint, rank_states,
                       run_dist_train, run_train, short_schedule, with_probe)

DEMO = ('configs/fowkal/'
        'td-hm_res18_fowkal-1xb16-20e_synthetic-coco-wholebody-128x96.py')
LOGITS = 'head.loss_module.kaf_logits'
MEANS = 'head.loss_module.running_means'
PARTS = ('body', 'foot', 'face', 'left_hand', 'right_hand')


def initial_factors():
    """The demo's lambda init: 0.2 on body and feet, 0.8 on face, hands."""
    factors = torch.full((133, ), 0.8)
    factors[:23] = 0.2
    return factors


def saved_state(checkpoint):
    return torch.load(
        checkpoint, map_location='cpu', weights_only=False)['state_dict']


@pytest.fixture(scope='module')
def trained(synthetic_wholebody, tmp_path_factory):
    """A 1-epoch ``mim train`` of the demo (2 iterations, 1 validation)."""
    work_dir = tmp_path_factory.mktemp('fowkal') / 'train'
    log = run_train(
        DEMO,
        work_dir,
        synthetic_wholebody,
        'wholebody',
        cfg_options=short_schedule(max_epochs=1))
    return work_dir, log


def test_demo_trains_logs_parts_and_factors(trained, tmp_path):
    work_dir, log = trained
    for part in ('body', 'foot', 'face', 'lefthand', 'righthand', 'hand'):
        for stat in ('AP', 'AR'):
            assert f'coco-wholebody/{part}_{stat}: ' in log, (part, stat)
    assert 'coco-wholebody/AP: ' in log
    for part in PARTS:  # the factors, every logged iteration
        assert log.count(f'kaf_{part}: ') >= 2, part
    state = saved_state(last_checkpoint(work_dir))
    factors = torch.sigmoid(state[LOGITS])
    assert not torch.allclose(factors, initial_factors(), rtol=0, atol=1e-7)
    assert (factors - initial_factors()).abs().max() < 0.05
    assert (state[MEANS] > 0).all()

    # the KAF figure from that checkpoint
    spec = importlib.util.spec_from_file_location(
        'draw_kaf', REPO / 'tools' / 'draw_kaf.py')
    draw_kaf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(draw_kaf)
    assert draw_kaf.load_factors(str(last_checkpoint(work_dir))) == \
        pytest.approx(factors.numpy())
    png = tmp_path / 'kaf.png'
    draw_kaf.main([str(last_checkpoint(work_dir)), '--out', str(png)])
    import matplotlib.image
    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 300 and image.shape[1] > 500
    # blue (AWing-leaning) and near-white (MSE-leaning) points are drawn
    rgb = image[..., :3].reshape(-1, 3)
    assert ((rgb[:, 2] > 0.9) & (rgb[:, 0] < 0.35)).any()


def test_resume_restores_the_factors(trained, synthetic_wholebody, tmp_path):
    work_dir, _ = trained
    checkpoint = last_checkpoint(work_dir)
    # resume at the end of the schedule in a new work dir: nothing trains,
    # and the probe dumps the model state that the resume restored
    probe = with_probe(DEMO, tmp_path)
    resumed = tmp_path / 'resumed'
    log = run_train(
        probe,
        resumed,
        synthetic_wholebody,
        'wholebody',
        cfg_options=short_schedule(max_epochs=1),
        extra_args=['--resume', str(checkpoint)])
    assert 'resumed epoch: 1' in log
    restored = rank_states(resumed, nproc=1)[0]['state_dict']
    saved = saved_state(checkpoint)
    assert torch.equal(restored[LOGITS], saved[LOGITS])
    assert torch.equal(restored[MEANS], saved[MEANS])


def test_ddp_keeps_the_factors_identical(synthetic_wholebody, tmp_path):
    probe = with_probe(DEMO, tmp_path)
    work_dir = tmp_path / 'ddp'
    # batch 2 on each of the 2 ranks: several iterations, so a parameter
    # without a gradient would fail DDP (find_unused_parameters=False) at
    # the second
    log = run_dist_train(
        probe,
        work_dir,
        nproc=2,
        data_root=synthetic_wholebody,
        kind='wholebody',
        cfg_options=short_schedule(max_epochs=1, batch_size=2))
    assert 'Distributed training: True' in log
    assert 'find_unused_parameters=True' not in log
    assert 'Epoch(train) [1][2/' in log
    rank0, rank1 = rank_states(work_dir)
    assert assert_same_tensors(rank0['state_dict'], rank1['state_dict']) > 50
    assert torch.equal(rank0['state_dict'][LOGITS],
                       rank1['state_dict'][LOGITS])
    assert torch.equal(rank0['state_dict'][MEANS], rank1['state_dict'][MEANS])
    factors = torch.sigmoid(rank0['state_dict'][LOGITS])
    assert not torch.allclose(factors, initial_factors(), rtol=0, atol=1e-7)
