"""AFL in real training: ``mim train`` of the demo config, the critic's
state through checkpoint/resume, 2-process DDP, mixed precision, and the
difficulty figure and report on the trained work dir."""
import json
import shutil
from pathlib import Path

import pytest
import torch
from mmengine.config import Config

from tests.afl_helpers import critic_step
from tests.e2e import (REPO, assert_same_tensors, last_checkpoint, rank_states,
                       run_dist_train, run_train, short_schedule, with_probe)
from tests.trained_runs import trained

AFL_DEMO = 'configs/afl/td-hm_res18_afl-1xb16-20e_synthetic-coco-128x96.py'
# every AFL config: the paper's Table 1/2 models and the synthetic demos
CONFIGS = sorted(
    str(p.relative_to(REPO)) for p in REPO.glob('configs/afl/*.py'))


def _critic_state(checkpoint):
    return torch.load(
        checkpoint, map_location='cpu', weights_only=False)['afl_critic']


def test_every_paper_config_is_covered():
    names = {Path(c).name for c in CONFIGS}
    for model in ('res50_afl-8xb64-210e_coco-256x192',
                  'hrnet-w32_afl-8xb64-210e_coco-256x192',
                  'res152_afl-8xb32-210e_coco-384x288',
                  'hrnet-w48_afl-8xb32-210e_coco-384x288',
                  'res50_afl-8xb64-210e_mpii-256x256'):
        assert f'td-hm_{model}.py' in names
    assert Path(AFL_DEMO).name in names


def tracked(tmp_path_factory, data_root: Path) -> Path:
    """Work dir of a 1-epoch AFL demo run that records 16 tracked samples
    (``AFLCriticHook(num_tracked=16)``), run once per session."""
    work_dir = tmp_path_factory.getbasetemp() / 'afl_tracked'
    if not (work_dir / 'last_checkpoint').is_file():
        run_train(
            AFL_DEMO,
            work_dir,
            data_root,
            cfg_options=short_schedule() + ['custom_hooks.1.num_tracked=16'])
    return work_dir


def test_demo_trains_logs_critic_and_checkpoints_it(synthetic_coco,
                                                    tmp_path_factory):
    # a plain run records no per-sample diagnostics
    plain = trained(AFL_DEMO, tmp_path_factory, synthetic_coco)
    assert not list(plain.glob('afl_difficulty_rank*.jsonl'))
    assert 'afl_critic_lr: 1.000000e-04' in (plain /
                                             'console_train.log').read_text()
    work_dir = tracked(tmp_path_factory, synthetic_coco)
    log = (work_dir / 'console_train.log').read_text()
    for name in ('afl_critic_loss', 'afl_wasserstein', 'afl_gradient_penalty',
                 'afl_gp_grad_norm', 'afl_drift', 'afl_score_real_mean',
                 'afl_score_real_min', 'afl_score_real_max',
                 'afl_score_fake_mean', 'afl_score_fake_min',
                 'afl_score_fake_max', 'afl_score_offset',
                 'afl_difficulty_mean', 'afl_difficulty_min',
                 'afl_difficulty_max', 'afl_ess', 'afl_nonfinite_steps'):
        assert name in log, name
    saved = _critic_state(last_checkpoint(work_dir))
    assert len(saved) == 1
    assert saved[0]['optimizer']['state'], 'critic optimizer never stepped'
    records = [
        json.loads(line)
        for line in (work_dir /
                     'afl_difficulty_rank0.jsonl').read_text().splitlines()
    ]
    assert records and all(0 < r['difficulty'] < 1 for r in records)
    assert {
        'epoch', 'iter', 'id', 'img_id', 'img_path', 'weight', 'labels',
        'error'
    } <= records[0].keys()
    assert all(0 < r['labels'] <= 17 and r['error'] >= 0 for r in records)


def test_difficulty_figure_is_drawn_from_the_work_dir(synthetic_coco,
                                                      tmp_path_factory,
                                                      tmp_path):
    import subprocess
    import sys
    work_dir = tracked(tmp_path_factory, synthetic_coco)
    out = tmp_path / 'fig3.png'
    proc = subprocess.run([
        sys.executable, 'tools/draw_afl_difficulty.py',
        str(work_dir), '--num', '2', '--out',
        str(out)
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    from PIL import Image
    width, height = Image.open(out).size
    assert width > 1000 and height > 200  # 8 panels per row, 2 rows + all


def test_difficulty_report_runs_on_the_work_dir(synthetic_coco,
                                                tmp_path_factory, tmp_path):
    import subprocess
    import sys
    work_dir = tracked(tmp_path_factory, synthetic_coco)
    out = tmp_path / 'report.json'
    proc = subprocess.run([
        sys.executable, 'tools/afl_difficulty_report.py',
        str(work_dir), '--out',
        str(out)
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert 'rho(difficulty, error | labels)' in proc.stdout
    result = json.loads(out.read_text())
    records = (work_dir / 'afl_difficulty_rank0.jsonl').read_text()
    assert result['samples'] == len(
        {json.loads(line)['id']
         for line in records.splitlines()})
    # the synthetic annotations carry the generator's flags
    assert set(result['auc']) == {
        'any', 'occluded', 'truncated', 'unusual_pose', 'small'
    }


def test_resume_without_critic_state_warns():
    from unittest.mock import Mock

    from mmpose_afl.engine.afl_critic_trainer import AFLCriticTrainer
    from mmpose_afl.engine.hooks.afl_critic_hook import AFLCriticHook
    from mmpose_afl.models.losses.afl_loss import AFLHeatmapLoss
    hook = AFLCriticHook()
    hook.trainers = [AFLCriticTrainer(AFLHeatmapLoss())]
    runner = Mock()
    hook.after_load_checkpoint(runner, dict(state_dict={}))
    runner.logger.warning.assert_called_once()
    assert 'no critic state' in runner.logger.warning.call_args[0][0]
    runner.logger.info.assert_not_called()


def test_resume_restores_critic_and_its_optimizer(synthetic_coco, tmp_path,
                                                  tmp_path_factory):
    work_dir = tmp_path / 'afl'
    shutil.copytree(
        trained(AFL_DEMO, tmp_path_factory, synthetic_coco), work_dir)
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_1.pth'))
    saved = _critic_state(work_dir / 'epoch_1.pth')
    # resume from epoch 1 and train epoch 2; the probe dumps the critic
    # state the hook restored (start) and the one after epoch 2 (end)
    probe = with_probe(AFL_DEMO, tmp_path)
    log = run_train(
        probe,
        work_dir,
        synthetic_coco,
        cfg_options=short_schedule(max_epochs=2),
        extra_args=['--resume'])
    assert 'resumed epoch: 1' in log and 'Epoch(train) [2]' in log
    restored = rank_states(work_dir, nproc=1, when='start')[0]['afl_critic']
    assert assert_same_tensors(saved, restored) > 8
    # Adam continued from the restored state: epoch 2 has as many critic
    # steps as epoch 1, so its step count doubled (a fresh optimizer would
    # have only epoch 2's)
    end = rank_states(work_dir, nproc=1, when='end')[0]['afl_critic']

    def steps(state):
        optimizer_state = state[0]['optimizer']['state']
        return {int(v['step']) for v in optimizer_state.values()}

    assert steps(end) == {2 * s for s in steps(saved)} and steps(saved) != {0}
    assert not torch.equal(end[0]['critic']['score.weight'],
                           saved[0]['critic']['score.weight'])


def test_ddp_keeps_critic_and_pose_model_identical(synthetic_coco, tmp_path):
    probe = with_probe(AFL_DEMO, tmp_path)
    work_dir = tmp_path / 'ddp'
    log = run_dist_train(
        probe,
        work_dir,
        nproc=2,
        data_root=synthetic_coco,
        cfg_options=short_schedule(max_epochs=1, batch_size=2))
    assert 'Distributed training: True' in log
    # DDP with find_unused_parameters=False: a parameter without a gradient
    # would fail the second iteration
    assert 'Epoch(train) [1][2/' in log
    rank0, rank1 = rank_states(work_dir)
    assert rank0['find_unused_parameters'] is False
    assert assert_same_tensors(rank0['state_dict'], rank1['state_dict']) > 50
    assert assert_same_tensors(rank0['afl_critic'], rank1['afl_critic']) > 8
    assert rank0['afl_critic'][0]['optimizer']['state']


def test_mixed_precision_forward_and_critic_step():
    """What ``--amp`` runs, on CPU: the model's loss under float16 autocast
    (the dtype ``--amp`` uses on CUDA) and the critic step after it.
    ``mim train --amp`` itself needs CUDA (MMEngine's AmpOptimWrapper
    asserts it); MMPose's own accuracy logging cannot take bfloat16."""
    from mmpose.registry import MODELS
    from mmpose.testing import get_packed_inputs

    import mmpose_afl  # noqa: F401
    cfg = Config.fromfile(str(REPO / AFL_DEMO))
    model = MODELS.build(cfg.model)
    model.train()
    loss_module = model.head.loss_module
    batch = get_packed_inputs(
        2,
        num_keypoints=17,
        img_shape=(128, 96),
        input_size=(96, 128),
        heatmap_size=(24, 32),
        with_heatmap=True)
    data = model.data_preprocessor(batch, training=True)
    with torch.autocast('cpu', dtype=torch.float16):
        losses = model(**data, mode='loss')
    assert torch.isfinite(losses['loss_kpt'])
    assert loss_module.last_samples['difficulty'].dtype == torch.float32
    losses['loss_kpt'].backward()
    stats = critic_step(loss_module)
    assert all(map(lambda v: v == v, stats.values()))  # no NaN
    assert all(p.dtype == torch.float32
               for p in loss_module.critic.parameters())


def _demo_model_and_batch():
    from mmpose.registry import MODELS
    from mmpose.testing import get_packed_inputs

    import mmpose_afl  # noqa: F401
    cfg = Config.fromfile(str(REPO / AFL_DEMO))
    model = MODELS.build(cfg.model)
    batch = get_packed_inputs(
        2,
        num_keypoints=17,
        img_shape=(128, 96),
        input_size=(96, 128),
        heatmap_size=(24, 32),
        with_heatmap=True)
    return cfg, model, batch


def test_pose_optimizer_never_touches_the_critic():
    from mmengine.optim import build_optim_wrapper
    cfg, model, batch = _demo_model_and_batch()
    loss_module = model.head.loss_module
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    pose_params = {
        id(p)
        for group in optim_wrapper.optimizer.param_groups
        for p in group['params']
    }
    assert not pose_params & {id(p) for p in loss_module.critic.parameters()}

    critic_before = {
        k: v.clone()
        for k, v in loss_module.critic.state_dict().items()
    }
    model.train()
    model.train_step(batch, optim_wrapper)  # the pose step MMEngine runs
    assert assert_same_tensors(critic_before,
                               loss_module.critic.state_dict()) == 9
    critic_step(loss_module)

    data = model.data_preprocessor(batch, training=True)
    model(**data, mode='loss')['loss_kpt'].backward()
    pose_grads = [
        p.grad.clone() for p in model.parameters() if p.grad is not None
    ]
    critic_step(loss_module)  # the critic step: pose grads untouched
    after = [p.grad for p in model.parameters() if p.grad is not None]
    assert assert_same_tensors(pose_grads, after) == len(pose_grads) > 50
    assert not torch.equal(critic_before['score.weight'],
                           loss_module.critic.score.weight)


def test_critic_k_differing_from_the_head_fails_before_training(
        synthetic_coco, tmp_path):
    from mmengine.runner import Runner

    from tests.e2e import data_options
    cfg = Config.fromfile(str(REPO / AFL_DEMO))
    cfg.merge_from_dict(
        dict(item.split('=', 1) for item in data_options(synthetic_coco)))
    cfg.model.head.loss.critic.num_keypoints = 16
    cfg.work_dir = str(tmp_path)
    runner = Runner.from_cfg(cfg)
    with pytest.raises(
            ValueError, match=r'critic.num_keypoints.*out_channels'):
        runner.train()
    assert not list(tmp_path.glob('*.pth'))
