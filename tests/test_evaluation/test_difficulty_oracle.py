"""The difficulty report's oracle: the per-sample OKS error against hand
values and against pycocotools' own OKS, and the report's rows for every
signal (difficulty, base loss, OKS error) re-derived with numpy / scipy on
a hand-written work dir."""
import importlib.util
import itertools
import json
import math

import numpy as np
import pytest
import torch
from scipy import stats

from tests.e2e import REPO


def _report():
    spec = importlib.util.spec_from_file_location(
        'afl_difficulty_report', REPO / 'tools' / 'afl_difficulty_report.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ------------------------------------------------------------ OKS error
def test_keypoint_offsets_by_hand():
    from mmpose_afl.evaluation.sample_oks import keypoint_offsets

    # frame W 5, H 4; keypoint 0 off by (+1, +2) px, 1 on its ground
    # truth, 2 unlabelled, 3 labelled but not predicted
    pred = torch.tensor([[[2., 3.], [4., 2.], [4., 3.], [0., 0.]]])
    gt = torch.tensor([[[1., 1.], [4., 2.], [0., 0.], [1., 1.]]])
    labelled = torch.tensor([[True, True, False, True]])
    present = torch.tensor([[True, True, True, False]])
    offsets = keypoint_offsets(pred, gt, (5, 4), labelled, present)
    assert offsets[0, 0].tolist() == pytest.approx([0.2, 0.5])
    assert offsets[0, 1].tolist() == [0., 0.]
    assert torch.isnan(offsets[0, 2]).all()
    assert torch.isinf(offsets[0, 3]).all()
    assert keypoint_offsets(pred, gt, (5, 4))[0, 2].tolist() == \
        pytest.approx([0.8, 0.75])


def test_oks_error_by_hand():
    from mmpose_afl.evaluation.sample_oks import oks_error

    # crop 80 x 60 image px: offsets of 1/4 width and 1/2 height are
    # 20 and 30 px; area 1000; sigmas .1, .2 -> (2 sigma)^2 = .04, .16
    offsets = [[0.25, 0.], [0., 0.5], [math.nan, math.nan]]
    e1, e2 = 400 / (2 * 1000 * .04), 900 / (2 * 1000 * .16)  # 5, 2.8125
    expected = 1 - (math.exp(-e1) + math.exp(-e2)) / 2
    assert oks_error(offsets, (80, 60), 1000., [.1, .2, .3]) == \
        pytest.approx(expected)
    # a labelled keypoint without a prediction adds 0 and still counts
    missing = offsets[:2] + [[math.inf, math.inf]]
    assert oks_error(missing, (80, 60), 1000., [.1, .2, .3]) == \
        pytest.approx(1 - (math.exp(-e1) + math.exp(-e2)) / 3)
    assert oks_error([[0., 0.]], (80, 60), 10., [.1]) == 0.
    assert oks_error([[math.nan, math.nan]], (80, 60), 10., [.1]) is None
    assert oks_error([[0., 0.]], (80, 60), 0., [.1]) is None
    with pytest.raises(ValueError, match='sigmas'):
        oks_error([[0., 0.]], (80, 60), 10., [.1, .2])


def test_oks_error_is_cocoeval_oks():
    """The same prediction through pycocotools' COCOeval.computeOks, with
    the keypoints placed in image pixels where the heatmap peaks map."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    from mmpose_afl.evaluation.sample_oks import oks_error
    sigmas = np.array([.026, .025, .079, .107])
    gt = np.array([[10., 20.], [30., 25.], [40., 60.], [12., 70.]])
    offsets = np.array([[.05, -.02], [0., 0.], [-.1, .04], [.3, .1]])
    scale = np.array([64., 48.])  # the crop's width, height in image px
    pred = gt + offsets * scale
    visible = [2, 1, 2, 0]  # keypoint 3 unlabelled
    offsets[3] = np.nan
    area = 1500.

    def keypoints(xy, vis):
        return [float(v) for (x, y), s in zip(xy, vis) for v in (x, y, s)]

    coco = COCO()
    coco.dataset = dict(
        images=[dict(id=1, width=100, height=100)],
        categories=[dict(id=1, name='person')],
        annotations=[
            dict(
                id=1,
                image_id=1,
                category_id=1,
                iscrowd=0,
                area=area,
                bbox=[5., 15., 40., 60.],
                num_keypoints=3,
                keypoints=keypoints(gt, visible))
        ])
    coco.createIndex()
    detections = coco.loadRes([
        dict(
            image_id=1,
            category_id=1,
            score=1.,
            keypoints=keypoints(pred, [1] * 4))
    ])
    evaluator = COCOeval(coco, detections, 'keypoints')
    evaluator.params.kpt_oks_sigmas = sigmas
    evaluator._prepare()
    oks = evaluator.computeOks(1, 1)
    assert oks_error(offsets, scale, area, sigmas) == pytest.approx(
        1 - float(oks[0, 0]), abs=1e-9)


def test_sample_oracle_reads_scale_and_area_from_the_meta():
    from mmpose_afl.evaluation.sample_oks import oks_error, sample_oracle
    offsets = [[0.25, 0.], [0., 0.5]]
    meta = dict(
        input_scale=np.array([80., 60.]), raw_ann_info=dict(area=1000.))
    assert sample_oracle(0.5, offsets, meta, [.1, .2]) == dict(
        base_loss=0.5,
        oks_error=pytest.approx(oks_error(offsets, (80, 60), 1000., [.1, .2])))
    # what is missing leaves the OKS error out, never a wrong number
    for broken in (dict(meta, raw_ann_info={}), dict(input_scale=(80, 60))):
        assert sample_oracle(0.5, offsets, broken,
                             [.1, .2])['oks_error'] is None
    assert sample_oracle(None, offsets, meta, None) == dict(
        base_loss=None, oks_error=None)
    assert sample_oracle(0.5, offsets, meta, [.1])['oks_error'] is None


def test_diagnostics_of_the_last_batch_by_hand():
    """By hand on 8x6 heatmaps with one-pixel keypoints (their centroids):
    sample 0 predicts (1, 0), (4, 3) for (0, 0), (4, 0); sample 1 has its
    keypoint 1 unlabelled and predicts nothing for keypoint 0. The loss
    keeps the per-sample base loss; the recorder's diagnostics give the
    offsets of the argmax peaks and their mean error."""
    from mmpose_afl.evaluation.sample_oks import sample_diagnostics
    from mmpose_afl.models.losses.afl_loss import AFLHeatmapLoss
    from tests.test_models.test_losses.test_afl_loss import dots
    target = torch.cat([dots([(0, 0), (4, 0)]), dots([(2, 2), (5, 5)])])
    output = torch.cat([dots([(1, 0), (4, 3)]), dots([None, (0, 0)], k=2)])
    weights = torch.tensor([[1., 1.], [1., 0.]])
    loss = AFLHeatmapLoss(critic=dict(type='AFLCritic', num_keypoints=2))
    loss.train()(output, target, weights)
    samples = loss.last_samples
    # MSE: 4 pixels off by 1 of 2 * 48 -> 1/24; sample 1: keypoint 0's
    # target pixel only (keypoint 1 is masked) -> 1/96
    torch.testing.assert_close(samples['losses'],
                               torch.tensor([1 / 24, 1 / 96]))
    diagnostics = sample_diagnostics(loss.adapter, samples['context'])
    offsets = diagnostics['offsets']
    torch.testing.assert_close(offsets[0],
                               torch.tensor([[1 / 8, 0.], [0., 3 / 6]]))
    # an all-zero prediction peaks at pixel (0, 0): (-2 / 8, -2 / 6)
    torch.testing.assert_close(offsets[1, 0], torch.tensor([-.25, -1 / 3]))
    assert torch.isnan(offsets[1, 1]).all()  # unlabelled
    # peak errors: (1 + 3) / 2 and |(0, 0) - (2, 2)|
    torch.testing.assert_close(diagnostics['error'], torch.tensor([2., 8**.5]))
    assert diagnostics['labels'].tolist() == [2, 1]


def test_peak_offsets_by_hand_and_other_families_by_coordinates():
    from mmpose_afl.evaluation.sample_oks import (heatmap_peak_offsets,
                                                  keypoint_offsets)
    output = torch.zeros(1, 3, 4, 5)  # H 4, W 5
    target = torch.zeros(1, 3, 4, 5)
    target[0, 0, 1, 1] = target[0, 1, 2, 4] = target[0, 2, 0, 0] = 1
    output[0, 0, 3, 2] = .05  # faint but placed: (2, 3) vs (1, 1)
    output[0, 1, 2, 4] = 1  # on its peak
    output[0, 2, 3, 4] = 1
    labelled = torch.tensor([[True, True, False]])
    offsets = heatmap_peak_offsets(output, target, labelled)
    assert offsets[0, 0].tolist() == pytest.approx([0.2, 0.5])
    assert offsets[0, 1].tolist() == [0., 0.]
    assert torch.isnan(offsets[0, 2]).all()
    pred = torch.tensor([[[2., 3.], [4., 2.], [0., 0.]]])
    gt = torch.tensor([[[1., 1.], [4., 2.], [0., 0.]]])
    coords = keypoint_offsets(pred, gt, (5, 4), labelled,
                              torch.tensor([[True, False, True]]))
    assert coords[0, 0].tolist() == pytest.approx([0.2, 0.5])
    assert torch.isinf(coords[0, 1]).all()  # labelled, not predicted
    assert torch.isnan(coords[0, 2]).all()


# ------------------------------------------------------------ the report
# six tracked samples' last-epoch values, as the hook writes them: id ->
# (difficulty, base loss, OKS error, peak error, labels, flags)
SAMPLES = {
    1: (.1, .30, .20, 1., 17, []),
    2: (.2, .10, .60, 3., 17, ['occluded']),
    3: (.3, .20, .40, 2., 10, ['small']),
    4: (.4, .50, .10, 5., 10, []),
    5: (.5, .40, .90, 4., 5, ['occluded', 'truncated']),
    6: (.6, .60, .70, 6., 5, ['unusual_pose']),
}


def _work_dir(root, old_records: bool = False):
    work_dir = root / 'work_dir'
    (root / 'annotations').mkdir(parents=True)
    work_dir.mkdir()
    (root / 'annotations' / 'train.json').write_text(
        json.dumps(
            dict(annotations=[
                dict(
                    id=i,
                    difficulty={
                        name: name in s[5]
                        for name in ('occluded', 'truncated', 'unusual_pose',
                                     'small')
                    }) for i, s in SAMPLES.items()
            ])))
    (work_dir / 'config.py').write_text(
        f"train_dataloader = dict(dataset=dict(data_root='{root}/', "
        "ann_file='annotations/train.json'))\n")
    lines = []
    for epoch in (1, 2):
        for i, (difficulty, loss, oks, error, labels, _) in SAMPLES.items():
            record = dict(
                epoch=epoch,
                iter=10 * epoch + i,
                id=i,
                difficulty=difficulty,
                weight=1.,
                labels=labels,
                error=error,
                base_loss=loss,
                oks_error=oks)
            if epoch == 1:  # the last epoch alone counts
                record.update(
                    difficulty=-difficulty,
                    base_loss=-loss,
                    oks_error=-oks,
                    error=-error)
            if old_records and i == 6:  # written before the new fields
                del record['base_loss'], record['oks_error']
            lines.append(json.dumps(record) + '\n')
    (work_dir / 'afl_difficulty_rank0.jsonl').write_text(''.join(lines))
    return work_dir


def _auc_by_pairs(scores, positive):
    """The fraction of (positive, negative) pairs ordered, ties 1/2."""
    pairs = [(p, n) for p, n in itertools.product(
        [s for s, f in zip(scores, positive)
         if f], [s for s, f in zip(scores, positive) if not f])]
    return sum(1. if p > n else .5 if p == n else 0.
               for p, n in pairs) / len(pairs)


def _partial(x, y, z):
    """The textbook first-order partial correlation of Spearman's rhos."""
    r_xy, r_xz, r_yz = (stats.spearmanr(a, b)[0]
                        for a, b in ((x, y), (x, z), (y, z)))
    return (r_xy - r_xz * r_yz) / math.sqrt((1 - r_xz**2) * (1 - r_yz**2))


def test_report_rows_for_every_signal(tmp_path):
    module = _report()
    from mmengine.config import Config
    work_dir = _work_dir(tmp_path)
    result = module.report(work_dir,
                           Config.fromfile(str(work_dir / 'config.py')))
    values = np.array([s[:5] for s in SAMPLES.values()])
    error, labels = values[:, 3], values[:, 4]
    flags = [set(s[5]) for s in SAMPLES.values()]
    clean = [not f for f in flags]
    assert result['samples'] == 6
    for column, name in enumerate(module.SIGNALS):
        signal = values[:, column]
        row = result['signals'][name]
        assert row['samples'] == 6
        assert row['spearman_labels'] == pytest.approx(
            stats.spearmanr(signal, labels)[0])
        assert row['spearman_error'] == pytest.approx(
            stats.spearmanr(signal, error)[0])
        assert row['partial_spearman_error'] == pytest.approx(
            _partial(signal, error, labels))
        assert row['auc']['any']['auc'] == pytest.approx(
            _auc_by_pairs(signal, [not c for c in clean]))
        for flag in ('occluded', 'truncated', 'unusual_pose', 'small'):
            keep = [flag in f or c for f, c in zip(flags, clean)]
            assert row['auc'][flag]['auc'] == pytest.approx(
                _auc_by_pairs(signal[keep],
                              [flag in f
                               for f, k in zip(flags, keep) if k])), (name,
                                                                      flag)
    # hand values: the oracle orders the flagged (.6 .4 .9 .7) above the
    # clean (.2 .1) for every pair; the difficulty for 6 of 8
    assert result['signals']['oks_error']['auc']['any']['auc'] == 1.
    assert result['signals']['difficulty']['auc']['any']['auc'] == \
        pytest.approx(6 / 8)
    # the top-level keys are still the difficulty's
    assert result['auc'] == result['signals']['difficulty']['auc']
    assert result['partial_spearman_error'] == \
        result['signals']['difficulty']['partial_spearman_error']
    text = module.format_report(result)
    assert 'OKS error (oracle)' in text and 'base loss' in text
    assert 'rho(difficulty, error | labels)' in text


def test_records_without_the_new_fields(tmp_path):
    """Sample 6's records lack base loss and OKS error (an older run): those
    signals are computed over the other five, the difficulty over six."""
    module = _report()
    result = module.report(_work_dir(tmp_path, old_records=True))
    signals = result['signals']
    assert signals['difficulty']['samples'] == 6
    assert signals['base_loss']['samples'] == 5
    values = np.array([s[:5] for s in list(SAMPLES.values())[:5]])
    assert signals['base_loss']['spearman_error'] == pytest.approx(
        stats.spearmanr(values[:, 1], values[:, 3])[0])
    assert signals['oks_error']['samples'] == 5
    assert signals['oks_error']['auc'] is None  # no config given
    assert result['auc'] is None
