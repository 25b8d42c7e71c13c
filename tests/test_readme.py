"""The README as a user reads it: every per-method config of "Your own data
or a stock config" builds exactly as pasted, and its data block really
points MMPose's datasets and metrics at the data."""
import os
import re

import pytest
from mmengine.config import Config

from tests.e2e import REPO

SECTION = '## Your own data or a stock config'
# README subsection title -> (head, loss) the pasted config must build
SNIPPETS = {
    'AFL on HRNet-w32 (COCO, 17 keypoints)': ('HeatmapHead',
                                              'AFLHeatmapLoss'),
    'FoWKAL on HRNet-w32 + DARK (COCO-WholeBody, 133 keypoints)':
    ('HeatmapHead', 'FoWKALLoss'),
    'SAHR + WAHR on HRNet-w32 (COCO)': ('SAHRHead', 'WAHRLoss'),
    'HSM on HRNet-w32 (COCO)': ('SigmoidHeatmapHead', 'HSMLoss'),
    'AFL on RTMPose-t (SimCC, COCO)': ('RTMCCHead', 'AFLSimCCLoss'),
}


def readme_snippets() -> dict:
    """``{subsection title: python block}`` of the README's section."""
    readme = (REPO / 'README.md').read_text()
    section = readme.split(SECTION, 1)[1].split('\n## ', 1)[0]
    return dict(
        re.findall(r'^### (.+?)\n.*?```python\n(.*?)```', section,
                   re.S | re.M))


def test_readme_has_a_snippet_per_method():
    assert set(readme_snippets()) == set(SNIPPETS)


@pytest.mark.parametrize('title', list(SNIPPETS))
def test_readme_snippet_builds_and_reads_the_data(title, tmp_path,
                                                  monkeypatch,
                                                  synthetic_coco,
                                                  synthetic_wholebody):
    import mmpose_afl  # noqa: F401
    from mmpose.registry import DATASETS, METRICS, MODELS

    path = tmp_path / 'my_config.py'
    path.write_text(readme_snippets()[title])
    cfg = Config.fromfile(str(path))
    head, loss = SNIPPETS[title]
    model = MODELS.build(cfg.model)
    assert type(model.head).__name__ == head
    assert type(model.head.loss_module).__name__ == loss
    assert cfg.model.backbone.init_cfg is None
    if loss.startswith('AFL'):
        assert [h['type'] for h in cfg.custom_hooks][-1] == 'AFLCriticHook'

    # the relative data_root as a user has it: data/... under the cwd
    (tmp_path / 'data').mkdir()
    os.symlink(synthetic_coco, tmp_path / 'data' / 'synthetic_coco')
    os.symlink(synthetic_wholebody,
               tmp_path / 'data' / 'synthetic_coco_wholebody')
    monkeypatch.chdir(tmp_path)
    for split, images in (('train', 8), ('val', 4), ('test', 4)):
        dataset = DATASETS.build(cfg[f'{split}_dataloader'].dataset)
        infos = [dataset.get_data_info(i) for i in range(len(dataset))]
        # every image of the split (val/test from gt boxes: bbox_file=None)
        assert len({info['img_id'] for info in infos}) == images
        assert all(os.path.isfile(info['img_path']) for info in infos)
    for split in ('val', 'test'):
        evaluator = cfg[f'{split}_evaluator']
        assert os.path.isfile(evaluator.ann_file)
        assert METRICS.build(evaluator) is not None
