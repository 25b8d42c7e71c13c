"""mmpose_afl.evaluation.left_right and benchmarks/left_right.py: which
matching of a left/right pair is nearest, the shares and the medians, on
people small enough to work out by hand."""
import pickle
import subprocess
import sys

import numpy as np
import pytest

from mmpose_afl.evaluation.left_right import left_right, matching
from tests.e2e import REPO

KNEES = np.zeros((17, 2))
KNEES[13], KNEES[14] = (0, 0), (10, 0)


def _sample(pred_knees, visible=None):
    """A COCO person (17 points, area 100: errors in tenths of a pixel
    count 1 per 10 px) whose prediction is the ground truth but for the
    knees."""
    pred = KNEES.copy()
    pred[13], pred[14] = pred_knees
    visible = np.ones(17) if visible is None else visible
    return dict(
        pred_instances=dict(keypoints=pred[None]),
        gt_instances=dict(
            keypoints=KNEES[None], keypoints_visible=visible[None]),
        raw_ann_info=dict(area=100.0))


@pytest.mark.parametrize(
    'knees, expected',
    [
        (((0, 0), (10, 0)), 'own'),
        (((0, 0), (0, 0)), 'collapsed'),  # 0 + 10 (own) vs 0 + 0 (twice)
        (((10, 0), (0, 0)), 'swapped'),  # 20 (own) vs 0 (swap) vs 10 (twice)
        (((5, 0), (5, 0)), 'own'),  # 10 every way: a tie is not a confusion
        (((1, 0), (2, 0)), 'collapsed'),  # own 1 + 8 = 9, twice 1 + 2 = 3
    ])
def test_matching(knees, expected):
    pred = KNEES.copy()
    pred[13], pred[14] = knees
    assert matching(pred, KNEES, 13, 14) == expected


def test_shares_and_medians():
    unlabelled = np.ones(17)
    unlabelled[14] = 0
    samples = [
        _sample(((0, 0), (10, 0))),
        _sample(((0, 0), (0, 0))),
        _sample(((10, 0), (0, 0))),
        _sample(((5, 0), (5, 0))),
        _sample(((3, 0), (0, 0)), unlabelled),  # pair not counted
    ]
    shares, medians = left_right(samples)
    assert shares['knees'] == dict(collapsed=0.25, swapped=0.25)
    assert shares['ankles'] == dict(collapsed=0.0, swapped=0.0)
    # knee errors / sqrt(100): 0, 0 | 0, 1 | 1, 1 | .5, .5 | .3 (left only)
    assert medians['knees'] == pytest.approx(0.5)
    assert medians['ankles'] == 0.0
    assert 'feet' not in medians and 'face' not in medians  # COCO: 17


def test_the_script_prints_one_row_per_dump(tmp_path):
    dump = tmp_path / 'preds.pkl'
    dump.write_bytes(pickle.dumps([_sample(((0, 0), (0, 0)))]))
    rows = subprocess.run(
        [sys.executable, 'benchmarks/left_right.py',
         str(dump)],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True).stdout.splitlines()
    assert rows[0].startswith('| predictions | people | elbows collapsed')
    cells = [c.strip() for c in rows[2].strip('|').split('|')]
    assert cells[:6] == [
        str(dump), '1', '0.00 / 0.00', '0.00 / 0.00', '1.00 / 0.00',
        '0.00 / 0.00'
    ]
    assert cells[8] == '0.500' and cells[-3:] == ['', '', '']
