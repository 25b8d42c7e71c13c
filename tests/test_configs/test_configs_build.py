"""Every shipped config loads with MMEngine's Config and its model builds
with MMPose's registry, as ``mim train`` would build it, once per config;
the model then meets its method's expectations (:data:`EXPECTATIONS`): the
loss and its settings, the critic, the paper's recipe, and a forward pass
on zeros for the heads this project adds (``SigmoidHeatmapHead``,
``SAHRHead``, ``AESAHRHead``) and for the synthetic baselines.

The paper-size models on MMPose's own heads run no forward pass here (it
would make this slow); the method's own tests run the models they are
about.
"""
from fnmatch import fnmatch
from pathlib import Path

import pytest
import torch
from mmengine.config import Config
from mmpose.models.heads import HeatmapHead
from mmpose.registry import MODELS

import mmpose_afl  # noqa: F401
from mmpose_afl.models.losses import GAUSSIAN_SUPPORT_FLOOR
from tests.e2e import REPO

CONFIGS = sorted(
    p.relative_to(REPO).as_posix() for p in (REPO / 'configs').rglob('*.py')
    if '_base_' not in p.relative_to(REPO / 'configs').parts)
# FoWKAL's ablation (paper Table 2 rows, and Table 3's WAHR weighting):
# row -> (loss type, kaf, weighting)
ABLATION = {
    'mse': ('KeypointMSELoss', None, None),  # (a)
    'awing': ('AdaptiveWingLoss', None, None),  # (b)
    'heuristic': ('FoWKALLoss', 'heuristic', None),  # (c)
    'kal': ('FoWKALLoss', 'learned', None),  # (d)
    'heuristic-fwahr': ('FoWKALLoss', 'heuristic', 'fwahr'),  # (e)
    'fowkal': ('FoWKALLoss', 'learned', 'fwahr'),  # (f)
    'heuristic-wahr': ('FoWKALLoss', 'heuristic', 'wahr'),  # Table 3
    'kal-wahr': ('FoWKALLoss', 'learned', 'wahr'),  # Table 3
}
FOWKAL_PAPER = ('configs/fowkal/td-hm_hrnet-w32_dark-*-8xb64-210e_'
                'coco-wholebody-256x192.py')


def _ablation_row(config: str) -> str:
    return Path(config).name.split('_dark-')[1].split('-8xb64')[0]


def _hook_types(cfg) -> list:
    return [h['type'] for h in cfg.get('custom_hooks', [])]


def _heatmap_shape(model, height: int, width: int) -> tuple:
    with torch.no_grad():
        heatmaps = model.eval()(
            torch.zeros(1, 3, height, width), None, mode='tensor')
    return tuple(heatmaps.shape)


def _expect_afl(config, cfg, model):
    """The AFL loss of the head's family (heatmap, SimCC, regression), a
    critic sized to the head's keypoints that is not part of the pose
    model, and the hook that trains it."""
    from mmpose_afl.models.losses.afl_loss import (AdversarialFocalLoss,
                                                   AFLHeatmapLoss)
    loss = model.head.loss_module
    family = {'rtmpose-': 'AFLSimCCLoss', 'td-reg_': 'AFLRegressionLoss'}
    expected = next(
        (v for k, v in family.items() if Path(config).name.startswith(k)),
        'AFLHeatmapLoss')
    assert type(loss).__name__ == expected
    assert isinstance(loss, AdversarialFocalLoss)
    assert isinstance(loss, AFLHeatmapLoss) == (expected == 'AFLHeatmapLoss')
    expected_k = 16 if 'mpii' in config else (
        133 if 'wholebody' in config else 17)
    head_k = getattr(model.head, 'out_channels', None) or model.head.num_joints
    assert loss.critic.num_keypoints == head_k == expected_k
    assert 'AFLCriticHook' in _hook_types(cfg)
    assert not any('critic' in k for k in model.state_dict())


def _expect_afl_cond(config, cfg, model):
    from mmpose_afl.models.afl_conditional_critic import AFLConditionalCritic
    loss = model.head.loss_module
    assert isinstance(loss.critic, AFLConditionalCritic)
    assert loss.critic.num_keypoints == (133 if 'wholebody' in config else 17)
    assert loss.difficulty == 'anchored' and loss.drift_weight == 1.
    assert 'AFLCriticHook' in _hook_types(cfg)


def _expect_loss_weighted(config, cfg, model):
    assert type(model.head.loss_module).__name__ == 'LossWeightedHeatmapLoss'
    assert model.head.loss_module.gamma == 1.
    assert 'AFLCriticHook' not in _hook_types(cfg)


def _expect_fowkal_paper(config, cfg, model):
    """The ablation row's loss on the stock DARK recipe, with the per-part
    metric; the KAL factors are state only when they are learned."""
    loss_type, kaf, weighting = ABLATION[_ablation_row(config)]
    loss = model.head.loss_module
    assert type(loss).__name__ == loss_type
    assert model.head.out_channels == 133
    assert cfg.model.test_cfg.flip_test
    assert cfg.model.head.decoder.unbiased
    assert cfg.val_evaluator.type == 'CocoWholeBodyPartMetric'
    if loss_type == 'FoWKALLoss':
        assert (loss.kaf_mode, loss.weighting) == (kaf, weighting)
        assert loss.num_keypoints == model.head.out_channels
        assert ('head.loss_module.kaf_logits' in model.state_dict()) == (
            kaf == 'learned')


def _expect_hsm(config, cfg, model):
    assert type(model.head).__name__ == 'SigmoidHeatmapHead'
    assert isinstance(model.head, HeatmapHead)
    loss = model.head.loss_module
    assert type(loss).__name__ == 'HSMLoss'
    assert (loss.beta, loss.gamma) == (1.0, 2.0)
    assert cfg.model.test_cfg.flip_test
    num_keypoints = cfg.model.head.out_channels
    assert _heatmap_shape(model, 128, 96) == (1, num_keypoints, 32, 24)


def _expect_sahr(config, cfg, model):
    """The paper's SAHR + WAHR settings, the scale target the name says,
    and the Gaussian support of MMPose's encoders (exp(-4.5))."""
    assert type(model.head).__name__ == 'SAHRHead'
    assert isinstance(model.head, HeatmapHead)
    assert type(model.head.loss_module).__name__ == 'WAHRLoss'
    assert model.head.loss_module.gamma == 0.01
    assert model.head.scale_layers[3].kernel_size == (9, 9)
    assert model.head.scale_target == ('taylor' if 'sahr-taylor-wahr' in config
                                       else 'power')
    assert model.head.support_floor == GAUSSIAN_SUPPORT_FLOOR
    assert model.head.loss_module.support_floor == GAUSSIAN_SUPPORT_FLOOR
    assert cfg.model.test_cfg.flip_test
    num_keypoints = cfg.model.head.out_channels
    assert _heatmap_shape(model, 128, 96) == (1, num_keypoints, 32, 24)


def _expect_bottom_up(config, cfg, model):
    """Bottom-up SAHR and its baseline: the trainable AE head and codec,
    the flip test, heatmaps at a quarter of the input."""
    head = 'AESAHRHead' if 'sahr' in config else 'MaskedAEHead'
    loss = 'WAHRLoss' if 'sahr' in config else 'KeypointMSELoss'
    assert type(model.head).__name__ == head
    assert type(model.head.loss_module.keypoint_loss).__name__ == loss
    assert cfg.model.test_cfg.flip_test
    pipeline = cfg.train_dataloader.dataset.pipeline
    encoder = next(t['encoder'] for t in pipeline
                   if t['type'] == 'GenerateTarget')
    assert encoder['type'] == 'AssociativeEmbeddingLabels'
    if head == 'AESAHRHead':
        assert model.head.loss_module.keypoint_loss.gamma == 0.01
        assert model.head.scale_layers[3].kernel_size == (9, 9)
        assert model.head.scale_target == ('taylor'
                                           if 'taylor' in config else 'power')
    assert [i // 4
            for i in encoder['input_size']] == list(encoder['heatmap_size'])
    if 'hrnet' in config:
        return  # (its first CPU forward alone takes seconds)
    with torch.no_grad():
        heatmaps, tags = model.eval()(
            torch.zeros(1, 3, 64, 96), None, mode='tensor')
    assert heatmaps.shape == tags.shape == (1, 17, 16, 24)


def _expect_baseline(config, cfg, model):
    """The synthetic sets' top-down baselines: ground-truth boxes, the
    metric's annotations under the data root, heatmaps of every keypoint."""
    assert cfg.val_dataloader.dataset.bbox_file is None
    assert cfg.val_evaluator.ann_file.startswith(
        cfg.val_dataloader.dataset.data_root)
    num_keypoints = 133 if 'wholebody' in config else 17
    assert _heatmap_shape(model, 128, 96) == (1, num_keypoints, 32, 24)


#: (pattern of config paths, the method's expectations of their models)
EXPECTATIONS = (
    ('configs/afl/*', _expect_afl),
    ('configs/afl_cond/*', _expect_afl_cond),
    ('configs/loss_weighted/*', _expect_loss_weighted),
    (FOWKAL_PAPER, _expect_fowkal_paper),
    ('configs/hsm/*', _expect_hsm),
    ('configs/sahr/td-*', _expect_sahr),
    ('configs/sahr/ae_*', _expect_bottom_up),
    ('configs/baseline/ae_*', _expect_bottom_up),
    ('configs/baseline/td-hm_*', _expect_baseline),
)


def test_every_method_folder_is_collected():
    folders = {
        p.name
        for p in (REPO / 'configs').iterdir()
        if p.is_dir() and p.name != '_base_'
    }
    assert folders and folders == {Path(c).parts[1] for c in CONFIGS}


def test_every_expectation_applies():
    for pattern, _ in EXPECTATIONS:
        assert any(fnmatch(c, pattern) for c in CONFIGS), pattern
    paper = [c for c in CONFIGS if fnmatch(c, FOWKAL_PAPER)]
    assert sorted(map(_ablation_row, paper)) == sorted(ABLATION)


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
    for pattern, expect in EXPECTATIONS:
        if fnmatch(config, pattern):
            expect(config, cfg, model)
