"""The project's CUDA checks in one command: the speed benchmark on the GPU
and a short ``mim train --amp`` run of every method, resumed from a
checkpoint.

    python tools/gpu_check.py            # on a machine with a GPU
    python tools/gpu_check.py --dry-run  # the same flow on the CPU, tiny

On a GPU (planned for under 8 minutes on one H100):

1. ``benchmarks/bench_speed.py --device cuda`` writes
   ``benchmarks/results_cuda.md`` (the tables of ``make bench``).
2. For every method of ``make demo`` (baseline, AFL, SAHR + WAHR, HSM,
   WholeBody baseline, FoWKAL, with the demo's configs): ``mim train
   --amp`` for 2 epochs on synthetic data generated into the output
   folder (seed 0, a checkpoint every epoch), then
   a second ``mim train --amp --resume`` from the epoch-1 checkpoint into
   another work dir. Checked: every logged loss is finite, every tensor of
   the final checkpoints is finite (model, optimizer, AMP loss scaler, the
   AFL critic and its optimizer under ``afl_critic``, FoWKAL's running
   means and lambda logits), and the second run resumed from epoch 1 with
   its state (AFL's critic included: no "no critic state" warning) and
   trained the iterations of epoch 2. Its epoch-2 losses are not the
   uninterrupted run's: MMEngine's resume does not restore the random
   state of the augmentations, so the images differ (the relative
   difference of the epoch's mean loss is shown for scale). Written to
   ``benchmarks/results_cuda_amp.md``.

``--amp-dtype`` picks the autocast type: ``float16`` (default on a GPU,
what ``--amp`` alone gives: dynamic loss scaling) or ``bfloat16``
(A100 / H100 and later; the runs then also get
``Float32HeadOutputsHook``, which MMPose's stock heads need under bf16,
docs/gpu.md).

``--dry-run`` runs the same on the CPU with tiny sizes, writing into
``--out-dir``, and with AMP too: ``mim train --amp`` in bf16 (the CPU's
only autocast type), through MMPose's own ``train.py`` with only the GPU
assert of MMEngine's ``AmpOptimWrapper`` lifted (``python -m
mmpose_afl.utils.cpu_amp``; the wrapper's ``GradScaler`` disables itself
without CUDA). The test suite runs it, so the AMP code the GPU check runs
has run before a GPU is spent on it. Exits 1 if any check fails.
"""
import argparse
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import List, Tuple

import torch

from mmpose_afl.utils.cpu_amp import HEAD_HOOK
from mmpose_afl.utils.mim_run import (CommandError, data_options, mim_command,
                                      run_command)
from mmpose_afl.utils.run_checks import logged_losses, nonfinite_tensors

REPO = Path(__file__).resolve().parents[1]
# method -> (config, synthetic data kind): the configs of ``make demo``
METHODS = {
    'baseline':
    ('configs/baseline/td-hm_res18_1xb16-20e_synthetic-coco-128x96.py',
     'coco'),
    'afl': ('configs/afl/td-hm_res18_afl-1xb16-20e_synthetic-coco-128x96.py',
            'coco'),
    'sahr-wahr':
    ('configs/sahr/td-hm_res18_sahr-wahr-1xb16-20e_synthetic-coco-128x96.py',
     'coco'),
    'hsm': ('configs/hsm/td-hm_res18_hsm-1xb16-20e_synthetic-coco-128x96.py',
            'coco'),
    'baseline-wholebody':
    ('configs/baseline/td-hm_res18_1xb16-20e_synthetic-coco-wholebody-'
     '128x96.py', 'wholebody'),
    'fowkal':
    ('configs/fowkal/td-hm_res18_fowkal-1xb16-20e_synthetic-coco-wholebody-'
     '128x96.py', 'wholebody'),
}
# two epochs, a checkpoint after each (the second run resumes from the
# first), the schedule's lr milestones scaled, one seed, no loader workers
SCHEDULE = [
    'train_cfg.max_epochs=2', 'train_cfg.val_interval=3',
    'param_scheduler.1.end=2', 'param_scheduler.1.milestones=[2,2]',
    'default_hooks.logger.interval=1', 'randomness.seed=0',
    'default_hooks.checkpoint.interval=1',
    'default_hooks.checkpoint.max_keep_ckpts=2',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False'
]
SIZES = {  # images per synthetic set, bench_speed arguments
    'gpu': dict(num_train=128, num_val=24,
                bench=['--device', 'cuda', '--repeats', '5']),
    'dry-run': dict(num_train=8, num_val=4,
                    bench=['--device', 'cpu', '--batch', '2', '--repeats',
                           '1', '--tables', '2']),
}


def method_list(text: str) -> List[str]:
    """The value of ``--methods``: a comma-separated subset of
    :data:`METHODS`."""
    methods = text.split(',')
    unknown = sorted(set(methods) - set(METHODS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f'unknown {unknown}; choose from {list(METHODS)}')
    return methods


def ensure_data(kind: str, out_dir: Path, sizes: dict) -> Path:
    """The synthetic set of ``kind`` the runs train on, generated once
    under ``out_dir`` (generator seed 0)."""
    from mmpose_afl.datasets.synthetic import generate_dataset
    root = out_dir / 'data' / f'{kind}_{sizes["num_train"]}-{sizes["num_val"]}'
    if not (root / 'annotations').is_dir():
        generate_dataset(root, kind, sizes['num_train'], sizes['num_val'])
    return root


def train(config: str,
          work_dir: Path,
          options: List[str],
          dtype: str,
          cpu: bool,
          resume: Path = None) -> Path:
    """``mim train --amp`` into ``work_dir``, autocasting to ``dtype``
    (on the CPU through :mod:`mmpose_afl.utils.cpu_amp`); returns its
    log."""
    work_dir.mkdir(parents=True, exist_ok=True)
    options = options + [f'optim_wrapper.dtype={dtype}']
    extra = ['--amp'] + (['--resume', str(resume)] if resume else [])
    cmd = mim_command('train', config, work_dir, None, options, extra)
    if cpu:  # ``mim train mmpose`` -> MMPose's train.py, GPU assert lifted
        cmd = [sys.executable, '-m', 'mmpose_afl.utils.cpu_amp'] + cmd[3:]
    log = work_dir / 'console_train.log'
    env = dict(
        TORCH_COMPILE_DISABLE=os.environ.get('TORCH_COMPILE_DISABLE', '1'))
    try:
        run_command(cmd, log, cwd=REPO, env=env, log_command=True)
    except CommandError as error:
        sys.exit(f'{work_dir.name} failed: {error}')
    return log


def run_config(config: str, out_dir: Path, name: str, dtype: str) -> str:
    """``config``, or for ``bfloat16`` a copy of it in ``out_dir`` with
    ``Float32HeadOutputsHook`` added (:func:`amp_config`)."""
    if dtype != 'bfloat16':
        return config
    from mmengine.config import Config
    cfg = Config.fromfile(str(REPO / config))
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + [dict(HEAD_HOOK)]
    path = out_dir / f'{name}_{dtype}.py'
    cfg.dump(str(path))
    return str(path)


def check_method(name: str, out_dir: Path, sizes: dict, dtype: str,
                 cpu: bool) -> Tuple[List[str], bool]:
    """Train, resume and check one method; a results-table row and
    whether every check passed."""
    config, kind = METHODS[name]
    options = data_options(ensure_data(kind, out_dir, sizes), kind) + SCHEDULE
    began = time.time()
    out_dir.mkdir(parents=True, exist_ok=True)
    config = run_config(config, out_dir, name, dtype)
    full_log = train(config, out_dir / name, options, dtype, cpu)
    resumed_log = train(
        config,
        out_dir / f'{name}-resumed',
        options,
        dtype,
        cpu,
        resume=out_dir / name / 'epoch_1.pth')
    minutes = (time.time() - began) / 60
    full, resumed = logged_losses(full_log), logged_losses(resumed_log)
    losses = list(full.values()) + list(resumed.values())
    finite_losses = bool(losses) and all(map(math.isfinite, losses))
    bad = (
        nonfinite_tensors(out_dir / name / 'epoch_2.pth') +
        nonfinite_tensors(out_dir / f'{name}-resumed' / 'epoch_2.pth'))
    text = resumed_log.read_text()
    epoch2 = sorted(key for key in full if key[0] == 2)
    resumed_ok = ('resumed epoch: 1' in text
                  and 'has no critic state' not in text and bool(epoch2)
                  and epoch2 == sorted(resumed))
    mean = lambda values: sum(values) / len(values)  # noqa: E731
    drift = (abs(
        mean([resumed[k] for k in epoch2]) - mean([full[k] for k in epoch2])) /
             mean([full[k] for k in epoch2])) if resumed_ok else math.nan
    ok = finite_losses and not bad and resumed_ok
    row = [
        name, f'`{Path(config).name}`',
        str(len(losses)), 'yes' if finite_losses else 'NO',
        'yes' if not bad else 'NO: ' + ', '.join(bad[:5]),
        f'yes ({drift:.0%})' if resumed_ok else 'NO', f'{minutes:.1f}',
        'pass' if ok else 'FAIL'
    ]
    return row, ok


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        epilog=__doc__.split('\n\n', 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--dry-run',
        action='store_true',
        help='the same flow on the CPU, tiny, with bf16 '
        'AMP, for the test suite')
    parser.add_argument(
        '--amp-dtype',
        choices=('float16', 'bfloat16'),
        help='autocast type of the mim train --amp runs '
        '(default: float16 on a GPU; the CPU dry run can '
        'only use bfloat16)')
    parser.add_argument(
        '--methods',
        type=method_list,
        default=list(METHODS),
        help=f'comma-separated subset of {",".join(METHODS)} '
        '(default: all)')
    parser.add_argument(
        '--out-dir',
        type=Path,
        help='where the runs and the results files go '
        '(default: work_dirs/gpu_check, results in '
        'benchmarks/)')
    args = parser.parse_args(argv)
    methods = args.methods
    if not args.dry_run and not torch.cuda.is_available():
        parser.error('torch sees no GPU: run it where there is one, or '
                     'use --dry-run')
    dtype = args.amp_dtype or ('bfloat16' if args.dry_run else 'float16')
    if args.dry_run and dtype != 'bfloat16':
        parser.error('the CPU autocasts to bfloat16 only: drop --amp-dtype '
                     'or use --amp-dtype bfloat16 with --dry-run')
    sizes = SIZES['dry-run' if args.dry_run else 'gpu']
    out_dir = (args.out_dir or REPO / 'work_dirs' / 'gpu_check').resolve()
    results = out_dir if args.out_dir else REPO / 'benchmarks'
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.time()

    speed = results / ('results_cuda.md'
                       if not args.dry_run else 'results_speed_dry_run.md')
    subprocess.run([
        sys.executable, 'benchmarks/bench_speed.py', *sizes['bench'], '--out',
        str(speed)
    ],
                   cwd=REPO,
                   check=True)

    rows, passed = [], True
    for name in methods:
        print(f'\ngpu_check: {name}', flush=True)
        row, ok = check_method(name, out_dir, sizes, dtype, args.dry_run)
        rows.append(row)
        passed &= ok
    device = ('CPU dry run' if args.dry_run else
              torch.cuda.get_device_name()) + f', mim train --amp, {dtype}'

    lines = [
        '# mim train with AMP on CUDA: finite and resumable', '',
        f'Written by `python tools/gpu_check.py'
        f'{" --dry-run" * args.dry_run}` ({device}; '
        f'{time.strftime("%Y-%m-%d %H:%M")}, {(time.time() - start) / 60:.1f}'
        ' min in all including the speed benchmark). Each method: 2 epochs '
        f'on {sizes["num_train"]} synthetic images, then epoch 2 again '
        'resumed from the epoch-1 checkpoint; the protocol is in the '
        "script's docstring.", '',
        '| method | config | losses logged | all finite | checkpoint '
        'tensors finite | resumed (epoch-2 mean loss vs uninterrupted) | '
        'minutes | result |', '|---' * 8 + '|'
    ] + ['| ' + ' | '.join(row) + ' |' for row in rows]
    amp_file = results / ('results_cuda_amp.md'
                          if not args.dry_run else 'results_amp_dry_run.md')
    amp_file.write_text('\n'.join(lines) + '\n')
    print('\n'.join(lines) + f'\n\ngpu_check: wrote {speed} and {amp_file}')
    return 0 if passed else 1


if __name__ == '__main__':
    sys.exit(main())
