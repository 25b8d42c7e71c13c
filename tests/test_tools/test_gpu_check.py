"""tools/gpu_check.py: its CPU dry run goes through the whole flow (speed
tables, mim train --amp in bf16 + resume, the checks), and the checks
(mmpose_afl.utils.run_checks) can fail."""
import shutil
import subprocess
import sys
from pathlib import Path

import torch

from mmpose_afl.utils.run_checks import logged_losses, nonfinite_tensors

REPO = Path(__file__).resolve().parents[2]


def test_logged_losses_and_nonfinite_tensors(tmp_path):
    log = tmp_path / 'log'
    log.write_text(
        'Epoch(train) [1][ 1/2]  lr: 1e-03  eta: 0:00:01  loss: 0.0021  '
        'loss_kpt: 0.0021\n'
        'Epoch(train) [2][2/2]  lr: 1e-03  eta: 0:00:00  loss: nan\n')
    losses = logged_losses(log)
    assert losses[(1, 1)] == 0.0021
    assert list(losses) == [(1, 1), (2, 2)] and losses[(2, 2)] != 0.0021
    checkpoint = tmp_path / 'c.pth'
    torch.save(
        dict(
            state_dict=dict(w=torch.ones(2)),
            afl_critic=dict(critic=dict(b=torch.tensor([1., float('inf')])))),
        checkpoint)
    assert nonfinite_tensors(checkpoint) == ['/afl_critic/critic/b']


def test_dry_run_trains_resumes_and_writes_both_tables(tmp_path):
    # the AFL runs use MMEngine's AmpOptimWrapper in bf16 on the CPU
    clone = tmp_path / 'clone'
    for folder in ('tools', 'configs', 'benchmarks'):
        shutil.copytree(REPO / folder, clone / folder)
    out = subprocess.run([
        sys.executable, 'tools/gpu_check.py', '--dry-run', '--methods', 'afl',
        '--out-dir',
        str(tmp_path / 'out')
    ],
                         cwd=clone,
                         capture_output=True,
                         text=True,
                         timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    speed = (tmp_path / 'out' / 'results_speed_dry_run.md').read_text()
    assert '| topology of prediction + target | 133 |' in speed
    amp = (tmp_path / 'out' / 'results_amp_dry_run.md').read_text()
    assert 'CPU dry run, mim train --amp, bfloat16' in amp
    log = (tmp_path / 'out' / 'afl' / 'console_train.log').read_text()
    assert "type='AmpOptimWrapper'" in log and "dtype='bfloat16'" in log
    assert "type='Float32HeadOutputsHook'" in log
    row = [line for line in amp.splitlines() if line.startswith('| afl |')]
    cells = [c.strip() for c in row[0].strip('|').split('|')]
    assert int(cells[2]) > 0 and cells[3:5] == ['yes', 'yes']
    assert cells[5].startswith('yes (')
    assert cells[-1] == 'pass'
    assert (tmp_path / 'out' / 'afl-resumed' / 'epoch_2.pth').exists()
