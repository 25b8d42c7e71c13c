"""Every method as a user runs it: one short ``mim train`` and a ``mim test``
of its checkpoint, and a resume of AFL, on the project's synthetic data.

The stack-independent smoke set: ``make test`` runs this file in the oldest
supported stack (docs/installation.md), where nothing else trains end to
end; the current stack's suite runs the same commands in the methods' own
test files.
"""
import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from tests.e2e import last_checkpoint, run_test, run_train, short_schedule

pytestmark = pytest.mark.e2e

# (config, data kind, a loss key its training log must hold)
METHODS = {
    'afl-heatmap':
    ('configs/afl/td-hm_res18_afl-1xb16-20e_synthetic-coco-128x96.py', 'coco',
     'loss_kpt'),
    'afl-simcc':
    ('configs/afl/rtmpose-t_afl-1xb16-20e_synthetic-coco-128x96.py', 'coco',
     'loss_kpt'),
    'afl-regression':
    ('configs/afl/td-reg_res18_rle-afl-1xb16-20e_synthetic-coco-128x96.py',
     'coco', 'loss_kpt'),
    'afl-cond':
    ('configs/afl_cond/td-hm_res18_afl-cond-1xb16-20e_synthetic-coco-'
     '128x96.py', 'coco', 'loss_kpt'),
    'fowkal': ('configs/fowkal/td-hm_res18_fowkal-1xb16-20e_synthetic-coco-'
               'wholebody-128x96.py', 'wholebody', 'loss_kpt'),
    'sahr-wahr-topdown':
    ('configs/sahr/td-hm_res18_sahr-wahr-1xb16-20e_synthetic-coco-128x96.py',
     'coco', 'loss_kpt'),
    'sahr-wahr-bottomup':
    ('configs/sahr/ae_res18_sahr-wahr-1xb8-40e_synthetic-coco-multi-scale-'
     '256x256.py', 'multi_scale', 'loss_kpt'),
    'hsm': ('configs/hsm/td-hm_res18_hsm-1xb16-20e_synthetic-coco-128x96.py',
            'coco', 'loss_kpt'),
}


@pytest.fixture
def data_root(request, synthetic_coco, synthetic_wholebody):
    kind = METHODS[request.param][1]
    if kind == 'multi_scale':
        return request.getfixturevalue('multi_scale_coco'), 'coco'
    return {
        'coco': synthetic_coco,
        'wholebody': synthetic_wholebody
    }[kind], kind


def _logged_losses(work_dir: Path) -> dict:
    """Every ``loss*`` scalar MMEngine logged (``vis_data/scalars.json``)."""
    found = {}
    for scalars in Path(work_dir).glob('*/vis_data/scalars.json'):
        for line in scalars.read_text().splitlines():
            for key, value in json.loads(line).items():
                if key.startswith('loss') and isinstance(value, float):
                    found.setdefault(key, []).append(value)
    return found


@pytest.mark.parametrize(
    'method,data_root', [(m, m) for m in METHODS], indirect=['data_root'])
def test_trains_and_tests(method, data_root, tmp_path):
    config, _, loss_key = METHODS[method]
    root, kind = data_root
    batch = 2 if 'multi-scale' in config else 4
    log = run_train(
        config,
        tmp_path / 'train',
        data_root=root,
        kind=kind,
        cfg_options=short_schedule(batch_size=batch))
    assert 'Epoch(train) [1]' in log and 'Epoch(val) [1]' in log
    losses = _logged_losses(tmp_path / 'train')
    assert loss_key in losses, sorted(losses)
    assert all(math.isfinite(v) for vs in losses.values() for v in vs)
    checkpoint = last_checkpoint(tmp_path / 'train')
    log = run_test(
        config,
        checkpoint,
        tmp_path / 'test',
        data_root=root,
        kind=kind,
        cfg_options=short_schedule())
    assert 'Epoch(test)' in log
    assert ('coco-wholebody/AP' if kind == 'wholebody' else 'coco/AP') in log


def test_afl_resumes_with_its_critic(synthetic_coco, tmp_path):
    config = METHODS['afl-heatmap'][0]
    work_dir = tmp_path / 'afl'
    run_train(
        config,
        work_dir,
        data_root=synthetic_coco,
        cfg_options=short_schedule(max_epochs=1))
    saved = torch.load(
        work_dir / 'epoch_1.pth', map_location='cpu', weights_only=False)
    critic_keys = [k for k in saved if 'critic' in k]
    assert critic_keys, sorted(saved)
    resumed = tmp_path / 'resumed'
    shutil.copytree(work_dir, resumed)
    (resumed / 'last_checkpoint').write_text(str(resumed / 'epoch_1.pth'))
    log = run_train(
        config,
        resumed,
        data_root=synthetic_coco,
        cfg_options=short_schedule(max_epochs=2),
        extra_args=['--resume'])
    assert 'resumed epoch: 1' in log
    assert 'Epoch(train) [1]' not in log and 'Epoch(train) [2]' in log
    assert last_checkpoint(resumed).name == 'epoch_2.pth'
