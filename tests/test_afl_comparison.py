"""benchmarks/afl_comparison.py: the paired comparison against hand-computed
values, and the effective sample size read from a run's log."""
import json
import math
import sys

import pytest

from tests.e2e import REPO

sys.path.insert(0, str(REPO / 'benchmarks'))
import afl_comparison  # noqa: E402


def test_paired_difference_and_verdict_by_hand():
    method = {0: 0.5, 1: 0.6, 2: 0.7}
    reference = {0: 0.4, 1: 0.4, 2: 0.5, 3: 0.9}  # seed 3: no pair
    result = afl_comparison.paired(method, reference)
    assert result['seeds'] == [0, 1, 2]
    assert result['diffs'] == pytest.approx([0.1, 0.2, 0.2])
    assert result['mean'] == pytest.approx(0.5 / 3)
    assert result['sd'] == pytest.approx(math.sqrt(1 / 300))
    # t = mean / (sd / sqrt 3) = 5 with 2 degrees of freedom, whose CDF is
    # 1/2 + t / (2 sqrt(2 + t^2)): p = 1 - 5 / sqrt(27)
    assert result['p'] == pytest.approx(1 - 5 / math.sqrt(27))
    assert result['verdict'] == 'better'
    assert result['no_collapse']


def test_paired_collapse_and_no_difference():
    # seed 1 falls more than MSE's sd (0.1) below MSE: a collapse
    result = afl_comparison.paired({0: 0.5, 1: 0.1, 2: 0.6},
                                   {0: 0.4, 1: 0.5, 2: 0.6})
    assert not result['no_collapse']
    assert result['verdict'] == 'not distinguishable'  # p = 0.58


def test_effective_sample_size_of_the_logged_windows(tmp_path):
    log = tmp_path / '20261126_000000' / 'vis_data' / 'scalars.json'
    log.parent.mkdir(parents=True)
    records = [dict(lr=1e-3, afl_ess=0.9, step=10),
               dict(lr=1e-3, afl_ess=0.6, step=20),
               dict(**{'coco/AP': 0.5}, step=20),
               dict(lr=1e-3, afl_ess=0.9, step=30)]
    log.write_text('\n'.join(json.dumps(r) for r in records))
    assert afl_comparison.ess(tmp_path) == pytest.approx(
        dict(min=0.6, mean=0.8))
    assert afl_comparison.ess(tmp_path / 'nothing') is None
