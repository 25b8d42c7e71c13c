"""What ``benchmarks/bench_accuracy.py`` trains: every method's config per
synthetic data set (:data:`METHODS`), the reported metrics
(:data:`COLUMNS`), the paired references and the presets
(:data:`PRESETS`). The protocol is in that script's docstring.

Paths are relative to the checkout the benchmark runs in (:data:`REPO`):
its configs, ``data/`` and ``benchmarks/coco_poses``.
"""
from pathlib import Path
from typing import Dict, List, Tuple

#: the checkout of an editable install, where the benchmark runs
REPO = Path(__file__).resolve().parents[2]
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
