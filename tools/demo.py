"""The project's demo, from nothing to results: synthetic data, then the
baseline and each method trained with ``mim train`` and evaluated with
``mim test``, a results table per dataset, a zoo-style comparison of each
method with the baseline, AFL's difficulty figure and FoWKAL's factor figure.

Run it through ``make demo`` (the quick preset: every method briefly, a
few minutes on 2 CPU cores) or ``make demo-full`` (the configs' own 20-epoch
schedule, about 1.5 hours on 2 CPU cores), or directly::

    python tools/demo.py [--preset quick|full] [--methods baseline,afl]
        [--epochs N] [--num-train N] [--num-val N] [--work-dir DIR]

Everything is written under ``--work-dir`` (default ``work_dirs/demo`` for
the full preset, ``work_dirs/demo-quick`` for the quick one): each run in
``<method>/`` with its full logs ``console_train.log`` and
``console_test.log``; the tables in ``results.md``; the comparison in
``comparison_<dataset>.md`` and ``.png``; the figures in
``afl_difficulty.png`` and ``fowkal_kaf.png``. The synthetic data goes to
``data/``. While a run works, one line shows its progress (epoch,
iteration, loss, ETA); a failed run prints the end of its log.

The quick preset shows the flow, not which method is better: a few epochs
from random weights leave every method far from converged, and one seed
cannot separate methods (see docs/benchmarks.md's accuracy benchmark).

Every command the demo starts runs the losses eagerly
(``TORCH_COMPILE_DISABLE=1``, unless that variable is already set): on a new
machine ``torch.compile``'s cache is cold, and compiling costs about 20 s
before each run's first iteration (5-6 runs), which a short run does not
win back: at the demo configs' small heatmaps (32x24) the loss is a small
share of a ResNet-18 step. Compiling pays in long runs with large heatmaps
(``make bench``); set ``TORCH_COMPILE_DISABLE=0`` to compile anyway.
"""
import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import yaml
from tqdm import tqdm

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# the demo's runs are short: losses eager (see the module docstring)
COMPILE_ENV = 'TORCH_COMPILE_DISABLE'


def run_env() -> Dict[str, str]:
    """The environment of every command the demo starts: this one, with
    :data:`COMPILE_ENV` ``'1'`` unless it is set already."""
    env = dict(os.environ)
    env.setdefault(COMPILE_ENV, '1')
    return env


# method name -> (demo config, dataset kind); the baseline of a kind is the
# run the other methods of that kind are compared with
DEMOS = {
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
BASELINES = {'coco': 'baseline', 'wholebody': 'baseline-wholebody'}
# AFLCriticHook (custom_hooks[1] of the AFL demo config) records no samples
# unless told; 16 give the difficulty figure its 3 easiest and 3 hardest
AFL_TRACKED = 'custom_hooks.1.num_tracked=16'
# the images each preset generates, and its epochs (None: the config's)
PRESETS = {
    'quick':
    dict(
        num_train=128,
        num_val=24,
        epochs=6,
        warmup_iters=10,
        work_dir='work_dirs/demo-quick'),
    'full':
    dict(
        num_train=200,
        num_val=50,
        epochs=None,
        warmup_iters=None,
        work_dir='work_dirs/demo'),
}
DATA_ROOT = {
    'coco': 'data/synthetic_coco',
    'wholebody': 'data/synthetic_coco_wholebody'
}
VAL_ANN = {
    'coco': 'person_keypoints_val2017.json',
    'wholebody': 'coco_wholebody_val_v1.0.json'
}
METRIC = re.compile(r'([\w-]+/[\w.() -]+?): (-?\d+\.\d+)')
# the columns of the zoo tables: dataset kind -> [(metric key, header, name
# of the metric in MMPose's model-index metafiles)]
COLUMNS = {
    'coco': [('coco/AP', 'AP', 'AP'), ('coco/AP .5', 'AP .5', 'AP@0.5'),
             ('coco/AP .75', 'AP .75', 'AP@0.75'), ('coco/AR', 'AR', 'AR')],
    'wholebody': [('coco-wholebody/AP', 'whole AP', 'Whole AP'),
                  ('coco-wholebody/body_AP', 'body AP', 'Body AP'),
                  ('coco-wholebody/foot_AP', 'foot AP', 'Foot AP'),
                  ('coco-wholebody/face_AP', 'face AP', 'Face AP'),
                  ('coco-wholebody/hand_AP', 'hand AP', 'Hand AP'),
                  ('coco-wholebody/AR', 'whole AR', 'Whole AR')],
}
# an MMEngine log line of a training / test iteration
PROGRESS = re.compile(
    r'Epoch\((train|test)\)\s+(?:\[(\d+)\])?\[\s*(\d+)/(\d+)\]')
LOSS = re.compile(r'\bloss: (\S+)')


class Progress:
    """One live line for a run, fed with the lines of its log: epoch,
    iteration, loss and ETA (tqdm's, from the iterations done so far)."""

    def __init__(self, label: str, epochs: Optional[int]):
        self.epochs = epochs
        self.bar = tqdm(
            desc=label,
            total=None,
            unit='it',
            file=sys.stdout,
            dynamic_ncols=True,
            mininterval=0.5,
            bar_format='{desc} {n_fmt}/{total_fmt} it '
            '[{elapsed}<{remaining}]{postfix}')

    def feed(self, line: str) -> None:
        found = PROGRESS.search(line)
        if not found:
            return
        phase, epoch, it, per_epoch = found.groups()
        it, per_epoch = int(it), int(per_epoch)
        postfix = {}
        if phase == 'train' and self.epochs:
            epoch = int(epoch)
            self.bar.total = self.epochs * per_epoch
            self.bar.n = (epoch - 1) * per_epoch + it
            postfix['epoch'] = f'{epoch}/{self.epochs}'
        else:
            self.bar.total, self.bar.n = per_epoch, it
        loss = LOSS.search(line)
        if loss:
            postfix['loss'] = loss.group(1)
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.refresh()

    def close(self) -> None:
        self.bar.close()


def run(cmd: Sequence,
        log: Path,
        label: str,
        epochs: Optional[int] = None,
        progress: bool = True) -> str:
    """Runs ``cmd`` in the repo, its output to ``log`` (after the whole
    command) and a progress line to the screen (the command without its
    ``--cfg-options``), and with ``progress`` a live line of the
    iterations of ``mim train`` / ``mim test`` (``epochs`` of training); on
    failure prints the end of the log and exits."""
    cmd = list(map(str, cmd))
    options = '--cfg-options' in cmd
    shown = [
        Path(a).name if a.startswith(str(BIN)) else a
        for a in (cmd[:cmd.index('--cfg-options')] if options else cmd)
    ]
    print(
        f'$ {" ".join(shown)}{" --cfg-options ..." * options}\n'
        f'  full log (with the whole command): {log}',
        flush=True)
    bar = Progress(label, epochs) if progress else None
    with open(log, 'w') as f:
        f.write(f'$ {" ".join(cmd)}\n')
        f.flush()
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=run_env())
        for line in proc.stdout:
            f.write(line)
            if bar:
                bar.feed(line)
        returncode = proc.wait()
    if bar:
        bar.close()
    text = log.read_text()
    if returncode != 0:
        tail = '\n'.join(text.splitlines()[-40:])
        sys.exit(f'{label} failed (exit status {returncode}); the end of '
                 f'{log}:\n{tail}')
    return text


def ensure_data(kind: str, num_train: int, num_val: int) -> Path:
    """The synthetic data set of ``kind`` with that many images, generated
    once (the configs' own ``data_root`` for 200 / 50 images)."""
    root = DATA_ROOT[kind]
    if (num_train, num_val) != (200, 50):
        root += f'_{num_train}-{num_val}'
    out = REPO / root
    if not (out / 'annotations').is_dir():
        (REPO / 'work_dirs').mkdir(exist_ok=True)
        run([
            sys.executable, 'tools/make_synthetic_data.py', '--kind', kind,
            '--out', root, '--num-train', num_train, '--num-val', num_val,
            '--seed', 0
        ],
            REPO / 'work_dirs' / f'make_data_{kind}.log',
            f'synthetic {kind} data',
            progress=False)
    return out


def run_options(data_root: Path,
                kind: str,
                epochs: Optional[int],
                warmup_iters: Optional[int] = None) -> List:
    """``--cfg-options`` for one demo run: its data, seed 0, and with
    ``epochs`` a schedule of that many epochs that validates only through
    ``mim test`` (its linear warm-up ``warmup_iters`` long instead of the
    configs' 50 iterations, which would otherwise fill a short run)."""
    root = f'{data_root}/'
    ann = f'{root}annotations/{VAL_ANN[kind]}'
    options = [
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        f'val_evaluator.ann_file={ann}',
        f'test_evaluator.ann_file={ann}',
        'default_hooks.logger.interval=1',
        # one seed for every run: the same initialisation and data order
        'randomness.seed=0',
    ]
    if epochs:
        options += [
            f'train_cfg.max_epochs={epochs}',
            f'train_cfg.val_interval={epochs + 1}',
            f'default_hooks.checkpoint.interval={epochs}',
            # the milestones of the 20-epoch schedule, scaled
            f'param_scheduler.1.end={epochs}',
            'param_scheduler.1.milestones='
            f'[{max(1, round(epochs * 0.75))},{max(1, round(epochs * 0.9))}]',
        ]
    if warmup_iters:
        options.append(f'param_scheduler.0.end={warmup_iters}')
    return options


def test_metrics(text: str) -> Dict[str, float]:
    """Metrics from the ``Epoch(test)`` line that ``mim test`` prints."""
    lines = [
        ln for ln in text.splitlines()
        if 'Epoch(test)' in ln and METRIC.search(ln)
    ]
    if not lines:
        sys.exit('mim test printed no Epoch(test) metrics:\n' + text[-3000:])
    return {k.strip(): float(v) for k, v in METRIC.findall(lines[-1])}


def results_table(rows) -> str:
    """Markdown tables, one per dataset kind, of ``rows`` =
    ``[(method, kind, train minutes, metrics), ...]``."""
    tables = []
    for kind, columns in COLUMNS.items():
        kind_rows = [row for row in rows if row[1] == kind]
        if not kind_rows:
            continue
        header = ['method', 'data', 'train min'] + [h for _, h, _ in columns]
        lines = [
            '| ' + ' | '.join(header) + ' |',
            '|---|---|' + '---:|' * (len(header) - 2)
        ]
        for method, _, minutes, metrics in kind_rows:
            cells = [method, f'synthetic {kind}', f'{minutes:.1f}'] + [
                f'{metrics[k]:.3f}' if k in metrics else '-'
                for k, _, _ in columns
            ]
            lines.append('| ' + ' | '.join(cells) + ' |')
        tables.append('\n'.join(lines))
    return '\n\n'.join(tables)


def compare(kind: str, runs: Dict[str, Tuple[Dict, Path]],
            work_dir: Path) -> Optional[Path]:
    """The zoo-style table of ``tools/compare_with_zoo.py`` for the methods
    of ``kind``, with this demo's baseline run as the published entry (the
    zoo has no numbers for synthetic data). Returns the table's path, or
    ``None`` when the baseline or every method of ``kind`` did not run."""
    baseline = BASELINES[kind]
    methods = [m for m in runs if DEMOS[m][1] == kind and m != baseline]
    if baseline not in runs or not methods:
        return None
    metrics, _ = runs[baseline]
    name = f'{baseline} (this demo)'
    entry = dict(
        Name=name,
        Config=DEMOS[baseline][0],
        Results=[
            dict(
                Dataset=f'synthetic {kind} (this demo)',
                Metrics={
                    zoo: metrics[key]
                    for key, _, zoo in COLUMNS[kind] if key in metrics
                })
        ])
    metafile = work_dir / f'baseline_{kind}.yml'
    metafile.write_text(yaml.safe_dump(dict(Models=[entry]), sort_keys=False))
    md, png = (work_dir / f'comparison_{kind}.md',
               work_dir / f'comparison_{kind}.png')
    pairs = [p for m in methods for p in (DEMOS[m][0], runs[m][1])]
    run([
        sys.executable, 'tools/compare_with_zoo.py', *pairs,
        '--baseline-metafile', metafile, '--baseline', name, '--md', md,
        '--png', png
    ],
        work_dir / f'comparison_{kind}.log',
        f'comparison ({kind})',
        progress=False)
    return md


def demo_methods(text: str) -> List[str]:
    """The value of a ``--methods`` option: a comma-separated subset of
    :data:`DEMOS`."""
    methods = text.split(',')
    unknown = sorted(set(methods) - set(DEMOS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f'unknown {unknown}; choose from {list(DEMOS)}')
    return methods


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        epilog=__doc__.split('\n\n', 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--preset',
        choices=list(PRESETS),
        default='quick',
        help='quick: %(quick)s; full: %(full)s (default: %%(default)s)' % {
            k: ', '.join(f'{n}={v}' for n, v in p.items())
            for k, p in PRESETS.items()
        })
    parser.add_argument(
        '--methods',
        type=demo_methods,
        default=list(DEMOS),
        help='comma-separated subset of '
        f'{",".join(DEMOS)} (default: all)')
    parser.add_argument(
        '--epochs',
        type=int,
        help="training epochs (default: the preset's; the "
        "full preset keeps the configs' 20)")
    parser.add_argument(
        '--num-train',
        type=int,
        help="synthetic training images (default: the "
        "preset's)")
    parser.add_argument(
        '--num-val',
        type=int,
        help="synthetic validation images (default: the "
        "preset's)")
    parser.add_argument(
        '--warmup-iters',
        type=int,
        help="iterations of linear learning-rate warm-up "
        "(default: the preset's; the full preset keeps the "
        "configs' 50)")
    parser.add_argument(
        '--work-dir',
        type=Path,
        help="where the runs, tables and figures go, "
        "relative to the repo (default: the preset's)")
    args = parser.parse_args(argv)
    for key, value in PRESETS[args.preset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    args.work_dir = REPO / args.work_dir
    return args


def main(argv=None) -> None:
    args = parse_args(argv)
    start = time.time()
    work_dir = args.work_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    runs, rows = {}, []
    for number, method in enumerate(args.methods, 1):
        config, kind = DEMOS[method]
        data_root = ensure_data(kind, args.num_train, args.num_val)
        run_dir = work_dir / method
        run_dir.mkdir(parents=True, exist_ok=True)
        options = run_options(data_root, kind, args.epochs, args.warmup_iters)
        if method == 'afl':
            options.append(AFL_TRACKED)
        label = f'[{number}/{len(args.methods)}] {method}'
        print(f'\n{label}: {config}', flush=True)
        began = time.time()
        run([
            BIN / 'mim', 'train', 'mmpose', config, '--work-dir', run_dir,
            '--cfg-options', *options
        ], run_dir / 'console_train.log', f'{label} train', args.epochs or 20)
        minutes = (time.time() - began) / 60
        checkpoint = (run_dir / 'last_checkpoint').read_text().strip()
        text = run([
            BIN / 'mim', 'test', 'mmpose', config, '--checkpoint', checkpoint,
            '--work-dir', run_dir, '--cfg-options', *options
        ], run_dir / 'console_test.log', f'{label} test')
        metrics = test_metrics(text)
        runs[method] = (metrics, run_dir)
        rows.append((method, kind, minutes, metrics))

    table = results_table(rows)
    (work_dir / 'results.md').write_text(table + '\n')
    print('\n## Results (mim test)\n\n' + table)

    comparisons = [compare(kind, runs, work_dir) for kind in COLUMNS]
    comparisons = [md for md in comparisons if md is not None]
    if comparisons:
        print('\n## Each method against the baseline, zoo-style '
              '(tools/compare_with_zoo.py)\n\nSynthetic data and a short '
              'schedule: these numbers are not comparable with the MMPose '
              "zoo's COCO numbers. The baseline row is this demo's own MSE "
              'run, standing in for the zoo entry.\n')
        for md in comparisons:
            print(md.read_text())
            print(f'bar chart: {md.with_suffix(".png")}\n')

    figures = []
    if 'afl' in runs:
        out = work_dir / 'afl_difficulty.png'
        run([
            sys.executable, 'tools/draw_afl_difficulty.py', runs['afl'][1],
            '--out', out
        ],
            work_dir / 'afl_difficulty.log',
            'AFL difficulty figure',
            progress=False)
        figures.append(
            ('AFL difficulty of tracked samples (paper Fig. 3)', out))
    if 'fowkal' in runs:
        out = work_dir / 'fowkal_kaf.png'
        checkpoint = (runs['fowkal'][1] / 'last_checkpoint').read_text()
        run([
            sys.executable, 'tools/draw_kaf.py',
            checkpoint.strip(), '--out', out
        ],
            work_dir / 'fowkal_kaf.log',
            'FoWKAL factor figure',
            progress=False)
        figures.append(
            ('FoWKAL keypoint-wise factors (paper KAF figure)', out))
    if figures:
        print('\n## Figures\n')
        for title, path in figures:
            print(f'{title}: {path}')
    print(f'\nresults: {work_dir / "results.md"}\n'
          f'demo finished in {(time.time() - start) / 60:.1f} min')


if __name__ == '__main__':
    main()
