"""The project's CUDA checks in one command: the speed benchmark on the GPU
and a short ``mim train --amp`` run of every method, resumed from a
checkpoint.

    python tools/gpu_check.py            # on a machine with a GPU
    python tools/gpu_check.py --dry-run  # the same flow on the CPU, tiny

On a GPU (planned for under 8 minutes on one H100):

1. ``benchmarks/bench_speed.py --device cuda`` writes
   ``benchmarks/results_cuda.md`` (the tables of ``make bench``).
2. For every method of ``make demo`` (tools/demo.py: baseline, AFL,
   SAHR + WAHR, HSM, WholeBody baseline, FoWKAL): ``mim train --amp`` for
   2 epochs on the synthetic data (seed 0, a checkpoint every epoch), then
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

``--dry-run`` runs the same on the CPU with tiny sizes and without
``--amp`` (MMEngine's ``AmpOptimWrapper`` needs a GPU), writing into
``--out-dir``: the test suite runs it, so the script is known to work
before a GPU is spent on it. Exits 1 if any check fails.
"""
import argparse
import math
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

import torch

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
sys.path.insert(0, str(REPO / 'tools'))
from demo import DEMOS, demo_methods, ensure_data, run_options  # noqa: E402

LOSS_LINE = re.compile(r'Epoch\(train\)\s+\[(\d+)\]\[\s*(\d+)/\d+\].*?'
                       r'\bloss: (\S+)')
SIZES = {  # images per synthetic set, bench_speed arguments
    'gpu': dict(num_train=128, num_val=24,
                bench=['--device', 'cuda', '--repeats', '5']),
    'dry-run': dict(num_train=8, num_val=4,
                    bench=['--device', 'cpu', '--batch', '2', '--repeats',
                           '1', '--tables', '2']),
}


def logged_losses(log: Path) -> Dict[Tuple[int, int], float]:
    """``(epoch, iteration) -> loss`` of every training line of a log."""
    return {
        (int(e), int(i)): float(v)
        for e, i, v in LOSS_LINE.findall(log.read_text())
    }


def nonfinite_tensors(checkpoint: Path) -> List[str]:
    """The paths of the non-finite floating tensors anywhere in a
    checkpoint (state dict, optimizer, loss scaler, AFL critic...)."""
    bad = []

    def visit(obj, path):
        if isinstance(obj, torch.Tensor):
            if obj.is_floating_point() and not torch.isfinite(obj).all():
                bad.append(path)
        elif isinstance(obj, dict):
            for key, value in obj.items():
                visit(value, f'{path}/{key}')
        elif isinstance(obj, (list, tuple)):
            for index, value in enumerate(obj):
                visit(value, f'{path}/{index}')

    visit(torch.load(checkpoint, map_location='cpu', weights_only=False), '')
    return bad


def train(config: str,
          work_dir: Path,
          options: List[str],
          amp: bool,
          resume: Path = None) -> Path:
    """``mim train`` into ``work_dir``; returns its log."""
    from demo import run
    work_dir.mkdir(parents=True, exist_ok=True)
    cmd = [BIN / 'mim', 'train', 'mmpose', config, '--work-dir', work_dir]
    cmd += ['--amp'] * amp + (['--resume', resume] if resume else [])
    log = work_dir / 'console_train.log'
    run(cmd + ['--cfg-options', *options], log, work_dir.name, progress=False)
    return log


def check_method(name: str, out_dir: Path, sizes: dict,
                 amp: bool) -> Tuple[List[str], bool]:
    """Train, resume and check one method; a results-table row and
    whether every check passed."""
    config, kind = DEMOS[name]
    data = ensure_data(kind, sizes['num_train'], sizes['num_val'])
    options = [
        option for option in run_options(data, kind, 2)
        if not option.startswith('default_hooks.checkpoint.interval=')
    ] + [
        'default_hooks.checkpoint.interval=1',
        'default_hooks.checkpoint.max_keep_ckpts=2',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
    ]
    began = time.time()
    full_log = train(config, out_dir / name, options, amp)
    resumed_log = train(config,
                        out_dir / f'{name}-resumed',
                        options,
                        amp,
                        resume=out_dir / name / 'epoch_1.pth')
    minutes = (time.time() - began) / 60
    full, resumed = logged_losses(full_log), logged_losses(resumed_log)
    losses = list(full.values()) + list(resumed.values())
    finite_losses = bool(losses) and all(map(math.isfinite, losses))
    bad = (nonfinite_tensors(out_dir / name / 'epoch_2.pth') +
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
    parser.add_argument('--dry-run',
                        action='store_true',
                        help='the same flow on the CPU, tiny and without '
                        '--amp, for the test suite')
    parser.add_argument('--methods',
                        type=demo_methods,
                        default=list(DEMOS),
                        help=f'comma-separated subset of {",".join(DEMOS)} '
                        '(default: all)')
    parser.add_argument('--out-dir',
                        type=Path,
                        help='where the runs and the results files go '
                        '(default: work_dirs/gpu_check, results in '
                        'benchmarks/)')
    args = parser.parse_args(argv)
    methods = args.methods
    if not args.dry_run and not torch.cuda.is_available():
        parser.error('torch sees no GPU: run it where there is one, or '
                     'use --dry-run')
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
        row, ok = check_method(name, out_dir, sizes, amp=not args.dry_run)
        rows.append(row)
        passed &= ok
    device = ('CPU dry run, no AMP' if args.dry_run else
              f'{torch.cuda.get_device_name()}, mim train --amp')
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
