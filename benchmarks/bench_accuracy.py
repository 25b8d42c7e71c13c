"""Accuracy of every method on the synthetic data, with the same model,
data and budget: mean ± sd over seeds, per part for COCO-WholeBody.

    python benchmarks/bench_accuracy.py [--epochs 6] [--seeds 0 1 2]
        [--methods MSE FoWKAL ...] [--datasets coco wholebody] [--jobs 2]
        [--resume]

``make bench-accuracy`` runs it with the defaults. Every
run is a real ``mim train`` of the method's synthetic demo config
(ResNet-18 at 128x96 from random weights, batch 16, Adam 1e-3, on the data
of ``make data``, generated here when missing) shortened to ``--epochs`` epochs
(the learning rate drops x0.1 at about 3/4 and 9/10 of them), with
``randomness.seed`` = the seed, and one validation on the val set at the
end with the configs' real metric (``CocoMetric``; for WholeBody
``CocoWholeBodyPartMetric``, MMPose's ``CocoWholeBodyMetric`` with the
per-part results returned). The metrics are read from the run's log with
``mmpose_afl.zoo.read_measured``.

Methods without a synthetic config of their own for a dataset are the
nearest config plus ``--cfg-options`` (see ``METHODS``): heuristic and KAL
are the FoWKAL config with ``kaf`` / ``weighting`` changed, SAHR and HSM on
WholeBody the WholeBody baseline with the head and loss types changed. The
FoWKAL family needs body parts, so it runs on WholeBody only.

Writes ``benchmarks/results_accuracy.md`` (table, date, machine, budget,
minutes per run) and ``benchmarks/results_accuracy.png``; each run's work
dir is ``work_dirs/bench_accuracy/<dataset>/<method>/seed<seed>``.
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from bench_speed import machine

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COCO, WHOLEBODY = 'coco', 'wholebody'
FOWKAL = ('configs/fowkal/'
          'td-hm_res18_fowkal-1xb16-20e_synthetic-coco-wholebody-128x96.py')
BASELINE_WB = ('configs/baseline/'
               'td-hm_res18_1xb16-20e_synthetic-coco-wholebody-128x96.py')
AFL_COCO = 'configs/afl/td-hm_res18_afl-1xb16-20e_synthetic-coco-128x96.py'
AFL_WHOLEBODY = ('configs/afl/'
                 'td-hm_res18_afl-1xb16-20e_synthetic-coco-wholebody-128x96.py')
# every training sample tracked, so that tools/afl_difficulty_report.py can
# say what the difficulty follows over the whole training set
AFL_TRACK_ALL = ['custom_hooks.1.num_tracked=100000']
AFL_PAPER = AFL_TRACK_ALL + ['model.head.loss.difficulty=paper',
                             'model.head.loss.drift_weight=0.',
                             'model.head.loss.normalize_weights=False']
# method -> dataset -> (config, extra --cfg-options)
METHODS: Dict[str, Dict[str, Tuple[str, List[str]]]] = {
    'MSE': {
        COCO: ('configs/baseline/'
               'td-hm_res18_1xb16-20e_synthetic-coco-128x96.py', []),
        WHOLEBODY: (BASELINE_WB, []),
    },
    'AFL (MSE)': {
        COCO: (AFL_COCO, AFL_TRACK_ALL),
        WHOLEBODY: (AFL_WHOLEBODY, AFL_TRACK_ALL),
    },
    # AFL exactly as the paper's Eq. 4 and critic loss (no drift penalty,
    # absolute score, unnormalised weights): the collapse of issue 12
    'AFL (MSE, paper)': {
        COCO: (AFL_COCO, AFL_PAPER),
        WHOLEBODY: (AFL_WHOLEBODY, AFL_PAPER),
    },
    'heuristic': {
        WHOLEBODY: (FOWKAL, ['model.head.loss.kaf=heuristic',
                             'model.head.loss.weighting=None']),
    },
    'KAL': {
        WHOLEBODY: (FOWKAL, ['model.head.loss.weighting=None']),
    },
    'FoWKAL': {
        WHOLEBODY: (FOWKAL, []),
    },
    'SAHR + WAHR': {
        COCO: ('configs/sahr/'
               'td-hm_res18_sahr-wahr-1xb16-20e_synthetic-coco-128x96.py',
               []),
        WHOLEBODY: (BASELINE_WB, ['model.head.type=SAHRHead',
                                  'model.head.loss.type=WAHRLoss']),
    },
    'HSM': {
        COCO: ('configs/hsm/'
               'td-hm_res18_hsm-1xb16-20e_synthetic-coco-128x96.py', []),
        WHOLEBODY: (BASELINE_WB, ['model.head.type=SigmoidHeatmapHead',
                                  'model.head.loss.type=HSMLoss']),
    },
    'AFL (FoWKAL)': {
        WHOLEBODY: ('configs/afl/td-hm_res18_afl-fowkal-1xb16-20e_'
                    'synthetic-coco-wholebody-128x96.py', []),
    },
    'AFL (HSM)': {
        COCO: ('configs/afl/'
               'td-hm_res18_afl-hsm-1xb16-20e_synthetic-coco-128x96.py', []),
        WHOLEBODY: ('configs/afl/td-hm_res18_afl-hsm-1xb16-20e_'
                    'synthetic-coco-wholebody-128x96.py', []),
    },
}
# dataset -> (column, metric key)
COLUMNS = {
    COCO: [('AP', 'coco/AP'), ('AP .5', 'coco/AP .5'),
           ('AP .75', 'coco/AP .75'), ('AR', 'coco/AR')],
    WHOLEBODY: [('whole AP', 'coco-wholebody/AP'),
                ('body AP', 'coco-wholebody/body_AP'),
                ('foot AP', 'coco-wholebody/foot_AP'),
                ('face AP', 'coco-wholebody/face_AP'),
                ('hand AP', 'coco-wholebody/hand_AP'),
                ('whole AR', 'coco-wholebody/AR')],
}
# where the configs read the data, as `make data` writes it
DATA = {
    COCO: ('data/synthetic_coco', 'person_keypoints_{}2017.json'),
    WHOLEBODY: ('data/synthetic_coco_wholebody',
                'coco_wholebody_{}_v1.0.json'),
}


def data_sizes(dataset: str) -> Tuple[int, int]:
    """(train, val) images of the dataset, generated as ``make data`` does
    (200 / 50, seed 0) if it is missing."""
    root, annotations = DATA[dataset]
    root = REPO / root
    if not (root / 'annotations').is_dir():
        from mmpose_afl.datasets.synthetic import generate_dataset
        generate_dataset(root, dataset, 200, 50, 0)
    return tuple(
        len(json.loads((root / 'annotations' /
                        annotations.format(split)).read_text())['images'])
        for split in ('train', 'val'))


def budget_options(epochs: int, seed: int) -> List[str]:
    """The common budget: ``epochs`` epochs, lr x0.1 at ~75 % and ~90 %,
    one validation at the end, the seed, no checkpoints, no loader workers
    (each run keeps to its one core)."""
    milestones = sorted({max(1, round(epochs * 0.75)),
                         max(1, round(epochs * 0.9))})
    return [
        f'train_cfg.max_epochs={epochs}', f'train_cfg.val_interval={epochs}',
        f'param_scheduler.1.end={epochs}',
        'param_scheduler.1.milestones=[{}]'.format(','.join(
            map(str, milestones))),
        f'randomness.seed={seed}', 'default_hooks.checkpoint.interval=-1',
        'default_hooks.checkpoint.save_last=False',
        'default_hooks.checkpoint.save_best=None',
        'train_dataloader.num_workers=0',
        'train_dataloader.persistent_workers=False',
        'val_dataloader.num_workers=0',
        'val_dataloader.persistent_workers=False',
        'test_dataloader.num_workers=0',
        'test_dataloader.persistent_workers=False'
    ]


def train(dataset: str, method: str, seed: int, epochs: int, out_dir: Path,
          resume: bool) -> Tuple[Dict[str, float], Optional[Tuple[float,
                                                                  float]]]:
    """Metrics of one run, and its (wall, CPU) minutes (``None`` for a run
    reused with ``resume``). The CPU time (of ``mim train`` and the
    training process it starts) hardly depends on other load on the
    machine, so it is what to size the budget by."""
    from mmpose_afl.zoo import ZooError, read_measured
    config, options = METHODS[method][dataset]
    work_dir = out_dir / dataset / re.sub(r'\W+', '_', method) / f'seed{seed}'
    if resume:
        try:
            return read_measured(str(work_dir)).metrics, None
        except ZooError:
            pass
    work_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(BIN / 'mim'), 'train', 'mmpose', config, '--work-dir',
        str(work_dir), '--cfg-options', *budget_options(epochs, seed),
        *options
    ]
    start = time.time()
    log = work_dir / 'console_train.log'
    with open(log, 'w') as f:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=f,
                                stderr=subprocess.STDOUT,
                                env=dict(os.environ, OMP_NUM_THREADS='1'))
        # wait4: the rusage of mim and of the processes it waited for
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = (time.time() - start) / 60
    cpu = (usage.ru_utime + usage.ru_stime) / 60
    if proc.returncode:
        raise RuntimeError(f'{dataset} / {method} / seed {seed} failed; see '
                           f'{log}:\n{log.read_text()[-3000:]}')
    print(f'bench_accuracy: {dataset} / {method} / seed {seed}: '
          f'{wall:.1f} min, {cpu:.1f} CPU min', flush=True)
    return read_measured(str(work_dir)).metrics, (wall, cpu)


def mean_sd(values: List[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.
    return f'{statistics.mean(values):.3f} ± {sd:.3f}'


def table(results, dataset: str) -> List[str]:
    columns = COLUMNS[dataset]
    lines = ['| method | ' + ' | '.join(c for c, _ in columns) + ' |',
             '|---|' + '---:|' * len(columns)]
    for method, runs in results[dataset].items():
        cells = [mean_sd([metrics[key] for metrics in runs])
                 for _, key in columns]
        lines.append(f'| {method} | ' + ' | '.join(cells) + ' |')
    return lines


def plot(results, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    datasets = list(results)
    fig, axes = plt.subplots(len(datasets), 1, squeeze=False,
                             figsize=(10, 3.8 * len(datasets)))
    for ax, dataset in zip(axes[:, 0], datasets):
        columns = COLUMNS[dataset]
        methods = list(results[dataset])
        width = 0.8 / len(methods)
        x = np.arange(len(columns))
        for i, method in enumerate(methods):
            values = np.array([[m[key] for _, key in columns]
                               for m in results[dataset][method]])
            sd = values.std(0, ddof=1) if len(values) > 1 else None
            ax.bar(x + (i - (len(methods) - 1) / 2) * width, values.mean(0),
                   width, yerr=sd, capsize=2, label=method)
        ax.set_xticks(x, [c for c, _ in columns])
        ax.set_title(f'synthetic {dataset}: mean ± sd over seeds')
        ax.legend(fontsize=7, ncol=min(5, len(methods)))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--epochs', type=int, default=6,
                        help='training epochs of every run '
                        '(default: %(default)s)')
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1, 2],
                        help='random seeds, one run each per method and '
                        'dataset (default: %(default)s)')
    parser.add_argument('--methods', nargs='+', default=list(METHODS),
                        choices=list(METHODS), metavar='METHOD',
                        help=f'methods to train (default: all of '
                        f'{list(METHODS)})')
    parser.add_argument('--datasets', nargs='+', default=[COCO, WHOLEBODY],
                        choices=[COCO, WHOLEBODY],
                        help='synthetic sets to train on (default: both)')
    parser.add_argument('--jobs', type=int, default=2,
                        help='runs in parallel, one CPU thread each '
                        '(default: %(default)s)')
    parser.add_argument('--resume', action='store_true',
                        help='reuse runs whose work dir holds an evaluation')
    parser.add_argument('--out-dir', type=Path,
                        default=REPO / 'work_dirs' / 'bench_accuracy',
                        help='work dirs of the runs and their data '
                        '(default: work_dirs/bench_accuracy)')
    parser.add_argument('--out', type=Path,
                        default=REPO / 'benchmarks' / 'results_accuracy.md',
                        help='table to write; the plot goes next to it '
                        '(.png)')
    args = parser.parse_args(argv)
    sizes = {dataset: data_sizes(dataset) for dataset in args.datasets}
    runs = [(d, m, s) for d in args.datasets for m in args.methods
            if d in METHODS[m] for s in args.seeds]
    start = time.time()
    with ThreadPoolExecutor(args.jobs) as pool:
        done = list(pool.map(
            lambda run: train(*run, args.epochs, args.out_dir, args.resume),
            runs))
    hours = (time.time() - start) / 3600

    results: Dict[str, Dict[str, List[dict]]] = {}
    for (dataset, method, _), (metrics, _) in zip(runs, done):
        results.setdefault(dataset, {}).setdefault(method, []).append(metrics)
    timed = [t for _, t in done if t is not None]
    wall, cpu = ([statistics.mean(t[i] for t in timed) for i in (0, 1)]
                 if timed else (0., 0.))
    command = ' '.join(sys.argv[1:] if argv is None else argv)
    lines = [
        '# Accuracy on the synthetic data', '',
        'Written by `make bench-accuracy` (`python '
        f'benchmarks/bench_accuracy.py {command}`); the protocol is in the '
        'script\'s docstring. Every method: ResNet-18 128x96 from random '
        f'weights, batch 16, {args.epochs} epochs, seeds {args.seeds}; mean '
        '± sd (n - 1) over the seeds of the validation at the end.', ''
    ] + machine() + [
        f'- {args.jobs} runs in parallel, one thread each; per run '
        f'{wall:.1f} min ({cpu:.1f} CPU min) on average over the '
        f'{len(timed)} runs made; {hours:.2f} h in all', ''
    ]
    for dataset in results:
        num_train, num_val = sizes[dataset]
        lines += [f'## synthetic {dataset} ({num_train} train / {num_val} '
                  'val images)', ''] + table(results, dataset) + ['']
    args.out.write_text('\n'.join(lines))
    plot(results, args.out.with_suffix('.png'))
    print('\n'.join(lines))
    print(f'bench_accuracy: wrote {args.out} and '
          f'{args.out.with_suffix(".png")}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
