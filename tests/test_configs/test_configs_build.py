"""Every shipped config loads with MMEngine's Config and its model builds
with MMPose's registry, as ``mim train`` would build it.

Only the build: no forward pass (the paper-size models would make this
slow); the method's own tests run the models they are about.
"""
from pathlib import Path

import pytest
from mmengine.config import Config
from mmpose.registry import MODELS

import mmpose_afl  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
CONFIGS = sorted(
    p.relative_to(REPO).as_posix() for p in (REPO / 'configs').rglob('*.py')
    if '_base_' not in p.relative_to(REPO / 'configs').parts)


def test_every_method_folder_is_collected():
    folders = {
        p.name
        for p in (REPO / 'configs').iterdir()
        if p.is_dir() and p.name != '_base_'
    }
    assert folders and folders == {Path(c).parts[1] for c in CONFIGS}


@pytest.mark.parametrize('config', CONFIGS)
def test_config_builds(config):
    cfg = Config.fromfile(str(REPO / config))
    model = MODELS.build(cfg.model)
    assert type(model).__name__ == cfg.model.type
    head = cfg.model.get('head') or {}
    assert type(model.head).__name__ == head.get('type')
    loss = head.get('loss')
    if isinstance(loss, dict) and hasattr(model.head, 'loss_module'):
        assert type(model.head.loss_module).__name__ == loss['type']
