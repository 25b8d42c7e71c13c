"""``make demo``'s entry point as a newcomer meets it: a fresh copy of the
repo layout (no ``work_dirs/``, no ``data/``), real ``mim train`` /
``mim test`` runs, the tables, the comparison and the figures."""
import importlib.util
import shutil
import subprocess
import sys

import pytest

from tests.e2e import REPO

# MMEngine log lines as ``mim train`` / ``mim test`` print them
TRAIN_LINE = ('11/26 12:00:00 - mmengine - INFO - Epoch(train)  [2][ 3/7]  '
              'base_lr: 1.0e-03 lr: 1.0e-03  eta: 0:00:12  time: 0.4  '
              'data_time: 0.01  memory: 0  loss: 0.002137  loss_kpt: '
              '0.002137  acc_pose: 0.05')
TEST_LINE = ('11/26 12:00:00 - mmengine - INFO - Epoch(test) [ 5/20]    '
             'eta: 0:00:03  time: 0.1')


def _demo():
    spec = importlib.util.spec_from_file_location('demo',
                                                  REPO / 'tools' / 'demo.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_progress_reads_epoch_iteration_and_loss():
    progress = _demo().Progress('afl train', epochs=3)
    progress.feed('an unrelated line')
    assert progress.bar.n == 0
    progress.feed(TRAIN_LINE)
    # epoch 2 of 3, 7 iterations per epoch: 7 + 3 of 21 done
    assert (progress.bar.n, progress.bar.total) == (10, 21)
    assert progress.bar.postfix == 'epoch=2/3, loss=0.002137'
    progress.feed(TEST_LINE)
    assert (progress.bar.n, progress.bar.total) == (5, 20)
    progress.close()


def test_a_failed_step_prints_the_end_of_its_log(tmp_path, capsys):
    log = tmp_path / 'step.log'
    code = ('import sys\n'
            'for i in range(100): print("line", i)\n'
            'print("Traceback: the real cause"); sys.exit(3)')
    with pytest.raises(SystemExit) as stop:
        _demo().run([sys.executable, '-c', code], log, 'broken step')
    message = str(stop.value)
    assert 'broken step failed (exit status 3)' in message
    assert str(log) in message
    assert 'the real cause' in message and 'line 99' in message
    assert 'line 10\n' not in message  # the end only
    shown = capsys.readouterr().out
    assert f'full log (with the whole command): {log}' in shown


def test_demo_runs_from_a_fresh_clone(tmp_path):
    clone = tmp_path / 'clone'
    for folder in ('tools', 'configs'):
        shutil.copytree(REPO / folder, clone / folder)
    assert not (clone / 'work_dirs').exists()
    assert not (clone / 'data').exists()
    out = subprocess.run([
        sys.executable, 'tools/demo.py', '--methods', 'baseline,afl',
        '--epochs', '1', '--num-train', '6', '--num-val', '3'
    ],
                         cwd=clone,
                         capture_output=True,
                         text=True,
                         timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    text = out.stdout
    work_dir = clone / 'work_dirs' / 'demo-quick'

    # one progress line per run, and where its log is
    for method in ('baseline', 'afl'):
        log = work_dir / method / 'console_train.log'
        assert f'full log (with the whole command): {log}' in text
        text_of_log = log.read_text()
        assert text_of_log.startswith('$ ') and 'Epoch(train)' in text_of_log
    assert '[2/2] afl train' in text and 'epoch=1/1' in text

    # the results table with a row of real metrics per method
    table = text.split('## Results (mim test)')[1]
    rows = [
        line for line in table.splitlines()
        if line.startswith(('| baseline |', '| afl |'))
    ]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip('|').split('|')]
        assert cells[1] == 'synthetic coco'
        assert all(0 <= float(c) <= 1 for c in cells[3:])
    assert (work_dir / 'results.md').read_text().strip() in text

    # the zoo-style comparison with the baseline run, and its caveat
    comparison = text.split('zoo-style')[1]
    assert 'not comparable with the MMPose zoo' in comparison
    assert '| baseline (this demo) (stand-in) |' in comparison
    assert '| Δ |' in comparison
    assert 'Not like-for-like' not in comparison  # same data as the baseline
    assert (work_dir / 'comparison_coco.png').stat().st_size > 0

    # the AFL figure, with its path
    figure = work_dir / 'afl_difficulty.png'
    assert f': {figure}' in text and figure.stat().st_size > 0
    assert 'demo finished in' in text


def test_demo_runs_losses_eagerly_unless_told(tmp_path, monkeypatch):
    demo = _demo()
    code = ('import os; '
            'print("disable=" + os.environ["TORCH_COMPILE_DISABLE"])')
    monkeypatch.delenv('TORCH_COMPILE_DISABLE', raising=False)
    text = demo.run([sys.executable, '-c', code],
                    tmp_path / 'eager.log',
                    'eager',
                    progress=False)
    assert 'disable=1' in text
    monkeypatch.setenv('TORCH_COMPILE_DISABLE', '0')  # the user's choice wins
    text = demo.run([sys.executable, '-c', code],
                    tmp_path / 'compiled.log',
                    'compiled',
                    progress=False)
    assert 'disable=0' in text
