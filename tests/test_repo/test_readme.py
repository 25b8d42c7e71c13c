"""The README as a user reads it: every per-method config of "Your own data
or a stock config" (and those of docs/afl.md's "AFL on any head") builds
exactly as pasted, and its data block really points MMPose's datasets and
metrics at the data."""
import os
import re

import pytest
from mmengine.config import Config

from tests.e2e import REPO

# (document, section) -> {subsection title: (head, loss) the pasted
# config must build}
SECTIONS = {
    ('README.md', '## Your own data or a stock config'): {
        'AFL on HRNet-w32 (COCO, 17 keypoints)':
        ('HeatmapHead', 'AFLHeatmapLoss'),
        'FoWKAL on HRNet-w32 + DARK (COCO-WholeBody, 133 keypoints)':
        ('HeatmapHead', 'FoWKALLoss'),
        'SAHR + WAHR on HRNet-w32 (COCO)': ('SAHRHead', 'WAHRLoss'),
        'HSM on HRNet-w32 (COCO)': ('SigmoidHeatmapHead', 'HSMLoss'),
    },
    ('docs/afl.md', '## AFL on any head'): {
        'AFL on RTMPose-t (SimCC, COCO)': ('RTMCCHead', 'AFLSimCCLoss'),
        'AFL on RLE ResNet-50 (regression, COCO)':
        ('RLEHead', 'AFLRegressionLoss'),
    }
}
SNIPPETS = [(doc, heading, title)
            for (doc, heading), titles in SECTIONS.items() for title in titles]


def snippets(doc: str, heading: str) -> dict:
    """``{subsection title: python block}`` of a section of ``doc``
    (subsections without a python block left out)."""
    text = (REPO / doc).read_text()
    section = text.split(heading + '\n', 1)[1].split('\n## ', 1)[0]
    blocks = re.split(r'^### (.+?)\n', section, flags=re.M)[1:]
    return {
        title: re.search(r'```python\n(.*?)```', body, re.S).group(1)
        for title, body in zip(blocks[::2], blocks[1::2])
        if '```python' in body
    }


@pytest.mark.parametrize('doc,heading', list(SECTIONS))
def test_every_pasteable_config_is_tested(doc, heading):
    assert set(snippets(doc, heading)) == set(SECTIONS[doc, heading])


@pytest.mark.parametrize('doc,heading,title', SNIPPETS)
def test_pasted_config_builds_and_reads_the_data(doc, heading, title, tmp_path,
                                                 monkeypatch, synthetic_coco,
                                                 synthetic_wholebody):
    from mmpose.registry import DATASETS, METRICS, MODELS

    import mmpose_afl  # noqa: F401

    path = tmp_path / 'my_config.py'
    path.write_text(snippets(doc, heading)[title])
    cfg = Config.fromfile(str(path))
    head, loss = SECTIONS[doc, heading][title]
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
