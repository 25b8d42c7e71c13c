"""Accuracy of every method on the synthetic data, with the same model,
data and budget: mean ± sd over seeds, per part for COCO-WholeBody, and
every method's paired difference to MSE, overall and per difficulty
stratum, with a verdict.

    python benchmarks/bench_accuracy.py
        [--preset cpu|gpu|demo-full|real-pose] [--epochs N]
        [--seeds 0 1 2] [--methods MSE FoWKAL ...]
        [--datasets coco wholebody] [--jobs 2] [--device cpu|cuda]
        [--resume] [--report-only] [--dry-run]

``make bench-accuracy`` runs the ``cpu`` preset, ``make
bench-accuracy-gpu`` the ``gpu`` one (``PRESETS``; the methods, presets and
references named here are in mmpose_afl/benchmark/accuracy_methods.py).
Every run is a real ``mim train`` of the method's synthetic demo config
(ResNet-18 from random weights, Adam 1e-3) with the preset's data, input
size, batch and ``--epochs`` epochs (the learning rate drops x0.1 at about
3/4 and 9/10 of them), ``randomness.seed`` = the seed, and one validation
on the val set at the end with the stratified metric
(``StratifiedCocoMetric``; for WholeBody
``StratifiedCocoWholeBodyMetric``): the configs' COCO AP/AR (per part for
WholeBody) plus AP/AR per stratum (difficulty flags, occlusion, labelled
keypoints, area; mmpose_afl/evaluation/metrics/stratified_metric.py).
The metrics are read from the run's log with ``mmpose_afl.zoo.read_measured``.
In the ``cpu`` and ``gpu`` presets each seed has its own synthetic set,
drawn with the seed as the generator's seed (``<out-dir>/data``): with one
set for all seeds the sd measured training noise only, and the verdicts
moved with the draw of a 50-image val set (benchmarks/calibration_notes.md,
"unusual pose"); now the sd covers the data draw too, and the val set is
250 images. These sets pose the generator's unusual-pose people mildly
(``unusual_pose='mild'``: tilt within +-90 degrees, joint angles 45 degrees
beyond the usual ranges); drawn from the full circle, as in ``make data``'s
sets, no method scores above AP 0 on them at this budget. Each run trains a
config written to ``<out-dir>/configs`` (the method's config with all of
the above merged in), so the work dir's dumped config is what ran.

Pairing. The same seed gives every method the same data set,
initialisation, data order and augmentations: ``randomness.seed`` seeds the
generators before the model is built and MMEngine's ``DefaultSampler``
draws the order from the seed alone, but the modules a method adds (AFL's
critic, a SAHR branch) draw random numbers while they are built, which
shifted the stream the head's ``init_weights`` and NumPy's augmentations
then drew from (measured: AFL, HSM and SAHR started from other head weights
than MSE at the same seed). Every run therefore has
``ReseedBeforeInitHook``, which reseeds right before ``init_weights``;
checked for every method and both data sets (same backbone and head weights
as MSE, same first batches; HSM's last conv keeps its own prior-bias
initialisation) and tested in tests/test_tools/test_bench_accuracy.py.
Loader workers (the gpu preset) are seeded from the seed by MMEngine. Each
method is then compared with the MSE run of its own seed
(mmpose_afl/benchmark/paired.py: per-seed differences, mean ± sd, and the
verdict better / not distinguishable / worse of a two-sided paired t-test at 5
%; the rule is written in the report), except AFL on another head, which is
compared with that head's plain run (``REFERENCES``: AFL (RTMPose-t) with
RTMPose-t, AFL (RLE) with RLE; one paired section and figure per reference).
The same-initialisation check above covers the heatmap methods; RTMPose-t and
RLE have their own networks.

Methods without a synthetic config of their own for a dataset are the
nearest config plus options (see ``METHODS``): heuristic and KAL are the
FoWKAL config with ``kaf`` / ``weighting`` changed (heuristic also without
normalisation, as the paper's row (c) and its config), SAHR and HSM on
WholeBody the WholeBody baseline with the head and loss types changed. The
FoWKAL family needs body parts, so it runs on WholeBody only.

Presets. ``cpu`` (the calibration of benchmarks/calibration_notes.md, where
what was tried is measured): 200 train / 250 val images per seed (make
data's sizes with a 5x larger val set, one set per seed), batch 8, 12
epochs, seeds 0-2, input 128x96 for COCO and 192x128 for WholeBody
(heatmaps 32x24 and 48x32), 2 runs in parallel with one thread and no
loader worker each; the methods of ``CPU_METHODS`` (11 method-data set
pairs, 33 runs; measured 2026-11-27 03:46-05:37: 6.4 CPU min per run on
average, 1.82 h in all). It puts the MSE baseline at COCO AP 0.549 ±
0.026 (target 0.5-0.75) and WholeBody whole AP 0.242 ± 0.020 (target
0.3-0.7: missed) with foot AP 0.10 and hand AP 0.16, under the 0.2 every
part should reach: MSE at this budget puts both knees and both ankles on
one leg for about 80 % of people, and the feet follow the ankles
(benchmarks/left_right.py). Neither a side cue drawn on the joints,
turning flip test off, a heatmap sigma of 1.5 or 3, twice the learning
rate nor a later lr drop changes that (benchmarks/calibration_notes.md
has every knob tried; none kept).
``demo-full``: the setting of ``make demo-full`` and of
benchmarks/results_afl.md (make data's sets, 128x96 for both, batch 16,
20 epochs, seeds 0-2, every method unless ``--methods``).
``gpu``: 256 train / 250 val images per seed (generated into the out dir),
256x192 input (heatmaps 64x48), batch 32, 8 epochs, seeds 0-2, 8 runs in
parallel on the one GPU with 2 loader workers each. Its size is an
estimate, not a measurement (no GPU was available when it was written),
from CPU costs measured here: the training pipeline takes 10 ms (COCO) /
15 ms (WholeBody: 133 heatmaps) of CPU per person at 256x192, with about 2
people per image, so 26 method-data set pairs x 3 seeds = 78 runs of about
4,100 people each cost about 4,200 CPU seconds of augmentation, plus about
1,200 for the runs' start-up (15 s each), about 200 for validation (250
images, about 500 people per run, 5 ms each) and a few hundred for the
training loops' own work (about 10,000 ResNet-18 steps of batch 32 in all,
not the bottleneck on an H100): about 6 minutes on the GPU machine's 16
cores if they are as fast as this machine's, plus about 10 s to draw the 6
data sets, aimed at at most 8 (one device command may run 10 minutes;
three seeds rather than five keep the 26 pairs within that); the report
states the wall time it took.

``real-pose``: the ``cpu`` preset's budget (batch 8, 12 epochs, 128x96 /
192x128, 2 runs in parallel, seeds 0-2) on people drawn at real poses:
each seed's set is a seeded split of the images of COCO val2017's person
keypoint labels (benchmarks/coco_poses, shipped) into 200 train and 250
val images, re-drawn with mmpose_afl/datasets/real_pose.py (every
keypoint, box, visibility flag and area the file's; WholeBody's feet,
face and hands synthetic, attached to the real body). Why: the random
skeletons carry no human structure, and MSE at this budget confuses
their legs (above), which made most of the WholeBody verdicts. There
are no difficulty flags; the strata are the annotations' own (occluded
and labelled keypoint counts, area), as on real COCO. Every method and
peer (``REAL_POSE_METHODS``); the runs go in ``REAL_POSE_ORDER`` (MSE,
FoWKAL, KAL and AFL first, both data sets), so that a run stopped part
way has the main rows; ``--report-only`` writes the report from the
runs finished so far, listing those missing. Each run also dumps its
val predictions to ``<work dir>/val_preds.pkl``, for
benchmarks/left_right.py (left/right confusion of knees and ankles).

``--dry-run`` keeps a preset's input size, batch layout and evaluation but
shrinks it to 4 train / 2 val images, 1 epoch of batch 2 and seeds 0 and
1, to check the whole chain in about a minute (``--device cpu`` runs it
without a GPU; tests/test_tools/test_bench_accuracy.py runs it).

Writes ``--out`` (default benchmarks/results_accuracy.md for ``cpu``,
results_accuracy_gpu.md for ``gpu``, <out-dir>/results_dry_run.md for a
dry run): the date, machine, budget and minutes per run, the table of mean
± sd, the paired-difference tables and the verdict rule; and two figures
next to it: ``.png`` (means ± sd) and ``_paired.png`` (per-seed paired
differences to MSE and their mean ± sd). Each run's work dir is
``<out-dir>/<dataset>/<method>/seed<seed>``.
"""
import argparse
import shlex
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Dict, Optional, Tuple

from mmpose_afl.benchmark import paired
from mmpose_afl.benchmark.accuracy_configs import (check_input_size, data_root,
                                                   data_sizes, finished,
                                                   run_config, run_dir, slug)
from mmpose_afl.benchmark.accuracy_methods import (COCO, DRY_RUN, METHODS,
                                                   PRESETS, REFERENCE, REPO,
                                                   WHOLEBODY)
from mmpose_afl.benchmark.accuracy_report import (Results, paired_groups,
                                                  paired_panels, plot_means,
                                                  report)
from mmpose_afl.benchmark.machine import machine
from mmpose_afl.utils.mim_run import CommandError, run_mim


def train(dataset: str, method: str, seed: int, config: Path, out_dir: Path,
          settings: dict, resume: bool
          ) -> Tuple[Dict[str, float], Optional[Tuple[float, float]]]:
    """Metrics of one run, and its (wall, CPU) minutes (``None`` for a run
    reused with ``resume``). The CPU time (of ``mim train`` and the
    training process it starts) hardly depends on other load on the
    machine, so it is what to size the CPU budget by."""
    from mmpose_afl.zoo import read_measured
    work_dir = run_dir(out_dir, dataset, method, seed)
    if resume:
        metrics = finished(dataset, method, seed, out_dir)
        if metrics is not None:
            return metrics, None
    env = dict(OMP_NUM_THREADS=str(settings['threads']))
    if settings['device'] == 'cpu':
        env['CUDA_VISIBLE_DEVICES'] = ''
    try:
        result = run_mim('train', config, work_dir, cwd=REPO, env=env)
    except CommandError as error:
        raise RuntimeError(
            f'{dataset} / {method} / seed {seed} failed: {error}') from None
    wall = result.wall_s / 60
    cpu = (result.cpu_s or float('nan')) / 60
    print(
        f'bench_accuracy: {dataset} / {method} / seed {seed}: '
        f'{wall:.1f} min, {cpu:.1f} CPU min',
        flush=True)
    return read_measured(str(work_dir)).metrics, (wall, cpu)


def settings_of(args) -> dict:
    """The preset, shrunk by ``--dry-run``, then the explicit options."""
    settings = dict(PRESETS[args.preset])
    if args.dry_run:
        settings.update(DRY_RUN)
    for key in ('epochs', 'seeds', 'jobs', 'device'):
        if getattr(args, key) is not None:
            settings[key] = getattr(args, key)
    for input_size in settings['input_size'].values():
        check_input_size(input_size)
    return settings


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        epilog='Presets: ' +
        ', '.join(f'{name} {value}' for name, value in PRESETS.items()) + '.')
    parser.add_argument(
        '--preset',
        choices=list(PRESETS),
        default='cpu',
        help='data, input size, batch, epochs, seeds and '
        'parallel runs (see the epilog; default: '
        '%(default)s)')
    parser.add_argument(
        '--dry-run',
        action='store_true',
        help='the preset shrunk to 4 train / 2 val images, '
        '1 epoch of batch 2, seeds 0 and 1: checks the '
        'whole chain in a minute')
    parser.add_argument(
        '--epochs',
        type=int,
        help='training epochs of every run (default: the '
        "preset's)")
    parser.add_argument(
        '--seeds',
        type=int,
        nargs='+',
        help='random seeds, one run each per method and '
        "dataset (default: the preset's)")
    parser.add_argument(
        '--methods',
        nargs='+',
        choices=list(METHODS),
        metavar='METHOD',
        help=f'methods to train, each on the datasets it '
        f'has a config for (of {list(METHODS)}; default: '
        "the preset's, see PRESETS); MSE is the reference "
        'of the paired comparison')
    parser.add_argument(
        '--datasets',
        nargs='+',
        default=[COCO, WHOLEBODY],
        choices=[COCO, WHOLEBODY],
        help='synthetic sets to train on (default: both)')
    parser.add_argument(
        '--jobs', type=int, help="runs in parallel (default: the preset's)")
    parser.add_argument(
        '--device',
        choices=['cpu', 'cuda'],
        help="where the runs train (default: the preset's: "
        'cpu for cpu, cuda for gpu)')
    parser.add_argument(
        '--resume',
        action='store_true',
        help='reuse runs whose work dir holds an evaluation')
    parser.add_argument(
        '--report-only',
        action='store_true',
        help='train nothing: write the report from the runs '
        'whose work dir holds an evaluation (e.g. of a run '
        'still going), listing the missing ones')
    parser.add_argument(
        '--out-dir',
        type=Path,
        help='work dirs of the runs, their configs and '
        'generated data (default: work_dirs/bench_accuracy, '
        'work_dirs/bench_accuracy_gpu, with _dry_run added '
        'for a dry run)')
    parser.add_argument(
        '--out',
        type=Path,
        help='report to write; the figures go next to it '
        '(default: benchmarks/results_accuracy.md, '
        'results_accuracy_gpu.md for the gpu preset, '
        '<out-dir>/results_dry_run.md for a dry run)')
    args = parser.parse_args(argv)
    settings = settings_of(args)
    suffix = ('' if args.preset == 'cpu' else
              f'_{args.preset}') + ('_dry_run' if args.dry_run else '')
    out_dir = args.out_dir or REPO / 'work_dirs' / f'bench_accuracy{suffix}'
    out = args.out or (out_dir / 'results_dry_run.md' if args.dry_run else
                       REPO / 'benchmarks' / f'results_accuracy{suffix}.md')
    import torch
    if settings['device'] == 'cuda' and not torch.cuda.is_available():
        print(
            'bench_accuracy: no GPU here; run the chain on the CPU with '
            '--device cpu (and --dry-run for a quick check)',
            file=sys.stderr)
        return 2
    # each set generated once, in parallel (6 sets of the gpu preset)
    data_seed = {
        s: s if settings['data_per_seed'] else 0
        for s in settings['seeds']
    }
    sets = sorted({(d, data_seed[s])
                   for d in args.datasets
                   for s in settings['seeds']})
    with ProcessPoolExecutor(settings['jobs']) as pool:
        made = dict(
            zip(
                sets,
                pool.map(
                    data_root,
                    *zip(*[(d, settings['num_train'], settings['num_val'],
                            out_dir, seed, settings['unusual_pose'],
                            settings.get('poses')) for d, seed in sets]))))
    roots = {
        (d, s): made[d, data_seed[s]]
        for d in args.datasets
        for s in settings['seeds']
    }
    methods = {
        d: [m for m in args.methods
            if d in METHODS[m]] if args.methods else settings['methods'][d]
        for d in args.datasets
    }
    runs = [(d, m, s) for d in args.datasets for m in methods[d]
            for s in settings['seeds']]
    if settings.get('order'):  # the main rows first, across data sets
        runs.sort(key=lambda r: (settings['order'].index(r[1]), r[2],
                                 args.datasets.index(r[0])))
    start = time.time()
    missing = []
    if args.report_only:
        done = [(finished(*run, out_dir), None) for run in runs]
        missing = [run for run, (m, _) in zip(runs, done) if m is None]
        runs = [run for run, (m, _) in zip(runs, done) if m is not None]
        done = [d for d in done if d[0] is not None]
    else:
        configs = [
            run_config(d, m, s, settings, roots[d, s], out_dir)
            for d, m, s in runs
        ]
        with ThreadPoolExecutor(settings['jobs']) as pool:
            done = list(
                pool.map(
                    lambda run: train(*run[0], run[1], out_dir, settings, args.
                                      resume), zip(runs, configs)))
    hours = (time.time() - start) / 3600

    results: Results = {}
    for (dataset, method, seed), (metrics, _) in zip(runs, done):
        results.setdefault(dataset, {}).setdefault(method, {})[seed] = metrics
    timed = [t for _, t in done if t is not None]
    wall, cpu = ([statistics.mean(t[i] for t in timed)
                  for i in (0, 1)] if timed else (0., 0.))
    device = ('' if settings['device'] == 'cpu' else
              f' on {torch.cuda.get_device_name(0)}')
    timing = machine() + [
        f'- {settings["jobs"]} runs in parallel{device}, '
        f'{settings["threads"]} thread(s) and {settings["workers"]} loader '
        f'worker(s) each; per run {wall:.1f} min ({cpu:.1f} CPU min) on '
        f'average over the {len(timed)} runs made; {hours:.2f} h '
        f'({hours * 60:.1f} min) in all', ''
    ] if not args.report_only else [
        f'- Report of the {len(runs)} runs finished under the output '
        'directory (`--report-only`; each run\'s time is in the log of '
        'the command that ran it). Not yet run: ' +
        (', '.join(f'{d} / {m} / seed {s}'
                   for d, m, s in missing) or 'none') + '.', ''
    ]
    if not results:
        print(
            'bench_accuracy: no finished run under ' + str(out_dir),
            file=sys.stderr)
        return 1
    # copyable; a report of finished runs records the command that ran them
    command = shlex.join(
        a for a in (sys.argv[1:] if argv is None else argv)
        if a != '--report-only')
    first = settings['seeds'][0]
    lines = report(results,
                   {d: data_sizes(d, roots[d, first])
                    for d in results}, settings, command, args.preset, timing)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text('\n'.join(lines))
    plot_means(results, out.with_suffix('.png'))
    # one figure per reference: <out>_paired.png for MSE, else
    # <out>_paired_<reference>.png
    figures = []
    for reference in dict.fromkeys(r for d in results
                                   for r, _ in paired_groups(results[d])):
        figure = out.with_name(out.stem + '_paired' + (
            '' if reference == REFERENCE else f'_{slug(reference)}') + '.png')
        paired.plot([(title, runs, rows) for d in results
                     for r, runs in paired_groups(results[d]) if r == reference
                     for title, rows in paired_panels(d)], reference, figure)
        figures.append(str(figure))
    print('\n'.join(lines))
    print(f'bench_accuracy: wrote {out}, {out.with_suffix(".png")}' +
          (f' and {", ".join(figures)}' if figures else ''))
    return 0


if __name__ == '__main__':
    sys.exit(main())
