"""Shared fixtures: tiny synthetic COCO and COCO-WholeBody datasets, made
once per test session with the project's own generator; losses run
eagerly here (tests/test_compiled.py switches compiling on)."""
import os
from pathlib import Path

import pytest

# hundreds of small loss instances would each compile once: eager is the
# reference the compiled path is tested against (inherited by the e2e runs)
os.environ.setdefault('TORCH_COMPILE_DISABLE', '1')


def _generate(tmp_path_factory, kind: str) -> Path:
    from mmpose_afl.datasets.synthetic import generate_dataset
    root = tmp_path_factory.mktemp(f'synthetic_{kind}')
    generate_dataset(root, kind=kind, num_train=8, num_val=4, seed=0)
    return root


@pytest.fixture(scope='session')
def synthetic_coco(tmp_path_factory) -> Path:
    """Root of a generated COCO-format set (8 train, 4 val images)."""
    return _generate(tmp_path_factory, 'coco')


@pytest.fixture(scope='session')
def synthetic_wholebody(tmp_path_factory) -> Path:
    """Root of a generated COCO-WholeBody set (8 train, 4 val images)."""
    return _generate(tmp_path_factory, 'wholebody')
