"""benchmarks/bench_accuracy.py and its parts in mmpose_afl.benchmark: the
paired comparison and its verdict against hand-computed values, the same
initialisation and data for every method at one seed, and the gpu
preset's dry run on the CPU through the real command."""
import json
import math
import subprocess
import sys

import pytest

from mmpose_afl.benchmark import (accuracy_configs, accuracy_methods,
                                  accuracy_report, paired)
from mmpose_afl.evaluation.left_right import left_right
from tests.e2e import REPO


def test_paired_difference_and_verdict_by_hand():
    method = {0: 0.5, 1: 0.6, 2: 0.7}
    reference = {0: 0.4, 1: 0.4, 2: 0.5, 3: 0.9}  # seed 3: no pair
    result = paired.paired(method, reference)
    assert result['seeds'] == [0, 1, 2]
    assert result['diffs'] == pytest.approx([0.1, 0.2, 0.2])
    assert result['mean'] == pytest.approx(0.5 / 3)
    assert result['sd'] == pytest.approx(math.sqrt(1 / 300))
    # t = mean / (sd / sqrt 3) = 5 with 2 degrees of freedom, whose CDF is
    # 1/2 + t / (2 sqrt(2 + t^2)): p = 1 - 5 / sqrt(27)
    assert result['p'] == pytest.approx(1 - 5 / math.sqrt(27))
    assert result['verdict'] == 'better'
    assert result['no_collapse']
    # the mirror image is worse
    assert paired.paired(reference, method)['verdict'] == 'worse'
    assert paired.cell(result) == '+0.167 ± 0.058 ▲'


def test_paired_collapse_and_no_difference():
    # seed 1 falls more than MSE's sd (0.1) below MSE: a collapse
    result = paired.paired({0: 0.5, 1: 0.1, 2: 0.6}, {0: 0.4, 1: 0.5, 2: 0.6})
    assert not result['no_collapse']
    assert result['verdict'] == 'not distinguishable'  # p = 0.58
    assert paired.cell(result).endswith(' =')


def test_paired_edge_cases_never_give_nan():
    # -1 (empty stratum) leaves the seed out: seeds 0 and 2 remain
    result = paired.paired({0: 0.3, 1: -1., 2: 0.5}, {0: 0.2, 1: 0.4, 2: 0.4})
    assert result['seeds'] == [0, 2]
    assert result['diffs'] == pytest.approx([0.1, 0.1])
    # identical differences: the t-test's limit, p = 0 -> better
    assert result['p'] == 0. and result['verdict'] == 'better'
    same = paired.paired({0: 0.2, 1: 0.3}, {0: 0.2, 1: 0.3})
    assert same['p'] == 1. and same['verdict'] == 'not distinguishable'
    one = paired.paired({0: 0.9}, {0: 0.1})  # one seed: no test
    assert one['p'] is None and one['verdict'] == 'not distinguishable'
    empty = paired.paired({0: -1.}, {0: -1.})
    assert empty['mean'] is None and paired.cell(empty) == '-'


def test_tables_and_figure_from_hand_made_runs(tmp_path):
    runs = {
        'MSE': {
            0: {
                'coco/AP': 0.4,
                'coco/AP_small': 0.1,
                'coco/AP_x': -1.
            },
            1: {
                'coco/AP': 0.5,
                'coco/AP_small': 0.3,
                'coco/AP_x': -1.
            }
        },
        'A': {
            0: {
                'coco/AP': 0.5,
                'coco/AP_small': 0.1,
                'coco/AP_x': -1.
            },
            1: {
                'coco/AP': 0.6,
                'coco/AP_small': 0.4,
                'coco/AP_x': -1.
            }
        },
    }
    rows = [('AP', 'coco/AP'), ('AP small', 'coco/AP_small'),
            ('AP x', 'coco/AP_x')]
    lines = paired.delta_table(runs, rows, 'MSE')
    assert lines[0] == '| metric | MSE | Δ A |'
    # AP: differences 0.1, 0.1 (identical: better); small: 0, 0.1
    assert lines[2] == '| AP | 0.450 ± 0.071 | +0.100 ± 0.000 ▲ |'
    assert lines[3] == '| AP small | 0.200 ± 0.141 | +0.050 ± 0.071 = |'
    assert len(lines) == 4  # AP x: no ground truth, no row
    seeds = paired.seed_table(runs, rows[:1], 'MSE')
    assert seeds[2] == ('| A | AP | s0 +0.100, s1 +0.100 | +0.100 ± 0.000 '
                        '| 0.000 | better |')
    figure = tmp_path / 'paired.png'
    paired.plot([('synthetic coco', runs, rows)], 'MSE', figure)
    assert figure.stat().st_size > 10000


def test_paired_panels_cover_overall_strata_and_parts():
    coco, = accuracy_report.paired_panels('coco')
    assert coco[1][0] == ('AP', 'coco/AP')
    assert ('AP occluded', 'coco/AP_occluded') in coco[1]
    wholebody = accuracy_report.paired_panels('wholebody')
    assert [t for t, _ in wholebody] == [
        f'synthetic wholebody, {p}'
        for p in ('whole', 'body', 'foot', 'face', 'hand')
    ]
    assert ('face AP small', 'coco-wholebody/face_AP_small') in \
        wholebody[3][1]
    assert ('whole AP', 'coco-wholebody/AP') in wholebody[0][1]


def _start(config, hook: bool, data_root):
    """Weights after the runner's initialisation and the first two
    training batches of a bench config, as Runner.train reaches them
    (before_run hooks, then init_weights, then the loader)."""
    import torch
    from mmengine.config import Config
    from mmengine.runner import Runner
    cfg = Config.fromfile(str(config))
    if not hook:
        cfg.custom_hooks = [
            h for h in cfg.custom_hooks if h['type'] != 'ReseedBeforeInitHook'
        ]
    cfg.work_dir = str(data_root / 'work' / config.parent.name)
    runner = Runner.from_cfg(cfg)
    runner.call_hook('before_run')
    runner._init_model_weights()
    weights = {
        k: v.clone()
        for k, v in runner.model.state_dict().items()
        if k.startswith(('backbone', 'head'))
    }
    batches = iter(
        runner.build_dataloader(cfg.train_dataloader, seed=runner.seed))
    inputs = [torch.stack(next(batches)['inputs']) for _ in range(2)]
    return weights, inputs


def test_one_seed_starts_every_method_alike(synthetic_coco, tmp_path):
    import torch
    settings = dict(accuracy_methods.PRESETS['cpu'], batch_size=4)
    starts = {}
    for method in ('MSE', 'AFL (MSE)', 'HSM'):
        config = accuracy_configs.run_config('coco', method, 3, settings,
                                             synthetic_coco, tmp_path)
        starts[method] = _start(config, True, tmp_path)
    mse_weights, mse_inputs = starts['MSE']
    for method in ('AFL (MSE)', 'HSM'):
        weights, inputs = starts[method]
        shared = [
            k for k in mse_weights
            if k in weights and weights[k].shape == mse_weights[k].shape
        ]
        own = {'head.final_layer.weight', 'head.final_layer.bias'} \
            if method == 'HSM' else set()  # HSM's prior-bias last conv
        assert len(shared) > 100
        for key in shared:
            assert torch.equal(
                weights[key], mse_weights[key]) != (key
                                                    in own), f'{method}: {key}'
        for x, y in zip(inputs, mse_inputs):
            assert torch.equal(x, y), method
    # without the reseed, AFL's critic shifts the head's initialisation
    config = accuracy_configs.run_config('coco', 'AFL (MSE)', 3, settings,
                                         synthetic_coco, tmp_path)
    weights, _ = _start(config, False, tmp_path)
    assert not torch.equal(weights['head.final_layer.weight'],
                           mse_weights['head.final_layer.weight'])


def test_gpu_preset_dry_run_on_the_cpu(tmp_path):
    out = tmp_path / 'report.md'
    proc = subprocess.run([
        sys.executable, 'benchmarks/bench_accuracy.py', '--preset', 'gpu',
        '--dry-run', '--device', 'cpu', '--methods', 'MSE', 'AFL (MSE)',
        '--datasets', 'coco', '--seeds', '0', '--jobs', '2', '--out-dir',
        str(tmp_path / 'runs'), '--out',
        str(out)
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = out.read_text()
    assert '(input coco 256x192)' in text
    assert '(4 train / 2 val images)' in text
    assert 'its own synthetic set' in text
    val = (
        tmp_path / 'runs' / 'data' / 'coco_4_2_seed0_mild' / 'annotations' /
        'person_keypoints_val2017.json')
    assert json.loads(val.read_text())['info']['unusual_pose'] == 'mild'
    assert '| metric | MSE | Δ AFL (MSE) |' in text
    assert '| AP | ' in text and paired.RULE in text
    assert out.with_name('report_paired.png').is_file()
    config = next((tmp_path / 'runs' / 'configs' / 'coco' / 'AFL_MSE_' /
                   'seed0').glob('*.py')).read_text()
    assert "'ReseedBeforeInitHook'" in config
    from mmengine.config import Config
    cfg = Config.fromfile(
        str(
            next((tmp_path / 'runs' / 'configs' / 'coco' / 'AFL_MSE_' /
                  'seed0').glob('*.py'))))
    assert tuple(cfg.model.head.decoder.input_size) == (192, 256)
    assert tuple(cfg.model.head.decoder.heatmap_size) == (48, 64)
    sizes = [
        tuple(t.get('input_size',
                    t.get('encoder', {}).get('input_size', ())))
        for t in cfg.train_dataloader.dataset.pipeline
    ]
    assert sizes.count((192, 256)) == 2  # TopdownAffine, GenerateTarget
    assert cfg.val_evaluator.type == 'StratifiedCocoMetric'
    assert cfg.train_cfg.max_epochs == 1


def test_each_seed_draws_its_own_data_set(tmp_path):
    # the cpu and gpu presets draw a set per seed, so that the seeds' sd
    # covers the data draw (a 50-image val set flipped verdicts); the
    # demo-full preset keeps make data's one set, as results_afl.md ran
    assert accuracy_methods.PRESETS['cpu']['data_per_seed']
    assert accuracy_methods.PRESETS['gpu']['data_per_seed']
    assert not accuracy_methods.PRESETS['demo-full']['data_per_seed']
    roots = [
        accuracy_configs.data_root('coco', 3, 2, tmp_path, seed)
        for seed in (1, 2, 1)
    ]
    assert roots[0] == roots[2] == tmp_path / 'data' / 'coco_3_2_seed1'
    ann = 'annotations/person_keypoints_{}2017.json'

    def people(root, split):
        return [
            a['keypoints']
            for a in json.loads((root /
                                 ann.format(split)).read_text())['annotations']
        ]

    for split in ('train', 'val'):
        assert people(roots[0], split) != people(roots[1], split)
    # the generator's seed, not a shuffle of one set: same seed, same bytes
    again = accuracy_configs.data_root('coco', 3, 2, tmp_path / 'again', 1)
    assert ((again / ann.format('val')).read_bytes() == (
        roots[0] / ann.format('val')).read_bytes())


def test_benchmark_sets_have_the_mild_unusual_poses(tmp_path):
    # the cpu and gpu presets' own sets pose unusual people mildly (with
    # any angle, no method scores AP above 0 on them); demo-full keeps
    # make data's sets, on which benchmarks/results_afl.md was measured
    assert accuracy_methods.PRESETS['cpu']['unusual_pose'] == 'mild'
    assert accuracy_methods.PRESETS['gpu']['unusual_pose'] == 'mild'
    assert accuracy_methods.PRESETS['demo-full']['unusual_pose'] == 'any_angle'
    mild = accuracy_configs.data_root('coco', 3, 2, tmp_path, 1, 'mild')
    assert mild == tmp_path / 'data' / 'coco_3_2_seed1_mild'
    info = json.loads((mild / 'annotations' /
                       'person_keypoints_val2017.json').read_text())['info']
    assert info['unusual_pose'] == 'mild' and info['seed'] == 1
    # make data's sizes and seed, but not its poses: not make data's set
    own = tmp_path / 'data' / 'coco_200_50_seed0_mild'
    (own / 'annotations').mkdir(parents=True)  # (so none is generated)
    assert accuracy_configs.data_root('coco', 200, 50, tmp_path, 0,
                                      'mild') == own


def test_no_gpu_is_an_error_not_a_cpu_run(tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip('a GPU is here')
    proc = subprocess.run([
        sys.executable, 'benchmarks/bench_accuracy.py', '--preset', 'gpu',
        '--out-dir',
        str(tmp_path)
    ],
                          cwd=REPO,
                          capture_output=True,
                          text=True,
                          timeout=300)
    assert proc.returncode == 2 and 'no GPU' in proc.stderr


@pytest.mark.parametrize('input_size', [(144, 192), (96, 100), (0, 128),
                                        (96, ), (96.5, 128)])
def test_input_size_not_a_multiple_of_32_is_a_clear_error(input_size):
    # 192x144 used to train until the loss, then fail on heatmaps 4 px
    # wider than the codec's
    with pytest.raises(ValueError, match='input_size'):
        accuracy_configs.check_input_size(input_size)
    with pytest.raises(ValueError, match='input_size'):
        accuracy_configs.resize_input({'input_size': (96, 128)}, input_size)
    accuracy_configs.check_input_size((96, 128))
    accuracy_configs.check_input_size(None)


def test_cpu_preset_is_the_calibrated_one():
    cpu = accuracy_methods.PRESETS['cpu']
    assert (cpu['batch_size'], cpu['epochs'], cpu['seeds']) == (8, 12,
                                                                [0, 1, 2])
    assert cpu['input_size'] == {'coco': None, 'wholebody': (128, 192)}
    for dataset, methods in cpu['methods'].items():
        assert methods[0] == accuracy_methods.REFERENCE
        assert all(dataset in accuracy_methods.METHODS[m] for m in methods)
    # results_afl.md's setting stays reproducible (docs/benchmarks.md's
    # command)
    demo_full = accuracy_methods.PRESETS['demo-full']
    assert (demo_full['batch_size'], demo_full['epochs'],
            demo_full['input_size']) == (16, 20, {
                'coco': None,
                'wholebody': None
            })
    cfg = {'codec': {'input_size': (96, 128), 'heatmap_size': (24, 32)}}
    accuracy_configs.resize_input(cfg, (128, 192))
    assert cfg['codec'] == {'input_size': (128, 192), 'heatmap_size': (32, 48)}


def test_real_pose_preset_has_the_cpu_budget_and_every_method():
    real, cpu = accuracy_methods.PRESETS[
        'real-pose'], accuracy_methods.PRESETS['cpu']
    for key in ('num_train', 'num_val', 'data_per_seed', 'input_size',
                'batch_size', 'epochs', 'seeds', 'jobs', 'workers', 'threads',
                'device'):
        assert real[key] == cpu[key], key
    assert real['poses'] == accuracy_methods.COCO_POSES
    assert real['poses'].is_file()
    methods = real['methods']
    assert methods['wholebody'][:4] == ['MSE', 'FoWKAL', 'KAL', 'AFL (MSE)']
    assert methods['coco'][:2] == ['MSE', 'AFL (MSE)']
    table = {
        'MSE', 'AFL (MSE)', 'AFL-cond', 'OHKM', 'LossProp', 'SAHR + WAHR',
        'HSM', 'FoWKAL', 'KAL', 'heuristic', 'RTMPose-t', 'AFL (RTMPose-t)',
        'RLE', 'AFL (RLE)'
    }
    assert set(methods['coco']) | set(methods['wholebody']) == table
    # the cpu preset keeps its methods (its results file depends on them)
    assert cpu['methods'] is accuracy_methods.CPU_METHODS
    assert 'poses' not in cpu and 'order' not in cpu


def test_real_pose_dry_run_dumps_predictions_and_reports_finished_runs(
        tmp_path):
    import pickle
    runs, out = tmp_path / 'runs', tmp_path / 'report.md'
    command = [
        sys.executable, 'benchmarks/bench_accuracy.py', '--preset',
        'real-pose', '--dry-run', '--datasets', 'coco', '--seeds', '0',
        '--out-dir',
        str(runs), '--out',
        str(out)
    ]
    proc = subprocess.run(
        command + ['--methods', 'MSE'],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the set: the shipped file's people, labels unchanged
    val = json.loads(
        (runs / 'data' / 'coco_4_2_seed0_real_pose' / 'annotations' /
         'person_keypoints_val2017.json').read_text())
    real = {
        a['id']: a
        for a in json.loads(accuracy_methods.COCO_POSES.read_text())
        ['annotations']
    }
    assert val['annotations'] and all({k: a[k]
                                       for k in real[a['id']]} == real[a['id']]
                                      for a in val['annotations'])
    assert 'poses of `person_keypoints_val2017_labels_only.json`' in \
        out.read_text()
    # every run's val predictions, readable by benchmarks/left_right.py
    preds = pickle.loads(
        (runs / 'coco' / 'MSE' / 'seed0' / 'val_preds.pkl').read_bytes())
    assert len(preds) == len(val['annotations'])
    shares, _ = left_right(preds)
    assert set(shares) <= {'elbows', 'wrists', 'knees', 'ankles'}
    # a report of what has finished: MSE, with AFL listed as not yet run
    partial = tmp_path / 'partial.md'
    proc = subprocess.run(
        command[:-2] + [
            '--out',
            str(partial), '--report-only', '--methods', 'MSE', 'AFL (MSE)'
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    text = partial.read_text()
    assert 'Not yet run: coco / AFL (MSE) / seed 0.' in text
    written_by = text.splitlines()[2]
    assert written_by.startswith('Written by `python benchmarks/bench_')
    assert '--report-only' not in written_by and '| MSE | ' in text
    assert not (runs / 'coco' / 'AFL_MSE_').exists()
