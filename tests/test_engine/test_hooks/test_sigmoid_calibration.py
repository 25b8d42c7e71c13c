"""SigmoidHeadCalibrationHook and the shared re-calibration maths
(docs/finetune.md): a stock checkpoint loaded with ``load_from`` gets its
final conv mapped to logits; checkpoints of the calibrated run do not."""
import math

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from mmpose.registry import MODELS
from torch import nn

from mmpose_afl.engine.hooks import SigmoidHeadCalibrationHook
from mmpose_afl.models.heads.sigmoid_calibration import (
    calibration_coefficients, recalibrate_final_conv)
from tests.e2e import REPO, data_options
from tests.test_configs.test_finetune import (BASELINE, SYNTHETIC, predict,
                                              stock_model, val_batch)

# by hand: sigmoid(-ln 9) = 1 / (1 + 9) = 0.1, sigmoid(ln 9) = 0.9
A, B = 2 * math.log(9), -math.log(9)


def test_recalibrate_final_conv_on_a_tiny_conv():
    conv = nn.Conv2d(2, 3, 1)
    w = torch.tensor([[1., -2.], [0.5, 0.], [0., 3.]]).view(3, 2, 1, 1)
    bias = torch.tensor([0., 0.25, -1.])
    checkpoint = dict(
        meta={},
        state_dict={
            'head.final_layer.weight': w.clone(),
            'head.final_layer.bias': bias.clone(),
            'backbone.x': torch.ones(1)
        })
    assert calibration_coefficients(0.1) == pytest.approx((A, B))
    assert recalibrate_final_conv(checkpoint) == 'head.final_layer'
    state = checkpoint['state_dict']
    torch.testing.assert_close(state['head.final_layer.weight'], A * w)
    torch.testing.assert_close(state['head.final_layer.bias'],
                               torch.tensor([B, A * 0.25 + B, -A + B]))
    assert torch.equal(state['backbone.x'], torch.ones(1))
    # the conv's output y becomes A y + B: background 0 -> 0.1, 1 -> 0.9
    x = torch.tensor([[1., 1.], [0., 0.]]).view(2, 2, 1, 1)
    conv.load_state_dict(dict(weight=w, bias=bias))
    y = conv(x)
    conv.load_state_dict({
        k.split('.')[-1]: v
        for k, v in state.items() if 'final' in k
    })
    torch.testing.assert_close(conv(x), A * y + B)
    assert torch.sigmoid(torch.tensor(B)).item() == pytest.approx(0.1)
    assert torch.sigmoid(torch.tensor(A + B)).item() == pytest.approx(0.9)
    with pytest.raises(ValueError, match='final conv'):
        recalibrate_final_conv(dict(state_dict={'backbone.x': w}))


def test_hook_refuses_a_model_it_cannot_calibrate():
    with pytest.raises(ValueError, match='SigmoidHeadCalibrationHook.*prior'):
        SigmoidHeadCalibrationHook(prior=0.5)
    baseline = MODELS.build(
        Config.fromfile(str(REPO / BASELINE['coco'])).model)
    with pytest.raises(
            ValueError,
            match='SigmoidHeadCalibrationHook expects'
            '.*SigmoidHeatmapHead.*got HeatmapHead'):
        SigmoidHeadCalibrationHook.check_model(baseline)
    cfg = Config.fromfile(str(REPO / SYNTHETIC['hsm'][0])).model
    cfg.head.final_layer = None
    with pytest.raises(
            ValueError,
            match='SigmoidHeadCalibrationHook expects'
            '.*conv.*got Identity'):
        SigmoidHeadCalibrationHook.check_model(MODELS.build(cfg))


class Observe(Hook):
    """Records the final conv and the val predictions at ``before_train``
    (after the runner loaded its checkpoint, before the first step)."""
    priority = 'VERY_LOW'

    def __init__(self, batch):
        self.batch = batch

    def before_train(self, runner):
        model = runner.model.eval()
        self.final = {
            k: v.clone()
            for k, v in model.head.final_layer.state_dict().items()
        }
        self.preds = predict(model, self.batch)
        model.test_cfg['output_heatmaps'] = False
        model.train()


def run(data_root, work_dir, load_from, resume=False):
    cfg = Config.fromfile(str(REPO / SYNTHETIC['hsm'][0]))
    cfg.merge_from_dict(
        dict(item.split('=', 1) for item in data_options(data_root)))
    ft = Config.fromfile(str(REPO / SYNTHETIC['hsm'][2]))
    cfg.custom_hooks = [
        h for h in ft.custom_hooks if h.type == 'SigmoidHeadCalibrationHook'
    ]
    cfg.load_from, cfg.resume = str(load_from), resume
    cfg.train_cfg = dict(by_epoch=True, max_epochs=1)
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.train_dataloader.update(
        batch_size=4, num_workers=0, persistent_workers=False)
    cfg.train_dataloader.dataset.indices = 4  # 1 iteration
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=1)
    cfg.work_dir = str(work_dir)
    runner = Runner.from_cfg(cfg)
    observe = Observe(val_batch('coco', data_root))
    runner.register_hook(observe)
    runner.train()
    return runner, observe


def test_load_from_a_stock_checkpoint_calibrates_once(synthetic_coco,
                                                      tmp_path):
    """Through a real Runner: the stock checkpoint's head arrives as
    A y + B (iteration-0 sigmoid heatmaps = sigmoid(A * stock + B), flip
    test on, by hand from the stock model); the run's own checkpoint is
    marked, and neither resuming from it nor ``load_from`` it changes its
    final conv again, nor a SigmoidHeatmapHead checkpoint without the
    mark."""
    stock = stock_model('coco')
    path = tmp_path / 'stock.pth'
    torch.save(dict(meta=dict(), state_dict=stock.state_dict()), path)
    runner, seen = run(synthetic_coco, tmp_path / 'ft', path)
    final = stock.head.final_layer
    torch.testing.assert_close(seen.final['weight'], A * final.weight)
    torch.testing.assert_close(seen.final['bias'], A * final.bias + B)
    theirs = predict(stock, val_batch('coco', synthetic_coco))
    for ours, y in zip(seen.preds, theirs):
        torch.testing.assert_close(
            ours.pred_fields.heatmaps,
            (A * y.pred_fields.heatmaps + B).sigmoid(),
            rtol=1e-4,
            atol=1e-5)

    saved_path = tmp_path / 'ft' / 'epoch_1.pth'
    saved = torch.load(saved_path, weights_only=False)
    assert saved['meta']['sigmoid_head_calibrated'] is True
    trained = {
        k[len('head.final_layer.'):]: v
        for k, v in saved['state_dict'].items()
        if k.startswith('head.final_layer.')
    }
    assert not torch.equal(trained['bias'], seen.final['bias'])  # 1 step
    for resume in (True, False):
        again = run(
            synthetic_coco,
            tmp_path / f'again{resume}',
            saved_path,
            resume=resume)[1]
        for key, value in trained.items():
            assert torch.equal(again.final[key], value), (resume, key)

    # a SigmoidHeatmapHead checkpoint without the mark (trained from
    # scratch): its saved config names the head
    del saved['meta']['sigmoid_head_calibrated']
    before = saved['state_dict']['head.final_layer.bias'].clone()
    runner._resume = False
    SigmoidHeadCalibrationHook().after_load_checkpoint(runner, saved)
    assert torch.equal(saved['state_dict']['head.final_layer.bias'], before)
