"""The package as a user imports it: ``custom_imports`` registers every
module in a clean interpreter, the import fails with what to install on an
unsupported stack, and checkpoints with numpy metadata load weights-only."""
import subprocess
import sys

import pytest
import torch

from tests.e2e import REPO

BASELINE = 'configs/baseline/td-hm_res18_1xb16-20e_synthetic-coco-128x96.py'
# every name the project registers into MMPose's registries
REGISTERED = {
    'AESAHRHead', 'AFLConditionalCritic', 'AFLCritic', 'AFLCriticHook',
    'AFLHeatmapLoss', 'AFLRegressionLoss', 'AFLSimCCLoss',
    'AssociativeEmbeddingLabels', 'CocoWholeBodyPartMetric',
    'Float32HeadOutputsHook', 'FoWKALLoss', 'HSMLoss',
    'LossWeightedHeatmapLoss', 'MaskedAEHead', 'ReseedBeforeInitHook',
    'SAHRHead', 'SigmoidHeadCalibrationHook', 'SigmoidHeatmapHead',
    'StratifiedCocoMetric', 'StratifiedCocoWholeBodyMetric', 'WAHRLoss'
}


def test_custom_imports_register_the_project_in_a_clean_interpreter():
    # What `custom_imports` in a config does, in a fresh process: nothing of
    # mmpose_afl is imported before MMEngine reads the config.
    code = f"""
import sys
from mmengine.config import Config
assert 'mmpose_afl' not in sys.modules
cfg = Config.fromfile({str(REPO / BASELINE)!r})
assert 'mmpose_afl' in sys.modules
from mmpose.registry import HOOKS, KEYPOINT_CODECS, METRICS, MODELS
ours = sorted(name for reg in (MODELS, HOOKS, METRICS, KEYPOINT_CODECS)
              for name, cls in reg.module_dict.items()
              if cls.__module__.startswith('mmpose_afl'))
print(','.join(ours))
"""
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True,
                         cwd='/')
    assert out.returncode == 0, out.stderr
    registered = set(filter(None, out.stdout.strip().split(',')))
    assert registered == REGISTERED


def test_import_fails_with_what_to_install(monkeypatch):
    from mmpose_afl import version
    monkeypatch.setitem(version.REQUIRED, 'mmpose', ('9.0.0', '10.0.0'))
    with pytest.raises(ImportError) as err:
        version.check_dependencies()
    message = str(err.value)
    assert 'mmpose>=9.0.0,<10.0.0' in message
    assert 'found mmpose 1.3' in message
    assert 'tools/install_stack.sh' in message
    assert 'docs/installation.md' in message


def test_import_fails_when_mmcv_is_too_new(monkeypatch):
    import mmcv

    from mmpose_afl import version
    monkeypatch.setattr(mmcv, '__version__', '2.2.0')
    with pytest.raises(ImportError, match=r'mmcv>=2.0.1,<2.2.0, found mmcv'):
        version.check_dependencies()


def test_import_fails_on_an_unsupported_torch():
    # torch is checked like the OpenMMLab packages: what a user on torch
    # 1.13 would see instead of an AttributeError deeper in
    code = ("import torch; torch.__version__ = '1.13.1'\n"
            'import mmpose_afl')
    out = subprocess.run([sys.executable, '-c', code],
                         capture_output=True,
                         text=True)
    assert out.returncode != 0
    assert ('ImportError: mmpose_afl needs torch>=2.1.0,<3.0.0, found '
            'torch 1.13.1') in out.stderr
    assert 'docs/installation.md' in out.stderr


@pytest.mark.parametrize('found,ok', [('2.1.0', True), ('2.1.2+cu121', True),
                                      ('2.14.1+cpu', True), ('2.0.1', False),
                                      ('3.0.0', False)])
def test_torch_range_ends(monkeypatch, found, ok):
    from mmpose_afl import version
    monkeypatch.setattr(torch, '__version__', found)
    if ok:
        version.check_dependencies()
    else:
        with pytest.raises(ImportError, match=f'found torch {found}'):
            version.check_dependencies()


def test_numpy_dtypes_allowed_where_torch_has_an_allow_list(tmp_path):
    # torch >= 2.4 has the weights-only allow-list and gets the numpy
    # dtypes; on older torch there is none, and a checkpoint with numpy
    # metadata loads the way MMEngine loads it there (weights_only=False)
    import numpy as np

    from mmpose_afl.checkpoint_globals import allow_numpy_dtypes
    has_list = hasattr(torch.serialization, 'add_safe_globals')
    assert allow_numpy_dtypes() is has_list
    path = tmp_path / 'ckpt.pth'
    torch.save({'meta': {'sigmas': np.ones(17, np.float32)}}, path)
    from mmengine.runner import load_checkpoint  # noqa: F401 (importable)
    from mmengine.runner.checkpoint import _load_checkpoint
    loaded = _load_checkpoint(str(path), map_location='cpu')
    assert loaded['meta']['sigmas'].dtype == np.float32


@pytest.mark.skipif(
    not hasattr(torch.serialization, 'add_safe_globals'),
    reason='torch < 2.4 has no weights-only allow-list to extend')
def test_checkpoint_metadata_loads_weights_only(tmp_path):
    # what every MMPose checkpoint's meta['dataset_meta'] holds (uint8
    # colours, float32 sigmas), saved and loaded as MMEngine does
    import numpy as np
    path = tmp_path / 'ckpt.pth'
    torch.save(
        {
            'meta': {
                'dataset_meta': {
                    'keypoint_colors': np.zeros((17, 3), np.uint8),
                    'sigmas': np.ones(17, np.float32)
                }
            },
            'state_dict': {
                'w': torch.ones(2)
            }
        }, path)
    code = f"""
import torch
from mmengine.runner.checkpoint import get_torch_safe_globals
IMPORT
with torch.serialization.safe_globals(get_torch_safe_globals()):
    ckpt = torch.load({str(path)!r}, weights_only=True)
print(ckpt['meta']['dataset_meta']['sigmas'].dtype)
"""
    plain = subprocess.run([sys.executable, '-c',
                            code.replace('IMPORT', '')],
                           capture_output=True,
                           text=True)
    assert plain.returncode != 0  # MMEngine's list alone rejects it
    assert 'numpy.dtypes' in plain.stderr
    ours = subprocess.run(
        [sys.executable, '-c',
         code.replace('IMPORT', 'import mmpose_afl')],
        capture_output=True,
        text=True)
    assert ours.returncode == 0, ours.stderr
    assert ours.stdout.strip() == 'float32'
