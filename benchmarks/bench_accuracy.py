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
bench-accuracy-gpu`` the ``gpu`` one (``PRESETS``). Every run is a real
``mim train`` of the method's synthetic demo config (ResNet-18 from random
weights, Adam 1e-3) with the preset's data, input size, batch and
``--epochs`` epochs (the learning rate drops x0.1 at about 3/4 and 9/10 of
them), ``randomness.seed`` = the seed, and one validation on the val set at
the end with the stratified metric (``StratifiedCocoMetric``; for
WholeBody ``StratifiedCocoWholeBodyMetric``): the configs' COCO AP/AR (per
part for WholeBody) plus AP/AR per stratum (difficulty flags, occlusion,
labelled keypoints, area; mmpose_afl/evaluation/metrics/
stratified_metric.py). The metrics are read from the run's log with
``mmpose_afl.zoo.read_measured``. In the ``cpu`` and ``gpu`` presets each
seed has its own synthetic set, drawn with the seed as the generator's
seed (``<out-dir>/data``): with one set for all seeds the sd measured
training noise only, and the verdicts moved with the draw of a 50-image
val set (benchmarks/calibration_notes.md, "unusual pose"); now the sd
covers the data draw too, and the val set is 250 images. These sets pose
the generator's unusual-pose people mildly (``unusual_pose='mild'``: tilt
within +-90 degrees, joint angles 45 degrees beyond the usual ranges);
drawn from the full circle, as in ``make data``'s sets, no method scores
above AP 0 on them at this budget. Each run trains
a config written to ``<out-dir>/configs`` (the method's config with all of
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
initialisation) and tested in tests/test_bench_accuracy.py. Loader workers
(the gpu preset) are seeded from the seed by MMEngine. Each method is then
compared with the MSE run of its own seed (benchmarks/paired.py: per-seed
differences, mean ± sd, and the verdict better / not distinguishable /
worse of a two-sided paired t-test at 5 %; the rule is written in the
report), except AFL on another head, which is compared with that head's
plain run (``REFERENCES``: AFL (RTMPose-t) with RTMPose-t, AFL (RLE) with
RLE; one paired section and figure per reference). The same-initialisation
check above covers the heatmap methods; RTMPose-t and RLE have their own
networks.

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
without a GPU; tests/test_bench_accuracy.py runs it).

Writes ``--out`` (default benchmarks/results_accuracy.md for ``cpu``,
results_accuracy_gpu.md for ``gpu``, <out-dir>/results_dry_run.md for a
dry run): the date, machine, budget and minutes per run, the table of mean
± sd, the paired-difference tables and the verdict rule; and two figures
next to it: ``.png`` (means ± sd) and ``_paired.png`` (per-seed paired
differences to MSE and their mean ± sd). Each run's work dir is
``<out-dir>/<dataset>/<method>/seed<seed>``.
"""
import argparse
import json
import os
import re
import shlex
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parent))

import paired  # noqa: E402
from bench_speed import machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
COCO, WHOLEBODY = 'coco', 'wholebody'
FOWKAL = ('configs/fowkal/'
          'td-hm_res18_fowkal-1xb16-20e_synthetic-coco-wholebody-128x96.py')
BASELINE_WB = ('configs/baseline/'
               'td-hm_res18_1xb16-20e_synthetic-coco-wholebody-128x96.py')
AFL_COCO = 'configs/afl/td-hm_res18_afl-1xb16-20e_synthetic-coco-128x96.py'
AFL_WHOLEBODY = (
    'configs/afl/'
    'td-hm_res18_afl-1xb16-20e_synthetic-coco-wholebody-128x96.py')
# every training sample tracked, so that tools/afl_difficulty_report.py can
# say what the difficulty follows over the whole training set
AFL_TRACK_ALL = ['custom_hooks.1.num_tracked=100000']
AFL_PAPER = AFL_TRACK_ALL + [
    'model.head.loss.difficulty=paper', 'model.head.loss.drift_weight=0.',
    'model.head.loss.normalize_weights=False'
]
# AFL on a SimCC and a regression head, each paired with its own plain run
# (REFERENCES; docs/afl.md, "AFL on any head")
RTMPOSE_T = 'configs/baseline/rtmpose-t_1xb16-20e_synthetic-coco-128x96.py'
RLE = 'configs/baseline/td-reg_res18_rle-1xb16-20e_synthetic-coco-128x96.py'
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
    # absolute score, unnormalised weights): the collapse in docs/afl.md
    'AFL (MSE, paper)': {
        COCO: (AFL_COCO, AFL_PAPER),
        WHOLEBODY: (AFL_WHOLEBODY, AFL_PAPER),
    },
    # stock MMPose online hard keypoint mining (its default topk=8): the
    # hard-example peer a user already has (docs/hard_examples.md)
    'OHKM': {
        COCO: ('configs/ohkm/'
               'td-hm_res18_ohkm-1xb16-20e_synthetic-coco-128x96.py', []),
        WHOLEBODY: ('configs/ohkm/td-hm_res18_ohkm-1xb16-20e_'
                    'synthetic-coco-wholebody-128x96.py', []),
    },
    # AFL whose critic also sees the sample's own ground truth (every
    # training sample tracked, for the difficulty report's oracle rows)
    'AFL-cond': {
        COCO: ('configs/afl_cond/td-hm_res18_afl-cond-1xb16-20e_'
               'synthetic-coco-128x96.py', AFL_TRACK_ALL),
        WHOLEBODY: ('configs/afl_cond/td-hm_res18_afl-cond-1xb16-20e_'
                    'synthetic-coco-wholebody-128x96.py', AFL_TRACK_ALL),
    },
    # each sample weighted by its own detached MSE (gamma 1), normalised as
    # AFL's weights: AFL with the critic replaced by the loss itself
    'LossProp': {
        COCO: ('configs/loss_weighted/td-hm_res18_loss-weighted-1xb16-20e_'
               'synthetic-coco-128x96.py', []),
        WHOLEBODY: ('configs/loss_weighted/td-hm_res18_loss-weighted-1xb16-'
                    '20e_synthetic-coco-wholebody-128x96.py', []),
    },
    'RTMPose-t': {
        COCO: (RTMPOSE_T, []),
    },
    'AFL (RTMPose-t)': {
        COCO: ('configs/afl/rtmpose-t_afl-1xb16-20e_synthetic-coco-128x96.py',
               AFL_TRACK_ALL),
    },
    'RLE': {
        COCO: (RLE, []),
    },
    'AFL (RLE)': {
        COCO: ('configs/afl/'
               'td-reg_res18_rle-afl-1xb16-20e_synthetic-coco-128x96.py',
               AFL_TRACK_ALL),
    },
    'heuristic': {
        WHOLEBODY: (FOWKAL, [
            'model.head.loss.kaf=heuristic', 'model.head.loss.weighting=None',
            'model.head.loss.normalize=False'
        ]),
    },
    'KAL': {
        WHOLEBODY: (FOWKAL, ['model.head.loss.weighting=None']),
    },
    'FoWKAL': {
        WHOLEBODY: (FOWKAL, []),
    },
    'SAHR + WAHR': {
        COCO: ('configs/sahr/'
               'td-hm_res18_sahr-wahr-1xb16-20e_synthetic-coco-128x96.py', []),
        WHOLEBODY:
        (BASELINE_WB,
         ['model.head.type=SAHRHead', 'model.head.loss.type=WAHRLoss']),
    },
    'HSM': {
        COCO: ('configs/hsm/'
               'td-hm_res18_hsm-1xb16-20e_synthetic-coco-128x96.py', []),
        WHOLEBODY: (BASELINE_WB, [
            'model.head.type=SigmoidHeatmapHead',
            'model.head.loss.type=HSMLoss'
        ]),
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
PREFIX = {COCO: 'coco/', WHOLEBODY: 'coco-wholebody/'}
EVALUATOR = {
    COCO: 'StratifiedCocoMetric',
    WHOLEBODY: 'StratifiedCocoWholeBodyMetric'
}
# strata of the paired tables, in this order (stratified_metric.py); those
# without people in the val set are left out of the tables
STRATA = ('clean', 'any_flag', 'occluded', 'truncated', 'unusual_pose',
          'small', 'occl_none', 'occl_some', 'occl_heavy', 'kpts_few',
          'kpts_mid', 'kpts_many', 'area_S', 'area_M', 'area_L')
# WholeBody parts of the paired tables: (label, metric key prefix)
PARTS = (('whole', ''), ('body', 'body_'), ('foot', 'foot_'),
         ('face', 'face_'), ('hand', 'hand_'))
REFERENCE = 'MSE'
# the reference of a method's paired comparison, where it is not REFERENCE:
# AFL on another head is compared with that head's plain run
REFERENCES = {'AFL (RTMPose-t)': 'RTMPose-t', 'AFL (RLE)': 'RLE'}
# where the configs read the data, as `make data` writes it (200 / 50
# images, seed 0)
DATA = {
    COCO: ('data/synthetic_coco', 'person_keypoints_{}2017.json'),
    WHOLEBODY:
    ('data/synthetic_coco_wholebody', 'coco_wholebody_{}_v1.0.json'),
}
MAKE_DATA_SIZES = (200, 50)
# the methods a preset trains by default, per dataset (``--methods``
# overrides). The cpu preset keeps each paper's own setting inside its 2-hour
# budget: AFL and HSM (and AFL around HSM), SAHR + WAHR on COCO; the FoWKAL
# ablation (heuristic, KAL, FoWKAL) and AFL (plain and around FoWKAL) on
# WholeBody. Left out there, still runnable with ``--methods``: AFL (MSE,
# paper), whose collapse benchmarks/results_afl*.md measure, and SAHR / HSM /
# AFL (HSM) on WholeBody (each 19 CPU minutes for 3 seeds).
CPU_METHODS = {
    COCO: ['MSE', 'AFL (MSE)', 'SAHR + WAHR', 'HSM', 'AFL (HSM)'],
    WHOLEBODY:
    ['MSE', 'AFL (MSE)', 'heuristic', 'KAL', 'FoWKAL', 'AFL (FoWKAL)'],
}
ALL_METHODS = {
    d: [m for m in METHODS if d in METHODS[m]]
    for d in (COCO, WHOLEBODY)
}
# the real-pose preset: every method and peer of the results table, run in
# this order across both data sets (the main rows first)
REAL_POSE_ORDER = [
    'MSE', 'FoWKAL', 'KAL', 'AFL (MSE)', 'heuristic', 'SAHR + WAHR', 'HSM',
    'OHKM', 'LossProp', 'AFL-cond', 'RTMPose-t', 'AFL (RTMPose-t)', 'RLE',
    'AFL (RLE)'
]
REAL_POSE_METHODS = {
    d: [m for m in REAL_POSE_ORDER if d in METHODS[m]]
    for d in (COCO, WHOLEBODY)
}
# each run's val predictions, where a preset has dump_preds (the left/right
# confusion of every run: benchmarks/left_right.py <work dir>/val_preds.pkl)
PREDS = 'val_preds.pkl'
# COCO val2017's person keypoint labels (CC BY 4.0; benchmarks/coco_poses)
COCO_POSES = (
    REPO / 'benchmarks' / 'coco_poses' /
    'person_keypoints_val2017_labels_only.json')
# data_per_seed: each seed trains and validates on its own synthetic set
# (generator seed = the seed), else all on seed 0's. unusual_pose: the
# generator's option for those sets ('mild': the unusual-pose stratum is
# learnable, see its docstring; demo-full keeps make data's 'any_angle').
# input_size: (w, h) of the network input per dataset, None: the configs'
# 128x96; heatmaps are a quarter of it, as in the configs. The cpu preset is
# the calibration of benchmarks/calibration_notes.md: batch 8 and 12 epochs
# (twice the updates of batch 16 for ~10 % more CPU), and 192x128 for
# WholeBody, where face and hand keypoints a few pixels apart need it.
PRESETS = {
    'cpu':
    dict(
        num_train=200,
        num_val=250,
        data_per_seed=True,
        unusual_pose='mild',
        input_size={
            COCO: None,
            WHOLEBODY: (128, 192)
        },
        batch_size=8,
        epochs=12,
        seeds=[0, 1, 2],
        jobs=2,
        workers=0,
        threads=1,
        device='cpu',
        methods=CPU_METHODS),
    'gpu':
    dict(
        num_train=256,
        num_val=250,
        data_per_seed=True,
        unusual_pose='mild',
        input_size={
            COCO: (192, 256),
            WHOLEBODY: (192, 256)
        },
        batch_size=32,
        epochs=8,
        seeds=[0, 1, 2],
        jobs=8,
        workers=2,
        threads=2,
        device='cuda',
        methods=ALL_METHODS),
    'demo-full':
    dict(
        num_train=200,
        num_val=50,
        data_per_seed=False,
        unusual_pose='any_angle',
        input_size={
            COCO: None,
            WHOLEBODY: None
        },
        batch_size=16,
        epochs=20,
        seeds=[0, 1, 2],
        jobs=2,
        workers=0,
        threads=1,
        device='cpu',
        methods=ALL_METHODS),
    'real-pose':
    dict(
        num_train=200,
        num_val=250,
        data_per_seed=True,
        unusual_pose='any_angle',
        poses=COCO_POSES,
        input_size={
            COCO: None,
            WHOLEBODY: (128, 192)
        },
        batch_size=8,
        epochs=12,
        seeds=[0, 1, 2],
        jobs=2,
        workers=0,
        threads=1,
        device='cpu',
        methods=REAL_POSE_METHODS,
        order=REAL_POSE_ORDER,
        dump_preds=True),
}
DRY_RUN = dict(
    num_train=4, num_val=2, batch_size=2, epochs=1, seeds=[0, 1], workers=0)


def slug(method: str) -> str:
    return re.sub(r'\W+', '_', method)


def data_root(dataset: str,
              num_train: int,
              num_val: int,
              out_dir: Path,
              data_seed: int = 0,
              unusual_pose: str = 'any_angle',
              poses: Optional[Path] = None) -> Path:
    """Root of the synthetic set with these sizes drawn with generator seed
    ``data_seed`` and the generator's ``unusual_pose`` option: ``make
    data``'s for its sizes, seed 0 and ``'any_angle'``, else
    ``<out_dir>/data/<dataset>_<train>_<val>_seed<data_seed>`` (with
    ``_<unusual_pose>`` appended unless ``'any_angle'``); with ``poses`` (a
    COCO keypoint file) the people at its poses, under that name with
    ``_real_pose`` appended; generated when missing."""
    if poses is not None:
        from mmpose_afl.datasets.real_pose import generate_from_poses
        root = (
            out_dir / 'data' /
            f'{dataset}_{num_train}_{num_val}_seed{data_seed}_real_pose')
        if not (root / 'annotations' / DATA[dataset][1].format('val')
                ).is_file():  # (val is written last)
            generate_from_poses(root, poses, dataset, num_train, num_val,
                                data_seed)
        return root
    if (num_train, num_val, data_seed, unusual_pose) == (*MAKE_DATA_SIZES, 0,
                                                         'any_angle'):
        root = REPO / DATA[dataset][0]
    else:
        poses = '' if unusual_pose == 'any_angle' else f'_{unusual_pose}'
        root = (
            out_dir / 'data' /
            f'{dataset}_{num_train}_{num_val}_seed{data_seed}{poses}')
    if not (root / 'annotations').is_dir():
        from mmpose_afl.datasets.synthetic import generate_dataset
        generate_dataset(
            root,
            dataset,
            num_train,
            num_val,
            data_seed,
            unusual_pose=unusual_pose)
    return root


def data_sizes(dataset: str, root: Path) -> Tuple[int, int]:
    """(train, val) images of the set under ``root``."""
    return tuple(
        len(
            json.loads((root / 'annotations' /
                        DATA[dataset][1].format(split)).read_text())['images'])
        for split in ('train', 'val'))


def budget_options(epochs: int,
                   seed: int,
                   batch_size: int = 16,
                   workers: int = 0) -> List[str]:
    """The common budget: ``epochs`` epochs, lr x0.1 at ~75 % and ~90 %,
    one validation at the end, the seed, no checkpoints, the batch and
    ``workers`` loader workers per run (0: each run keeps to its core)."""
    milestones = sorted(
        {max(1, round(epochs * 0.75)),
         max(1, round(epochs * 0.9))})
    options = [
        f'train_cfg.max_epochs={epochs}',
        f'train_cfg.val_interval={epochs}',
        f'param_scheduler.1.end={epochs}',
        'param_scheduler.1.milestones=[{}]'.format(','.join(
            map(str, milestones))),
        f'randomness.seed={seed}',
        'default_hooks.checkpoint.interval=-1',
        'default_hooks.checkpoint.save_last=False',
        'default_hooks.checkpoint.save_best=None',
        f'train_dataloader.batch_size={batch_size}',
    ]
    for loader in ('train', 'val', 'test'):
        options += [
            f'{loader}_dataloader.num_workers={workers}',
            f'{loader}_dataloader.persistent_workers={workers > 0}'
        ]
    return options


def check_input_size(input_size: Optional[Sequence[int]]) -> None:
    """ResNet's stride-32 features and the head's three x2 deconvolutions
    give heatmaps of a quarter of the input only when both sides are
    multiples of 32 (192x144 trains until the loss, then fails on a heatmap
    4 px wider than the codec's): a ValueError names ``input_size``."""
    if input_size is not None and (len(input_size) != 2 or any(
            int(v) != v or v <= 0 or v % 32 for v in input_size)):
        raise ValueError(f'input_size must be (width, height), both positive '
                         f'multiples of 32, got {input_size}')


def _resize(node, input_size: Tuple[int, int]) -> None:
    """Set every ``input_size`` in a config to ``input_size`` and every
    ``heatmap_size`` to a quarter of it (codec, head decoder, pipelines).
    A SimCC codec's ``sigma`` is in input pixels, so it scales with the
    input (the stock 256x192 sigma at half the input is halved); a heatmap
    sigma is in heatmap pixels and stays, as in MMPose's configs."""
    check_input_size(input_size)
    if (isinstance(node, dict) and node.get('type') == 'SimCCLabel'
            and 'input_size' in node):
        node['sigma'] = tuple(sigma * new / old for sigma, new, old in zip(
            node['sigma'], input_size, node['input_size']))
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in list(items):
        if key == 'input_size':
            node[key] = tuple(input_size)
        elif key == 'in_featuremap_size':  # RTMCCHead: stride-32 features
            node[key] = (input_size[0] // 32, input_size[1] // 32)
        elif key == 'heatmap_size':
            node[key] = (input_size[0] // 4, input_size[1] // 4)
        elif isinstance(value, (dict, list)):
            _resize(value, input_size)


def reference_of(method: str) -> str:
    """The method whose run of the same seed ``method`` is paired with."""
    return REFERENCES.get(method, REFERENCE)


def paired_groups(runs: Dict[str, dict]) -> List[Tuple[str, Dict[str, dict]]]:
    """(reference, runs of the reference and of the methods paired with
    it) for each reference in ``runs`` with at least one such method, in
    the order of ``runs``."""
    groups = []
    for reference in runs:
        members = [
            m for m in runs if m != reference and reference_of(m) == reference
        ]
        if members:
            groups.append((reference, {
                m: runs[m]
                for m in [reference] + members
            }))
    return groups


def run_config(dataset: str, method: str, seed: int, settings: dict,
               root: Path, out_dir: Path) -> Path:
    """Write the config one run trains: the method's config with the
    budget, the data under ``root``, the stratified metric,
    ``ReseedBeforeInitHook`` and the preset's input size merged in."""
    from mmengine.config import Config, DictAction
    config, options = METHODS[method][dataset]
    cfg = Config.fromfile(str(REPO / config))
    parser = argparse.ArgumentParser()
    parser.add_argument('--options', nargs='+', action=DictAction)
    cfg.merge_from_dict(
        parser.parse_args([
            '--options',
            *budget_options(settings['epochs'], seed, settings['batch_size'],
                            settings['workers']), *options
        ]).options)
    ann_file = f'{root}/annotations/{DATA[dataset][1].format("val")}'
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = f'{root}/'
    for evaluator in ('val_evaluator', 'test_evaluator'):
        cfg[evaluator] = dict(
            cfg[evaluator], type=EVALUATOR[dataset], ann_file=ann_file)
    if settings.get('dump_preds'):  # for benchmarks/left_right.py
        work_dir = out_dir / dataset / slug(method) / f'seed{seed}'
        cfg.val_evaluator = [
            cfg.val_evaluator,
            dict(type='DumpResults', out_file_path=str(work_dir / PREDS))
        ]
    imports = list(cfg.get('custom_imports', {}).get('imports', []))
    cfg.custom_imports = dict(
        imports=imports + ['mmpose_afl.engine.hooks.reseed_hook'],
        allow_failed_imports=False)
    cfg.custom_hooks = list(cfg.get('custom_hooks',
                                    [])) + [dict(type='ReseedBeforeInitHook')]
    if settings['input_size'][dataset]:
        _resize(cfg._cfg_dict, settings['input_size'][dataset])
    path = (
        out_dir / 'configs' / dataset / slug(method) / f'seed{seed}' /
        Path(config).name)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg.dump(str(path))
    return path


def finished(dataset: str, method: str, seed: int,
             out_dir: Path) -> Optional[Dict[str, float]]:
    """Metrics of a run whose work dir holds its evaluation, else None."""
    from mmpose_afl.zoo import ZooError, read_measured
    try:
        return read_measured(
            str(out_dir / dataset / slug(method) / f'seed{seed}')).metrics
    except ZooError:
        return None


def train(dataset: str, method: str, seed: int, config: Path, out_dir: Path,
          settings: dict, resume: bool
          ) -> Tuple[Dict[str, float], Optional[Tuple[float, float]]]:
    """Metrics of one run, and its (wall, CPU) minutes (``None`` for a run
    reused with ``resume``). The CPU time (of ``mim train`` and the
    training process it starts) hardly depends on other load on the
    machine, so it is what to size the CPU budget by."""
    from mmpose_afl.zoo import read_measured
    work_dir = out_dir / dataset / slug(method) / f'seed{seed}'
    if resume:
        metrics = finished(dataset, method, seed, out_dir)
        if metrics is not None:
            return metrics, None
    work_dir.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(BIN / 'mim'), 'train', 'mmpose',
        str(config), '--work-dir',
        str(work_dir)
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(settings['threads']))
    if settings['device'] == 'cpu':
        env['CUDA_VISIBLE_DEVICES'] = ''
    start = time.time()
    log = work_dir / 'console_train.log'
    with open(log, 'w') as f:
        proc = subprocess.Popen(
            cmd, cwd=REPO, stdout=f, stderr=subprocess.STDOUT, env=env)
        # wait4: the rusage of mim and of the processes it waited for
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = (time.time() - start) / 60
    cpu = (usage.ru_utime + usage.ru_stime) / 60
    if proc.returncode:
        raise RuntimeError(f'{dataset} / {method} / seed {seed} failed; see '
                           f'{log}:\n{log.read_text()[-3000:]}')
    print(
        f'bench_accuracy: {dataset} / {method} / seed {seed}: '
        f'{wall:.1f} min, {cpu:.1f} CPU min',
        flush=True)
    return read_measured(str(work_dir)).metrics, (wall, cpu)


Results = Dict[str, Dict[str, Dict[int, Dict[str, float]]]]


def table(results: Results, dataset: str) -> List[str]:
    """Markdown: mean ± sd over the seeds of each method and column."""
    columns = COLUMNS[dataset]
    lines = [
        '| method | ' + ' | '.join(c for c, _ in columns) + ' |',
        '|---|' + '---:|' * len(columns)
    ]
    for method, runs in results[dataset].items():
        cells = [
            paired.mean_sd([m[key] for m in runs.values()])
            for _, key in columns
        ]
        lines.append(f'| {method} | ' + ' | '.join(cells) + ' |')
    return lines


def paired_panels(dataset: str) -> List[Tuple[str, List[Tuple[str, str]]]]:
    """(title, [(label, metric key)]) of the paired tables and figure
    panels: COCO AP overall and per stratum; for WholeBody the same per
    part (whole, body, foot, face, hand)."""
    prefix = PREFIX[dataset]
    parts = [('', '')] if dataset == COCO else PARTS
    return [(f'synthetic {dataset}' + (f', {label}' if label else ''),
             [(f'{label} AP'.strip(), f'{prefix}{pre}AP')] +
             [(f'{label} AP {s}'.strip(), f'{prefix}{pre}AP_{s}')
              for s in STRATA]) for label, pre in parts]


def plot_means(results: Results, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    datasets = list(results)
    fig, axes = plt.subplots(
        len(datasets), 1, squeeze=False, figsize=(10, 3.8 * len(datasets)))
    for ax, dataset in zip(axes[:, 0], datasets):
        columns = COLUMNS[dataset]
        methods = list(results[dataset])
        width = 0.8 / len(methods)
        x = np.arange(len(columns))
        for i, method in enumerate(methods):
            values = np.array([[m[key] for _, key in columns]
                               for m in results[dataset][method].values()])
            sd = values.std(0, ddof=1) if len(values) > 1 else None
            ax.bar(
                x + (i - (len(methods) - 1) / 2) * width,
                values.mean(0),
                width,
                yerr=sd,
                capsize=2,
                label=method)
        ax.set_xticks(x, [c for c, _ in columns])
        ax.set_title(f'synthetic {dataset}: mean ± sd over seeds')
        ax.legend(fontsize=7, ncol=min(5, len(methods)))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(results: Results, sizes: Dict[str, Tuple[int, int]], settings: dict,
           command: str, preset: str, timing: List[str]) -> List[str]:
    """The markdown report."""
    sizes_text = ', '.join(
        f'{dataset} {h}x{w}' for dataset in results
        for w, h in [settings['input_size'][dataset] or (96, 128)])
    nets = ' (RTMPose-t: its CSPNeXt-t)' if any('RTMPose' in m for d in results
                                                for m in results[d]) else ''
    lines = [
        '# Accuracy on the synthetic data', '',
        f'Written by `python benchmarks/bench_accuracy.py {command}` (preset '
        f'{preset}); the protocol is in the script\'s docstring. Every '
        f'method: ResNet-18{nets} from random weights (input {sizes_text}), '
        f'batch {settings["batch_size"]}, {settings["epochs"]} epochs, seeds '
        f'{settings["seeds"]}; mean ± sd (n - 1) over the seeds of the '
        'validation at the end. ' +
        ('Each seed trains and validates on its own synthetic set, drawn '
         'with the seed as generator seed (the same for every method), '
         'so the sd covers the draw of the data as well as training.'
         if settings['data_per_seed'] else
         'Every seed trains and validates on the same synthetic set '
         '(generator seed 0).') +
        (f' The people are drawn at the poses of '
         f'`{Path(settings["poses"]).name}` (a seeded split of its images '
         'per seed; every keypoint, box, visibility flag and area the '
         'file\'s; no difficulty flags, so the strata are the '
         'annotations\' own; mmpose_afl/datasets/real_pose.py).'
         if settings.get('poses') else ''), ''
    ] + timing
    for dataset in results:
        num_train, num_val = sizes[dataset]
        lines += [
            f'## synthetic {dataset} ({num_train} train / {num_val} '
            'val images)', ''
        ] + table(results, dataset) + ['']
        for reference, runs in paired_groups(results[dataset]):
            lines += [
                f'### Paired difference to {reference}', '',
                'Each cell: mean ± sd over the seeds of the method\'s '
                f'value minus {reference}\'s of the same seed, and the '
                'verdict: ▲ better, ▼ worse, = not distinguishable at '
                f'this budget. {paired.RULE} The {reference} column is '
                'its own mean ± sd. Strata: '
                'mmpose_afl/evaluation/metrics/stratified_metric.py.', ''
            ]
            for title, rows in paired_panels(dataset):
                lines += [f'#### {title}', ''] + paired.delta_table(
                    runs, rows, reference) + ['']
            lines += [f'### Per seed, to {reference}', ''] + \
                paired.seed_table(runs, COLUMNS[dataset], reference) + ['']
    return lines


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
