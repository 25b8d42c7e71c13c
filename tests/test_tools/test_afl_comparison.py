"""benchmarks/afl_comparison.py: the effective sample size read from a run's
log; the paired comparison is mmpose_afl.benchmark.paired's."""
import importlib.util
import json

import pytest

from mmpose_afl.benchmark import paired
from tests.e2e import REPO

spec = importlib.util.spec_from_file_location(
    'afl_comparison', REPO / 'benchmarks' / 'afl_comparison.py')
afl_comparison = importlib.util.module_from_spec(spec)
spec.loader.exec_module(afl_comparison)


def test_the_comparison_uses_the_shared_paired_rule():
    assert afl_comparison.paired is paired.paired  # tested in
    # tests/test_tools/test_bench_accuracy.py


def test_effective_sample_size_of_the_logged_windows(tmp_path):
    log = tmp_path / '20261126_000000' / 'vis_data' / 'scalars.json'
    log.parent.mkdir(parents=True)
    records = [
        dict(lr=1e-3, afl_ess=0.9, step=10),
        dict(lr=1e-3, afl_ess=0.6, step=20),
        dict(**{'coco/AP': 0.5}, step=20),
        dict(lr=1e-3, afl_ess=0.9, step=30)
    ]
    log.write_text('\n'.join(json.dumps(r) for r in records))
    assert afl_comparison.ess(tmp_path) == pytest.approx(
        dict(min=0.6, mean=0.8))
    assert afl_comparison.ess(tmp_path / 'nothing') is None
