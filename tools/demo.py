"""The project's demo, from nothing to results: synthetic data, then the
baseline and each method trained with ``mim train`` and validated at the
end of its training, a results table per dataset, a zoo-style comparison
of each method with the baseline, and what each method did on its own
terms (AFL's difficulties and figure, FoWKAL's learned factors and figure).

Run it through ``make demo`` (the quick preset) or ``make demo-full`` (the
configs' own 20-epoch schedule from random weights), or directly::

    python tools/demo.py [--preset quick|full] [--methods baseline,afl]
        [--start-epochs N] [--epochs N] [--num-train N] [--num-val N]
        [--work-dir DIR]

The quick preset splits one short schedule in two. First a shared start:
the WholeBody MSE baseline trained from random weights for
``--start-epochs`` at the configs' lr; the COCO runs load the same weights
with the head's last layer cut to COCO's 17 keypoints (WholeBody's first
17). It is made once: a later demo with the same settings reuses it. Then
every run, the baseline included, loads it and trains ``--epochs`` more
with its own loss or head, the lr annealed to 0, on the same data order
and seed. Trained from random weights in the same minutes every method
stays near AP 0 and the table shows nothing; from one start each run
reaches a readable AP, and each method is compared with the baseline run
that had the same start and budget. A method's fresh parts start as its
fine-tune configs start them (docs/finetune.md): HSM's head is
re-calibrated when the checkpoint is loaded
(``SigmoidHeadCalibrationHook``); SAHR's scale branch, AFL's critic and
FoWKAL's factors start at their own initial values.

Everything goes under ``--work-dir`` (default ``work_dirs/demo-quick`` for
the quick preset, ``work_dirs/demo`` for the full one): the config of each
run in ``configs/<run>.py`` (the method's config plus the demo's data,
schedule and start; ``mim train`` it to repeat a run, ``mim test`` it with
the run's checkpoint to evaluate again), each
run in ``<run>/`` with its full logs ``console_train.log`` and
``console_test.log``, the tables in ``results.md``, the comparisons in
``comparison_<dataset>.md`` and ``.png``, the figures in
``afl_difficulty.png`` and ``fowkal_kaf.png``. The synthetic data goes to
``data/``. While a run works, one line shows its progress (epoch,
iteration, loss, ETA); a failed run prints the end of its log.

Every command the demo starts runs the losses eagerly
(``TORCH_COMPILE_DISABLE=1``, unless that variable is already set):
``torch.compile`` compiles again before each run's first iteration on a
machine without its cache, which runs this short do not win back. Set
``TORCH_COMPILE_DISABLE=0`` to compile anyway.
"""
import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

import yaml
from tqdm import tqdm

from mmpose_afl.utils.mim_run import CommandError, last_checkpoint, run_command

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


class Demo(NamedTuple):
    """One run of the demo: the method's ``config``, its dataset ``kind``,
    config lines added to every run of it (``extra``) and to a run that
    starts from the shared checkpoint (``start_extra``)."""
    config: str
    kind: str
    extra: str = ''
    start_extra: str = ''


DEMOS = {
    'baseline':
    Demo('configs/baseline/td-hm_res18_1xb16-20e_synthetic-coco-128x96.py',
         'coco'),
    'afl':
    Demo(
        'configs/afl/td-hm_res18_afl-1xb16-20e_synthetic-coco-128x96.py',
        'coco',
        # AFLCriticHook records no samples unless told; 16 give the
        # difficulty figure its 3 easiest and 3 hardest
        extra="custom_hooks = [dict(type='SyncBuffersHook'), "
        "dict(type='AFLCriticHook', num_tracked=16)]\n"),
    'sahr-wahr':
    Demo(
        'configs/sahr/'
        'td-hm_res18_sahr-wahr-1xb16-20e_synthetic-coco-128x96.py', 'coco'),
    'hsm':
    Demo(
        'configs/hsm/td-hm_res18_hsm-1xb16-20e_synthetic-coco-128x96.py',
        'coco',
        # the MSE head's output read as logits puts the background at
        # sigmoid 0.5, a start that collapses (docs/finetune.md)
        start_extra='custom_hooks = _base_.custom_hooks + '
        "[dict(type='SigmoidHeadCalibrationHook', prior=0.1)]\n"),
    'baseline-wholebody':
    Demo(
        'configs/baseline/'
        'td-hm_res18_1xb16-20e_synthetic-coco-wholebody-128x96.py',
        'wholebody'),
    'fowkal':
    Demo(
        'configs/fowkal/'
        'td-hm_res18_fowkal-1xb16-20e_synthetic-coco-wholebody-128x96.py',
        'wholebody'),
}
BASELINES = {'coco': 'baseline', 'wholebody': 'baseline-wholebody'}
# the images each preset generates, the epochs of the shared start (0: every
# run from random weights), the epochs and batch of each run (None: the
# config's). The quick preset's batch of 8: twice the updates of 16 for
# about the same CPU time, which a short schedule needs
# (benchmarks/calibration_notes.md)
PRESETS = {
    'quick':
    dict(
        num_train=200,
        num_val=50,
        start_epochs=8,
        epochs=1,
        batch_size=8,
        work_dir='work_dirs/demo-quick'),
    'full':
    dict(
        num_train=200,
        num_val=50,
        start_epochs=0,
        epochs=None,
        batch_size=None,
        work_dir='work_dirs/demo'),
}
# linear learning-rate warm-up of a short schedule, in iterations: Adam's
# moments start at zero in every run, also one that loads a checkpoint
WARMUP_ITERS = 10
# COCO's keypoints are COCO-WholeBody's first 17, in the same order
COCO_KEYPOINTS = 17
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
    try:
        result = run_command(
            cmd,
            log,
            cwd=REPO,
            env=run_env(),
            on_line=bar.feed if bar else None,
            log_command=True)
    except CommandError as error:
        tail = '\n'.join(log.read_text().splitlines()[-40:])
        sys.exit(f'{label} failed (exit status {error.returncode}); the end '
                 f'of {log}:\n{tail}')
    finally:
        if bar:
            bar.close()
    return result.text


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


def config_text(demo: Demo,
                path: Path,
                data_root: Path,
                epochs: Optional[int],
                start: Optional[Path] = None,
                batch_size: Optional[int] = None,
                decay: bool = True) -> str:
    """The config of one demo run, written to ``path``: ``demo``'s config
    with the demo's data and seed 0; with ``epochs`` a schedule of that
    many epochs that validates once, at its end: a linear warm-up, then
    the configs' lr, with ``decay`` annealed to 0 by the end (cosine,
    every iteration: a run too short for the configs' steps still ends at
    a low lr); with ``batch_size`` that training batch; with ``start`` that
    checkpoint loaded and the method's ``start_extra``."""
    root = f'{os.path.relpath(data_root, REPO)}/'
    base = os.path.relpath(REPO / demo.config, path.parent)
    batch = f'batch_size={batch_size}, ' if batch_size else ''
    lines = [
        f"_base_ = ['{base}']", '', '# the demo\'s data and seed',
        f"train_dataloader = dict({batch}dataset=dict(data_root='{root}'))",
        f"val_dataloader = dict(dataset=dict(data_root='{root}'))",
        'test_dataloader = val_dataloader',
        f"val_evaluator = dict(ann_file='{root}annotations/"
        f"{VAL_ANN[demo.kind]}')", 'test_evaluator = val_evaluator',
        'randomness = dict(seed=0)'
    ]
    hooks = 'logger=dict(interval=1)'
    if epochs:
        schedulers = [
            f"dict(type='LinearLR', begin=0, end={WARMUP_ITERS}, "
            'start_factor=0.01, by_epoch=False)'
        ]
        if decay:
            schedulers.append(
                f"dict(type='CosineAnnealingLR', begin=0, end={epochs}, "
                f'T_max={epochs}, eta_min=0., by_epoch=True, '
                'convert_to_iter_based=True)')
        lines += [
            '', '# the demo\'s schedule',
            f'train_cfg = dict(max_epochs={epochs}, val_interval={epochs})',
            'param_scheduler = [\n    ' + ',\n    '.join(schedulers) + '\n]'
        ]
        hooks += f', checkpoint=dict(interval={epochs})'
    lines.append(f'default_hooks = dict({hooks})')
    if start:
        lines += ['', '# the shared start', f"load_from = '{start}'"]
        lines += demo.start_extra.splitlines()
    lines += demo.extra.splitlines()
    return '\n'.join(lines) + '\n'


def write_config(text: str, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def logged_metrics(text: str, phase: str = 'test') -> Dict[str, float]:
    """Metrics from the last ``Epoch(<phase>)`` line of a log."""
    lines = [
        ln for ln in text.splitlines()
        if f'Epoch({phase})' in ln and METRIC.search(ln)
    ]
    if not lines:
        sys.exit(f'no Epoch({phase}) metrics in the log:\n' + text[-3000:])
    return {k.strip(): float(v) for k, v in METRIC.findall(lines[-1])}


def cut_to_coco(checkpoint: Path, out: Path) -> Path:
    """``checkpoint``, a COCO-WholeBody model, as a COCO one: its weights
    with the head's last layer cut to the first 17 keypoints (COCO's 17,
    in the same order), written to ``out``."""
    import torch
    state = torch.load(checkpoint, map_location='cpu', weights_only=False)
    weights = state['state_dict']
    for key in ('head.final_layer.weight', 'head.final_layer.bias'):
        weights[key] = weights[key][:COCO_KEYPOINTS].clone()
    torch.save(dict(state_dict=weights), out)
    return out


def ensure_start(data: Dict[str, Path], work_dir: Path, epochs: int,
                 batch_size: Optional[int]) -> Tuple[Dict, float, bool]:
    """The shared start: the WholeBody baseline trained from random weights
    for ``epochs`` and validated at the end, and the same weights cut to
    COCO (:func:`cut_to_coco`) and evaluated with ``mim test``; made once,
    and reused by a later demo while its configs are the same. ``data``:
    the data root of each kind. Returns ``({kind: (checkpoint, metrics)},
    train minutes, reused)``."""
    configs = {
        kind: work_dir / 'configs' / f'start-{kind}.py'
        for kind in data
    }
    texts = {
        kind:
        config_text(
            DEMOS[BASELINES[kind]],
            configs[kind],
            data[kind],
            epochs if kind == 'wholebody' else None,
            batch_size=batch_size,
            decay=False)
        for kind in data
    }
    done = work_dir / 'start.json'
    if done.is_file():
        record = json.loads(done.read_text())
        if record['configs'] == texts and all(
                Path(c).is_file() for c, _ in record['starts'].values()):
            print(
                f'\nstart: reusing the checkpoints of an earlier demo '
                f'({done}; delete it to train the start again)',
                flush=True)
            starts = {
                k: (Path(c), m)
                for k, (c, m) in record['starts'].items()
            }
            return starts, record['minutes'], True
    for kind, text in texts.items():
        write_config(text, configs[kind])
    run_dir = work_dir / 'start-wholebody'
    run_dir.mkdir(parents=True, exist_ok=True)
    print(
        f'\nstart: the WholeBody MSE baseline from random weights, {epochs} '
        'epochs; every run below starts from it',
        flush=True)
    began = time.time()
    log = run([
        BIN / 'mim', 'train', 'mmpose', configs['wholebody'], '--work-dir',
        run_dir
    ], run_dir / 'console_train.log', 'start train', epochs)
    minutes = (time.time() - began) / 60
    checkpoint = last_checkpoint(run_dir)
    starts = {'wholebody': (checkpoint, logged_metrics(log, 'val'))}
    if 'coco' in data:
        coco_dir = work_dir / 'start-coco'
        coco_dir.mkdir(parents=True, exist_ok=True)
        coco = cut_to_coco(checkpoint, coco_dir / 'start_coco.pth')
        print(f'\nstart, cut to the 17 COCO keypoints: {coco}', flush=True)
        log = run([
            BIN / 'mim', 'test', 'mmpose', configs['coco'], '--checkpoint',
            coco, '--work-dir', coco_dir
        ], coco_dir / 'console_test.log', 'start (COCO) test')
        starts['coco'] = (coco, logged_metrics(log))
    done.write_text(
        json.dumps(
            dict(
                configs=texts,
                starts={
                    k: (str(c), m)
                    for k, (c, m) in starts.items()
                },
                minutes=minutes)))
    return starts, minutes, False


def results_table(rows) -> str:
    """Markdown tables, one per dataset kind, of ``rows`` =
    ``[(run, kind, epochs, train minutes, metrics), ...]``."""
    tables = []
    for kind, columns in COLUMNS.items():
        kind_rows = [row for row in rows if row[1] == kind]
        if not kind_rows:
            continue
        header = ['run', 'data', 'epochs', 'train min'
                  ] + [h for _, h, _ in columns]
        lines = [
            '| ' + ' | '.join(header) + ' |',
            '|---|---|---|' + '---:|' * (len(header) - 3)
        ]
        for name, _, epochs, minutes, metrics in kind_rows:
            cells = [name, f'synthetic {kind}', epochs, f'{minutes:.1f}'] + [
                f'{metrics[k]:.3f}' if k in metrics else '-'
                for k, _, _ in columns
            ]
            lines.append('| ' + ' | '.join(cells) + ' |')
        tables.append('\n'.join(lines))
    return '\n\n'.join(tables)


def compare(kind: str, runs: Dict[str, Tuple[Dict, Path, Path]],
            work_dir: Path) -> Optional[Path]:
    """The zoo-style table of ``tools/compare_with_zoo.py`` for the methods
    of ``kind``, with this demo's baseline run as the published entry (the
    zoo has no numbers for synthetic data). Returns the table's path, or
    ``None`` when the baseline or every method of ``kind`` did not run."""
    baseline = BASELINES[kind]
    methods = [m for m in runs if DEMOS[m].kind == kind and m != baseline]
    if baseline not in runs or not methods:
        return None
    metrics, _, config = runs[baseline]
    name = f'{baseline} (this demo)'
    entry = dict(
        Name=name,
        Config=str(config),
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
    pairs = [p for m in methods for p in (runs[m][2], runs[m][1])]
    run([
        sys.executable, 'tools/compare_with_zoo.py', *pairs,
        '--baseline-metafile', metafile, '--baseline', name, '--md', md,
        '--png', png
    ],
        work_dir / f'comparison_{kind}.log',
        f'comparison ({kind})',
        progress=False)
    return md


def train_scalars(run_dir: Path) -> List[Dict]:
    """The records MMEngine logged while ``run_dir``'s training ran (its
    ``vis_data/scalars.json``), in order."""
    files = sorted(run_dir.glob('*/vis_data/scalars.json'))
    return [json.loads(ln)
            for ln in files[-1].read_text().splitlines()] if files else []


def afl_signal(run_dir: Path) -> str:
    """What AFL's critic did in its last logged epoch: the effective
    sample size of its weights and the spread of the difficulties."""
    records = [r for r in train_scalars(run_dir) if 'afl_ess' in r]
    if not records:
        return 'AFL: no critic statistics logged'
    last = [r for r in records if r['epoch'] == records[-1]['epoch']]
    ess = [r['afl_ess'] for r in last]
    low = min(r['afl_difficulty_min'] for r in last)
    high = max(r['afl_difficulty_max'] for r in last)
    text = ('AFL: in its last epoch the critic weighted the samples of a '
            f'batch with an effective sample size of {min(ess):.3f}-'
            f'{max(ess):.3f} of the batch (1: all weighted alike), from '
            f'difficulties {low:.3f}-{high:.3f}')
    if min(ess) > 0.99:
        text += ('; so far AFL weighted every sample about alike and '
                 'trained as MSE does: its critic needs a longer run to '
                 'tell samples apart (docs/afl.md)')
    return text


def fowkal_signal(run_dir: Path) -> str:
    """How FoWKAL's learned factors of each part moved, first to last
    logged iteration (0: MSE, 1: AWing)."""
    records = [r for r in train_scalars(run_dir) if 'kaf_body' in r]
    if not records:
        return 'FoWKAL: no factors logged'
    parts = [k for k in records[0] if k.startswith('kaf_')]
    moves = ', '.join(f'{k[4:]} {records[0][k]:.3f} -> {records[-1][k]:.3f}'
                      for k in parts)
    moved = max(abs(records[-1][k] - records[0][k]) for k in parts)
    text = ('FoWKAL: mean learned factor of each part (0: MSE, 1: AWing), '
            f'first -> last iteration: {moves}')
    if moved < 0.05:
        text += ('; the factors stayed near their initial values, so this '
                 'run weighted the parts by that starting heuristic, not '
                 'by what it learned (docs/fowkal.md)')
    return text


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
        '--start-epochs',
        type=int,
        help="epochs of the shared start, 0 for none: every run from "
        "random weights (default: the preset's)")
    parser.add_argument(
        '--epochs',
        type=int,
        help="training epochs of each run (default: the preset's; the "
        "full preset keeps the configs' 20)")
    parser.add_argument(
        '--batch-size',
        type=int,
        help="training batch of every run (default: the preset's; the "
        "full preset keeps the configs' 16)")
    parser.add_argument(
        '--num-train',
        type=int,
        help="synthetic training images (default: the preset's)")
    parser.add_argument(
        '--num-val',
        type=int,
        help="synthetic validation images (default: the preset's)")
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


# what the quick demo's numbers can and cannot say, printed under its table
CAVEAT = (
    'Every run loaded the start row\'s checkpoint and trained {epochs} '
    'more epoch(s) on the same data, schedule and seed; the baseline row is '
    'the control (the same epochs with MSE). What the numbers show: each '
    'method trains with mim train from the same start and reaches an AP '
    'far from zero. What they cannot show: which method is better. One '
    'seed, one small synthetic set and a few epochs: differences of a few '
    'AP points are within run-to-run noise here (docs/benchmarks.md, the '
    'accuracy benchmark over 3 seeds).')


def main(argv=None) -> None:
    args = parse_args(argv)
    began_demo = time.time()
    work_dir = args.work_dir
    work_dir.mkdir(parents=True, exist_ok=True)
    kinds = {DEMOS[m].kind for m in args.methods}
    if args.start_epochs:
        kinds.add('wholebody')  # the start is trained on it
    data = {
        kind: ensure_data(kind, args.num_train, args.num_val)
        for kind in COLUMNS if kind in kinds
    }
    starts, rows, runs = {}, [], {}
    if args.start_epochs:
        starts, minutes, reused = ensure_start(data, work_dir,
                                               args.start_epochs,
                                               args.batch_size)
        for kind, (_, metrics) in starts.items():
            name = 'start (MSE)' if kind == 'wholebody' else 'start, cut'
            rows.append((name + ' (reused)' * reused, kind,
                         str(args.start_epochs), minutes, metrics))
    for number, method in enumerate(args.methods, 1):
        demo = DEMOS[method]
        start = starts[demo.kind][0] if starts else None
        config = work_dir / 'configs' / f'{method}.py'
        write_config(
            config_text(demo, config, data[demo.kind], args.epochs, start,
                        args.batch_size), config)
        run_dir = work_dir / method
        run_dir.mkdir(parents=True, exist_ok=True)
        label = f'[{number}/{len(args.methods)}] {method}'
        print(f'\n{label}: {demo.config}', flush=True)
        began = time.time()
        log = run(
            [BIN / 'mim', 'train', 'mmpose', config, '--work-dir', run_dir],
            run_dir / 'console_train.log', f'{label} train', args.epochs or 20)
        minutes = (time.time() - began) / 60
        metrics = logged_metrics(log, 'val')
        runs[method] = (metrics, run_dir, config)
        epochs = str(args.epochs or 20)
        if start:
            epochs = f'{args.start_epochs}+{epochs}'
        rows.append((method, demo.kind, epochs, minutes, metrics))

    table = results_table(rows)
    (work_dir / 'results.md').write_text(table + '\n')
    print('\n## Results (validation at the end of each run)\n\n' + table)
    if starts:
        print('\n' + CAVEAT.format(epochs=args.epochs))

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

    signals = []
    if 'afl' in runs:
        out = work_dir / 'afl_difficulty.png'
        run([
            sys.executable, 'tools/draw_afl_difficulty.py', runs['afl'][1],
            '--out', out
        ],
            work_dir / 'afl_difficulty.log',
            'AFL difficulty figure',
            progress=False)
        signals.append(
            f'{afl_signal(runs["afl"][1])}.\n  The difficulty of tracked '
            f'samples over training (paper Fig. 3): {out}')
    if 'fowkal' in runs:
        out = work_dir / 'fowkal_kaf.png'
        checkpoint = last_checkpoint(runs['fowkal'][1])
        run([sys.executable, 'tools/draw_kaf.py', checkpoint, '--out', out],
            work_dir / 'fowkal_kaf.log',
            'FoWKAL factor figure',
            progress=False)
        signals.append(
            f'{fowkal_signal(runs["fowkal"][1])}.\n  The factor of every '
            f'keypoint on the skeleton (paper KAF figure): {out}')
    if signals:
        print('\n## What each method did on its own terms\n')
        for signal in signals:
            print(f'- {signal}')
    print(f'\nresults: {work_dir / "results.md"}\n'
          f'demo finished in {(time.time() - began_demo) / 60:.1f} min')


if __name__ == '__main__':
    main()
