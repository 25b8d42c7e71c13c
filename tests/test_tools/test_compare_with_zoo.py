"""tools/compare_with_zoo.py on the real MMPose metafiles and on work dirs of
real short ``mim train`` / ``mim test`` runs on the synthetic data."""
import importlib.util
import json
import shutil
from pathlib import Path

import pytest
import yaml

from mmpose_afl import zoo
from tests.e2e import REPO, last_checkpoint, run_test, short_schedule
from tests.trained_runs import trained

BASELINE = 'configs/baseline/td-hm_res18_1xb16-20e_synthetic-coco-128x96.py'
BASELINE_WB = ('configs/baseline/'
               'td-hm_res18_1xb16-20e_synthetic-coco-wholebody-128x96.py')
METHOD = ('configs/sahr/'
          'td-hm_res18_sahr-wahr-1xb16-20e_synthetic-coco-128x96.py')
FOWKAL = ('configs/fowkal/'
          'td-hm_res18_fowkal-1xb16-20e_synthetic-coco-wholebody-128x96.py')
HRNET = ('body_2d_keypoint/topdown_heatmap/coco/'
         'td-hm_hrnet-w32_8xb64-210e_coco-256x192.py')
HRNET_AFL = 'configs/afl/td-hm_hrnet-w32_afl-8xb64-210e_coco-256x192.py'
HRNET_AFL_FT = 'configs/afl/td-hm_hrnet-w32_afl-ft-8xb64-10e_coco-256x192.py'
HRNET_ENTRY = 'td-hm_hrnet-w32_8xb64-210e_coco-256x192'
# the stock config's backbone init, as printed in mmpose/.mim/configs/
# body_2d_keypoint/topdown_heatmap/coco/td-hm_hrnet-w32_8xb64-210e_coco-...
HRNET_IMAGENET = ('https://download.openmmlab.com/mmpose/pretrain_models/'
                  'hrnet_w32-36af842e.pth')
WHOLEBODY_ENTRY = 'td-hm_hrnet-w32_dark-8xb64-210e_coco-wholebody-256x192'
# as printed in mmpose/.mim/configs/wholebody_2d_keypoint/topdown_heatmap/
# coco-wholebody/hrnet_dark_coco-wholebody.yml, in its order
WHOLEBODY_ZOO = {
    'Body AP': 0.693,
    'Body AR': 0.764,
    'Face AP': 0.737,
    'Face AR': 0.809,
    'Foot AP': 0.564,
    'Foot AR': 0.674,
    'Hand AP': 0.503,
    'Hand AR': 0.602,
    'Whole AP': 0.582,
    'Whole AR': 0.671
}
# the CocoWholeBodyPartMetric key of each
WHOLEBODY_KEYS = {
    'Body AP': 'coco-wholebody/body_AP',
    'Body AR': 'coco-wholebody/body_AR',
    'Face AP': 'coco-wholebody/face_AP',
    'Face AR': 'coco-wholebody/face_AR',
    'Foot AP': 'coco-wholebody/foot_AP',
    'Foot AR': 'coco-wholebody/foot_AR',
    'Hand AP': 'coco-wholebody/hand_AP',
    'Hand AR': 'coco-wholebody/hand_AR',
    'Whole AP': 'coco-wholebody/AP',
    'Whole AR': 'coco-wholebody/AR'
}
# made-up published numbers of the stand-in entry, all different, so that a
# metric matched to the wrong one shows in the differences
STAND_IN = {
    'AP': 0.11,
    'AP@0.5': 0.22,
    'AP@0.75': 0.33,
    'AR': 0.44,
    'AR@0.5': 0.55
}
# evaluator key of each metafile metric name (CocoMetric's names)
COCO_KEYS = {
    'AP': 'coco/AP',
    'AP@0.5': 'coco/AP .5',
    'AP@0.75': 'coco/AP .75',
    'AR': 'coco/AR',
    'AR@0.5': 'coco/AR .5'
}


def _tool():
    spec = importlib.util.spec_from_file_location(
        'compare_with_zoo', REPO / 'tools' / 'compare_with_zoo.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run_tool(capsys, *argv):
    code = _tool().main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def _table_rows(text):
    """{first cell: [other cells]} of the markdown table in ``text``."""
    rows = {}
    for line in text.splitlines():
        if line.startswith('| ') and not line.startswith('|---'):
            cells = [c.strip() for c in line.strip('|').split('|')]
            rows.setdefault(cells[0], []).append(cells[1:])
    return rows


def _stand_in(tmp_path, metrics=STAND_IN, config=BASELINE):
    path = tmp_path / 'stand_in.yml'
    path.write_text(
        yaml.safe_dump({
            'Models': [{
                'Name':
                'synthetic-baseline',
                'Config':
                config,
                'Results': [{
                    'Dataset': 'synthetic COCO',
                    'Metrics': metrics
                }]
            }]
        }))
    return path


def _last_validation(work_dir):
    """The last validation record MMEngine logged, read here directly."""
    (log, ) = work_dir.glob('*/vis_data/[0-9]*_[0-9]*.json')
    records = [json.loads(line) for line in log.read_text().splitlines()]
    return [r for r in records if 'coco/AP' in r][-1]


def test_finds_the_published_numbers_of_a_real_zoo_entry(tmp_path):
    config = tmp_path / 'configs' / 'afl' / 'my_hrnet_method.py'
    config.parent.mkdir(parents=True)
    config.write_text(f"_base_ = ['mmpose::{HRNET}']\n"
                      "model = dict(head=dict(loss=dict(loss_weight=2.)))\n")
    entries = zoo.load_entries(zoo.default_metafiles())
    entry = zoo.find_baseline(str(config), entries)
    assert entry.name == 'td-hm_hrnet-w32_8xb64-210e_coco-256x192'
    assert entry.source.endswith('coco/hrnet_coco.yml')
    assert entry.dataset == 'COCO'
    # as printed in mmpose/.mim/configs/.../coco/hrnet_coco.yml
    assert entry.metrics == {
        'AP': 0.746,
        'AP@0.5': 0.904,
        'AP@0.75': 0.819,
        'AR': 0.799,
        'AR@0.5': 0.942
    }


def test_wholebody_baseline_has_every_part():
    entries = zoo.load_entries(zoo.default_metafiles())
    entry = zoo.find_baseline(str(REPO / BASELINE_WB), entries)
    # the stock config the synthetic WholeBody data config inherits
    assert entry.name == WHOLEBODY_ENTRY
    assert entry.metrics == WHOLEBODY_ZOO


def test_base_chain_stops_at_the_first_stock_config():
    chain = zoo.base_chain(str(REPO / METHOD))
    assert [zoo.config_key(c) for c in chain] == [
        BASELINE, 'configs/_base_/datasets/synthetic_coco.py',
        'configs/body_2d_keypoint/topdown_heatmap/coco/'
        'td-hm_res50_8xb64-210e_coco-256x192.py'
    ]


def test_method_run_against_stand_in_and_zoo(tmp_path, tmp_path_factory,
                                             capsys, synthetic_coco):
    work_dir = trained(METHOD, tmp_path_factory, synthetic_coco)
    measured = _last_validation(work_dir)
    png = tmp_path / 'cmp.png'

    # 1. the stand-in entry of the baseline demo config is the nearest
    # ancestor with numbers, so it is the baseline
    code, out, err = _run_tool(capsys, REPO / METHOD,
                               work_dir, '--baseline-metafile',
                               _stand_in(tmp_path), '--png', png, '--md',
                               tmp_path / 'cmp.md')
    assert code == 0, err
    # same data as the stand-in's config: no warning
    assert 'WARNING' not in err and 'Not like-for-like' not in out
    rows = _table_rows(out)
    names = list(STAND_IN)
    assert rows['model'][0] == names
    assert rows['synthetic-baseline (stand-in)'][0] == [
        f'{STAND_IN[n]:.3f}' for n in names
    ]
    method_row = rows['td-hm_res18_sahr-wahr-1xb16-20e_synthetic-coco-128x96']
    assert method_row[0] == [f'{measured[COCO_KEYS[n]]:.3f}' for n in names]
    assert rows['Δ'][0] == [
        f'{measured[COCO_KEYS[n]] - STAND_IN[n]:+.3f}' for n in names
    ]
    assert (
        tmp_path /
        'cmp.md').read_text().strip() == out.split('bar chart:')[0].strip()
    import matplotlib.image
    image = matplotlib.image.imread(png)
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100

    # 2. without it, the MMPose zoo entry of the stock config at the end of
    # the chain (ResNet-50 256x192) with its published numbers
    code, out, err = _run_tool(capsys, REPO / METHOD, work_dir, '--png', '')
    assert code == 0, err
    # synthetic data and ground-truth boxes vs COCO with detected boxes: the
    # comparison is made, and said not to be like-for-like
    assert ('WARNING: td-hm_res18_sahr-wahr-1xb16-20e_synthetic-coco-128x96 '
            'is not comparable with its baseline') in err
    assert 'synthetic data ("mmpose-afl synthetic coco")' in err
    assert ('boxes: the run has ground-truth boxes, '
            'td-hm_res50_8xb64-210e_coco-256x192 has detected boxes '
            '(COCO_val2017_detections_AP_H_56_person.json)') in err
    # and a randomly initialised ResNet-18 against the zoo's ImageNet start
    assert ('backbone init_cfg: the run started from random weights '
            '(init_cfg=None), td-hm_res50_8xb64-210e_coco-256x192 from '
            'pretrained weights (torchvision://resnet50)') in err
    assert out.count('**Not like-for-like**') == 3
    rows = _table_rows(out)
    assert rows['td-hm_res50_8xb64-210e_coco-256x192 (zoo)'][0] == [
        '0.718', '0.898', '0.796', '0.774', '0.934'
    ]
    assert rows['Δ'][0] == [
        f'{measured[COCO_KEYS[n]] - p:+.3f}'
        for n, p in zip(names, (0.718, 0.898, 0.796, 0.774, 0.934))
    ]


def test_wholebody_run_per_part_against_the_zoo(tmp_path, tmp_path_factory,
                                                capsys, synthetic_wholebody):
    work_dir = trained(FOWKAL, tmp_path_factory, synthetic_wholebody,
                       'wholebody')
    (log, ) = work_dir.glob('*/vis_data/[0-9]*_[0-9]*.json')
    measured = [
        json.loads(line) for line in log.read_text().splitlines()
        if 'coco-wholebody/AP' in line
    ][-1]
    png = tmp_path / 'wholebody.png'
    code, out, err = _run_tool(capsys, REPO / FOWKAL, work_dir, '--png', png)
    assert code == 0, err
    rows = _table_rows(out)
    # every published number of the stock HRNet-w32 + DARK entry, in the
    # metafile's order, next to the per-part metric's value
    assert rows['model'][0] == list(WHOLEBODY_ZOO)
    assert rows[f'{WHOLEBODY_ENTRY} (zoo)'][0] == [
        f'{v:.3f}' for v in WHOLEBODY_ZOO.values()
    ]
    assert rows[Path(FOWKAL).stem][0] == [
        f'{measured[WHOLEBODY_KEYS[n]]:.3f}' for n in WHOLEBODY_ZOO
    ]
    assert rows['Δ'][0] == [
        f'{measured[WHOLEBODY_KEYS[n]] - p:+.3f}'
        for n, p in WHOLEBODY_ZOO.items()
    ]
    assert png.stat().st_size > 0


def test_stock_wholebody_metric_has_no_parts(tmp_path, capsys):
    # MMPose's CocoWholeBodyMetric returns the whole body only
    results = tmp_path / 'results.json'
    results.write_text(
        json.dumps({
            'coco-wholebody/AP': 0.5,
            'coco-wholebody/AR': 0.6
        }))
    code, out, err = _run_tool(capsys, REPO / BASELINE_WB, results, '--png',
                               '')
    assert code == 2 and out == ''
    assert 'lacks Body AP, Body AR, Face AP, Face AR, Foot AP' in err
    assert 'per-part metric' in err
    code, out, err = _run_tool(capsys, REPO / BASELINE_WB, results, '--png',
                               '', '--metrics', 'Whole AP', 'Whole AR')
    assert code == 0, err
    assert _table_rows(out)['Δ'][0] == [
        f'{0.5 - WHOLEBODY_ZOO["Whole AP"]:+.3f}',
        f'{0.6 - WHOLEBODY_ZOO["Whole AR"]:+.3f}'
    ]


def test_newest_evaluation_is_the_mim_test_one(tmp_path, tmp_path_factory,
                                               capsys, synthetic_coco):
    work_dir = tmp_path / 'work_dir'
    shutil.copytree(
        trained(METHOD, tmp_path_factory, synthetic_coco), work_dir)
    run_test(
        METHOD,
        last_checkpoint(work_dir),
        work_dir,
        synthetic_coco,
        cfg_options=short_schedule())
    (test_json, ) = [
        p for p in work_dir.glob('*/*.json') if p.stem == p.parent.name
    ]
    tested = json.loads(test_json.read_text())

    for results in (work_dir, test_json):
        code, out, err = _run_tool(capsys, REPO / METHOD, results, '--png', '',
                                   '--baseline-metafile', _stand_in(tmp_path))
        assert code == 0, err
        assert f'{test_json}' in out
        rows = _table_rows(out)
        assert rows['Δ'][0] == [
            f'{tested[COCO_KEYS[n]] - STAND_IN[n]:+.3f}' for n in STAND_IN
        ]


def test_unknown_baseline_is_a_clear_error(tmp_path, capsys):
    config = tmp_path / 'no_zoo_numbers.py'
    config.write_text("_base_ = ['mmpose::_base_/default_runtime.py']\n")
    results = tmp_path / 'results.json'
    results.write_text(json.dumps({'coco/AP': 0.5}))
    code, out, err = _run_tool(capsys, config, results, '--png', '')
    assert code == 2
    assert 'unknown baseline' in err
    assert 'configs/_base_/default_runtime.py' in err
    assert '--baseline-metafile' in err and 'Traceback' not in err

    config.write_text('model = dict()\n')
    code, _, err = _run_tool(capsys, config, results, '--png', '')
    assert code == 2 and 'has no _base_' in err

    code, _, err = _run_tool(capsys, config, results, '--baseline',
                             'no-such-model', '--png', '')
    assert code == 2 and "baseline 'no-such-model'" in err


def test_missing_metric_is_a_clear_error(tmp_path, capsys):
    results = tmp_path / 'results.json'
    results.write_text(json.dumps({'coco/AP': 0.5, 'coco/AR': 0.6}))
    stand_in = _stand_in(tmp_path, {'AP': 0.4, 'AR': 0.5, 'PCK@0.2': 0.9})
    code, out, err = _run_tool(capsys, REPO / METHOD, results, '--png', '',
                               '--baseline-metafile', stand_in)
    assert code == 2
    assert 'lacks PCK@0.2' in err and 'coco/AP, coco/AR' in err
    assert out == ''

    # choosing the metrics both sides have makes the comparison
    code, out, err = _run_tool(capsys, REPO / METHOD, results, '--png', '',
                               '--baseline-metafile', stand_in, '--metrics',
                               'AR', 'AP')
    assert code == 0, err
    assert _table_rows(out)['Δ'][0] == ['+0.100', '+0.100']

    code, _, err = _run_tool(capsys, REPO / METHOD, results, '--png', '',
                             '--baseline-metafile', stand_in, '--metrics',
                             'AP@0.5')
    assert code == 2 and "'AP@0.5' is not published" in err


def test_results_without_an_evaluation_are_a_clear_error(tmp_path, capsys):
    empty = tmp_path / 'empty_work_dir'
    (empty / '20250101_000000' / 'vis_data').mkdir(parents=True)
    (empty / '20250101_000000' / 'vis_data' / '20250101_000000.json'
     ).write_text(json.dumps({
         'lr': 0.1,
         'loss': 1.0,
         'step': 1
     }) + '\n')
    for results in (empty, tmp_path / 'missing'):
        code, _, err = _run_tool(capsys, REPO / METHOD, results, '--png', '')
        assert code == 2 and 'Traceback' not in err
        assert str(results) in err
    with pytest.raises(SystemExit) as exit_:
        _tool().main([str(REPO / METHOD)])  # a config without its results
    assert exit_.value.code == 2


def _coco_results(path):
    """A ``mim test`` results file of made-up COCO metrics."""
    path.write_text(json.dumps({key: 0.5 for key in COCO_KEYS.values()}))
    return path


def test_backbone_init_against_the_zoo_start(tmp_path, capsys):
    results = _coco_results(tmp_path / 'results.json')
    init_warning = (f'backbone init_cfg: the run started from random '
                    f'weights (init_cfg=None), {HRNET_ENTRY} from '
                    f'pretrained weights ({HRNET_IMAGENET})')

    # the shipped COCO config keeps the stock ImageNet init: like-for-like
    code, out, err = _run_tool(capsys, REPO / HRNET_AFL, results, '--png', '')
    assert code == 0, err
    assert 'WARNING' not in err and 'Not like-for-like' not in out

    # a stock config with init_cfg=None, as a README block left it
    pasted = tmp_path / 'my_hrnet.py'
    pasted.write_text(f"_base_ = ['mmpose::{HRNET}']\n"
                      'model = dict(backbone=dict(init_cfg=None))\n')
    code, out, err = _run_tool(capsys, pasted, results, '--png', '')
    assert code == 0, err
    assert f'WARNING: my_hrnet is not comparable with its baseline: ' \
        f'{init_warning}' in err
    assert out.count('**Not like-for-like**') == 1 and init_warning in out

    # the same change made with --cfg-options: the config MMEngine dumped
    # into the work dir is the one read
    from mmengine.config import Config
    work_dir = tmp_path / 'work_dir'
    (work_dir / '20250101_000000').mkdir(parents=True)
    _coco_results(work_dir / '20250101_000000' / '20250101_000000.json')
    dumped = Config.fromfile(str(REPO / HRNET_AFL))
    dumped.model.backbone.init_cfg = None
    dumped.dump(str(work_dir / Path(HRNET_AFL).name))
    code, out, err = _run_tool(capsys, REPO / HRNET_AFL, work_dir, '--png', '')
    assert code == 0, err
    assert init_warning in err

    # a fine-tune loads the zoo checkpoint (load_from): init_cfg=None is
    # right there, and it is not flagged
    assert Config.fromfile(str(REPO / HRNET_AFL_FT)).load_from
    code, out, err = _run_tool(capsys, REPO / HRNET_AFL_FT, results, '--png',
                               '')
    assert code == 0, err
    assert 'WARNING' not in err and 'Not like-for-like' not in out
