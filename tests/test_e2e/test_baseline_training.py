"""The baseline as a user runs it: real ``mim train`` / ``mim test`` /
``--resume`` and 2-process DDP runs on the synthetic data."""
from tests.e2e import (assert_same_tensors, last_checkpoint, rank_states,
                       run_dist_train, run_test, run_train, short_schedule,
                       with_probe)

BASELINE = 'configs/baseline/td-hm_res18_1xb16-20e_synthetic-coco-128x96.py'


def test_train_test_resume_end_to_end(synthetic_coco, tmp_path):
    work_dir = tmp_path / 'work'
    log = run_train(
        BASELINE,
        work_dir,
        synthetic_coco,
        cfg_options=short_schedule(max_epochs=1))
    assert 'Epoch(train) [1]' in log
    assert 'coco/AP' in log  # validated with the real CocoMetric
    checkpoint = last_checkpoint(work_dir)
    assert checkpoint.name == 'epoch_1.pth'

    log = run_test(
        BASELINE,
        checkpoint,
        tmp_path / 'test',
        synthetic_coco,
        cfg_options=short_schedule())
    assert 'Epoch(test)' in log and 'coco/AP' in log
    # loaded with weights_only=True, without PyTorch's fallback text
    assert 'Weights only load failed' not in log
    assert 'Loads checkpoint by local backend' in log

    log = run_train(
        BASELINE,
        work_dir,
        synthetic_coco,
        cfg_options=short_schedule(max_epochs=2),
        extra_args=['--resume'])
    assert 'resumed epoch: 1' in log
    assert 'Weights only load failed' not in log
    assert 'Epoch(train) [1]' not in log
    assert 'Epoch(train) [2]' in log
    assert last_checkpoint(work_dir).name == 'epoch_2.pth'


def test_two_process_ddp_on_cpu(synthetic_coco, tmp_path):
    config = with_probe(BASELINE, tmp_path)
    work_dir = tmp_path / 'ddp'
    log = run_dist_train(
        config,
        work_dir,
        nproc=2,
        data_root=synthetic_coco,
        cfg_options=short_schedule(max_epochs=1))
    assert 'Distributed training: True' in log
    rank0, rank1 = rank_states(work_dir)
    assert assert_same_tensors(rank0['state_dict'], rank1['state_dict']) > 50
