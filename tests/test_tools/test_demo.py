"""``make demo``'s entry point as a newcomer meets it: a fresh copy of the
repo layout (no ``work_dirs/``, no ``data/``), the shared start and the
real ``mim train`` runs from it, the tables, the comparison, each method's
signal and the figures; and the pieces that write each run's config and
cut the start to COCO."""
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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


def test_config_text_starts_from_the_checkpoint_on_the_demo_schedule(tmp_path):
    demo = _demo()
    hsm = demo.DEMOS['hsm']
    path = tmp_path / 'configs' / 'hsm.py'
    start = tmp_path / 'start.pth'
    text = demo.config_text(hsm, path, REPO / 'data' / 'x', 3, start, 8)
    # the method's config, relative to where the run's config is written
    assert (path.parent / text.split("'")[1]).resolve() == REPO / hsm.config
    assert "dict(batch_size=8, dataset=dict(data_root='data/x/'))" in text
    assert 'train_cfg = dict(max_epochs=3, val_interval=3)' in text
    # a warm-up, then the lr annealed to 0 over the 3 epochs, per iteration
    assert "type='LinearLR', begin=0, end=10," in text
    assert ("type='CosineAnnealingLR', begin=0, end=3, T_max=3, eta_min=0.,"
            in text and 'convert_to_iter_based=True' in text)
    assert f"load_from = '{start}'" in text
    assert 'SigmoidHeadCalibrationHook' in text  # HSM's start_extra

    # the shared start: from random weights, the lr not annealed, HSM's
    # head as configured
    text = demo.config_text(hsm, path, REPO / 'data' / 'x', 3, decay=False)
    assert 'load_from' not in text and 'CosineAnnealingLR' not in text
    assert 'SigmoidHeadCalibrationHook' not in text
    assert 'batch_size' not in text
    # the config's own schedule (the full preset)
    text = demo.config_text(hsm, path, REPO / 'data' / 'x', None)
    assert 'train_cfg' not in text and 'param_scheduler' not in text


def test_cut_to_coco_keeps_the_first_17_keypoints(tmp_path):
    weights = {
        'head.final_layer.weight': torch.randn(133, 4, 1, 1),
        'head.final_layer.bias': torch.randn(133),
        'backbone.conv1.weight': torch.randn(2, 3),
    }
    wholebody = tmp_path / 'wholebody.pth'
    torch.save(dict(state_dict=weights, meta=dict(epoch=3)), wholebody)
    out = _demo().cut_to_coco(wholebody, tmp_path / 'coco.pth')
    cut = torch.load(out, weights_only=False)['state_dict']
    assert cut['head.final_layer.weight'].shape == (17, 4, 1, 1)
    for key in ('head.final_layer.weight', 'head.final_layer.bias'):
        assert torch.equal(cut[key], weights[key][:17])
    assert torch.equal(cut['backbone.conv1.weight'],
                       weights['backbone.conv1.weight'])


def _run_demo(clone: Path, methods: str) -> str:
    out = subprocess.run([
        sys.executable, 'tools/demo.py', '--methods', methods,
        '--start-epochs', '1', '--epochs', '1', '--num-train', '6',
        '--num-val', '3'
    ],
                         cwd=clone,
                         capture_output=True,
                         text=True,
                         timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out.stdout


def test_demo_runs_from_a_fresh_clone(tmp_path):
    clone = tmp_path / 'clone'
    for folder in ('tools', 'configs'):
        shutil.copytree(REPO / folder, clone / folder)
    assert not (clone / 'work_dirs').exists()
    assert not (clone / 'data').exists()
    text = _run_demo(clone, 'baseline,afl')
    work_dir = clone / 'work_dirs' / 'demo-quick'

    # the shared start: trained on WholeBody, cut to COCO's 17 keypoints
    start = work_dir / 'start-wholebody'
    assert 'start train' in text
    assert 'Epoch(train)' in (start / 'console_train.log').read_text()
    whole = torch.load(
        (start / 'last_checkpoint').read_text().strip(),
        weights_only=False)['state_dict']['head.final_layer.weight']
    coco = work_dir / 'start-coco' / 'start_coco.pth'
    cut = torch.load(coco, weights_only=False)['state_dict']
    assert whole.shape[0] == 133
    assert torch.equal(cut['head.final_layer.weight'], whole[:17])

    # every run loads it, trains with its progress line, and says where
    # its config and log are
    for method in ('baseline', 'afl'):
        config = work_dir / 'configs' / f'{method}.py'
        assert f"load_from = '{coco}'" in config.read_text()
        log = work_dir / method / 'console_train.log'
        assert f'full log (with the whole command): {log}' in text
        text_of_log = log.read_text()
        assert text_of_log.startswith('$ ') and 'Epoch(train)' in text_of_log
        assert f'Load checkpoint from {coco}' in text_of_log
    assert '[2/2] afl train' in text and 'epoch=1/1' in text

    # the results tables: the start's rows and a row of real metrics per run
    table = text.split('## Results')[1].split('\n## ')[0]
    rows = {
        line.split('|')[1].strip(): line
        for line in table.splitlines() if line.startswith('| ')
    }
    assert 'start (MSE)' in rows and 'start, cut' in rows
    for name in ('start, cut', 'baseline', 'afl'):
        cells = [c.strip() for c in rows[name].strip('|').split('|')]
        assert cells[1] == 'synthetic coco'
        assert all(0 <= float(c) <= 1 for c in cells[4:])
    assert '| 1+1 |' in rows['afl']
    assert 'synthetic wholebody' in rows['start (MSE)']
    assert (work_dir / 'results.md').read_text().strip() in text
    assert 'cannot show: which method is better' in text

    # the zoo-style comparison with the baseline run, and its caveat
    comparison = text.split('zoo-style')[1]
    assert 'not comparable with the MMPose zoo' in comparison
    assert '| baseline (this demo) (stand-in) |' in comparison
    assert '| Δ |' in comparison
    assert 'Not like-for-like' not in comparison  # same data as the baseline
    assert (work_dir / 'comparison_coco.png').stat().st_size > 0

    # AFL's own signal, and its figure with its path
    assert 'AFL: in its last epoch the critic weighted' in text
    figure = work_dir / 'afl_difficulty.png'
    assert f': {figure}' in text and figure.stat().st_size > 0
    assert 'demo finished in' in text

    # a second demo reuses the start instead of training it again
    made = (start / 'last_checkpoint').stat().st_mtime
    text = _run_demo(clone, 'baseline')
    assert 'start: reusing' in text and 'start train' not in text
    assert (start / 'last_checkpoint').stat().st_mtime == made
    assert '| start (MSE) (reused) |' in text


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
