"""Re-calibrate a stock heatmap checkpoint for SigmoidHeatmapHead when the
runner loads it (``load_from``), so that an HSM fine-tune is a plain
``mim train`` (docs/finetune.md)."""
from typing import Dict

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpose.registry import HOOKS
from torch import nn

from ...models.heads.sigmoid_calibration import (calibration_coefficients,
                                                 recalibrate_final_conv)
from ...models.heads.sigmoid_heatmap_head import SigmoidHeatmapHead

# set in the meta of every checkpoint a run with this hook saves
CALIBRATED = 'sigmoid_head_calibrated'


@HOOKS.register_module()
class SigmoidHeadCalibrationHook(Hook):
    """Map the final conv of a loaded stock (MSE-trained) heatmap
    checkpoint to logits, ``logit = a y + b`` (MSE range [0, 1] ->
    sigmoid [prior, 1 - prior], same keypoints; ``recalibrate_final_conv``,
    shared with ``tools/recalibrate_sigmoid_head.py``).

    MMEngine's ``Runner.load_checkpoint`` calls ``after_load_checkpoint``
    before it loads the state dict into the model, so the checkpoint's
    ``state_dict`` is rewritten in place there. Without it a stock head read
    as logits starts the whole background at sigmoid 0.5, and HSM
    fine-tuned from it collapsed (docs/finetune.md).

    Checkpoints whose final conv already outputs logits are left alone,
    with an info log: when resuming (``--resume``), when the checkpoint's
    meta has ``sigmoid_head_calibrated`` (set in every checkpoint a run with
    this hook saves, and on the loaded checkpoint once re-calibrated, so it
    never runs twice on it), and when the config saved in the checkpoint
    has a ``SigmoidHeatmapHead`` (a checkpoint trained with it from
    scratch).

    Args:
        prior (float): The sigmoid the background (MSE output 0) gets, in
            (0, 0.5). Defaults to 0.1, SigmoidHeatmapHead's ``prior_prob``
        priority (str): Hook priority. Defaults to ``'NORMAL'``.
    """

    def __init__(self, prior: float = 0.1, priority: str = 'NORMAL') -> None:
        try:
            calibration_coefficients(prior)
        except ValueError as err:
            raise ValueError(f'SigmoidHeadCalibrationHook: {err}') from None
        self.prior = prior
        self.priority = priority

    @staticmethod
    def check_model(model: nn.Module) -> SigmoidHeatmapHead:
        """The model's SigmoidHeatmapHead, whose ``final_layer`` is a conv;
        a ``ValueError`` naming the hook otherwise."""
        if is_model_wrapper(model):
            model = model.module
        head = getattr(model, 'head', None)
        if not isinstance(head, SigmoidHeatmapHead):
            raise ValueError(
                'SigmoidHeadCalibrationHook expects a model whose `head` is '
                'a SigmoidHeatmapHead (model.head.type=\'SigmoidHeatmapHead\''
                f'), got {type(head).__name__}')
        if not isinstance(head.final_layer, nn.Conv2d):
            raise ValueError(
                'SigmoidHeadCalibrationHook expects the SigmoidHeatmapHead '
                'to end in a conv (model.head.final_layer=dict(kernel_size='
                f'1)), got {type(head.final_layer).__name__}')
        return head

    def before_run(self, runner) -> None:
        self.check_model(runner.model)

    def after_load_checkpoint(self, runner, checkpoint: Dict) -> None:
        self.check_model(runner.model)
        meta = checkpoint.get('meta') or {}
        if runner._resume:
            reason = 'resuming'
        elif meta.get(CALIBRATED):
            reason = f'its meta has {CALIBRATED}=True'
        elif 'SigmoidHeatmapHead' in str(meta.get('cfg', '')):
            reason = 'it was saved from a SigmoidHeatmapHead model'
        else:
            reason = None
        if reason is not None:
            runner.logger.info('SigmoidHeadCalibrationHook: checkpoint left '
                               f'as is ({reason})')
            return
        prefix = recalibrate_final_conv(checkpoint, self.prior)
        if 'state_dict' in checkpoint:
            checkpoint.setdefault('meta', {})[CALIBRATED] = True
        a, b = calibration_coefficients(self.prior)
        runner.logger.info(
            f'SigmoidHeadCalibrationHook: re-calibrated {prefix} of the '
            f'loaded checkpoint to logits, logit = {a:.4f} y + ({b:.4f})')

    def before_save_checkpoint(self, runner, checkpoint: Dict) -> None:
        checkpoint.setdefault('meta', {})[CALIBRATED] = True
