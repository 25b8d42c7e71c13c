"""AFL's adapter of regression heads (see ``base.py``)."""
import torch
from torch import Tensor, nn

from .base import KeypointAdapter, Keypoints, _names, _shape


class RegressionAdapter(KeypointAdapter):
    """Regression heads: ``RLEHead`` with ``RLELoss`` (``(pred, sigma,
    target, target_weight)``) and ``RegressionHead`` with ``SmoothL1Loss``
    (``(pred, target, target_weight)``). Keypoints: the coordinates,
    normalised to [0, 1] by MMPose's ``RegressionLabel``, times the input
    size ``(W, H)`` read from the head's decoder (or given): input pixels.

    Args:
        owner (str): The loss named in errors.
        base_loss (nn.Module): The built base loss.
        input_size (tuple, optional): The model input ``(W, H)``; ``None``
            reads it from the head's decoder. Defaults to ``None``
    """
    family = 'regression'
    what = 'coordinates'
    nonfinite_what = 'coordinate'
    head_types = ('RegressionHead', 'RLEHead', 'IntegralRegressionHead',
                  'DSNTHead')
    base_types = ('RLELoss', 'SmoothL1Loss')
    head_k_field = 'num_joints'

    def __init__(self,
                 owner: str,
                 base_loss: nn.Module,
                 input_size=None) -> None:
        super().__init__(owner, base_loss)
        valid = (
            isinstance(input_size, (tuple, list)) and len(input_size) == 2
            and all(isinstance(v, (int, float)) and v > 0 for v in input_size))
        if input_size is not None and not valid:
            raise ValueError(
                f'{owner}: `input_size` must be None (read from the '
                "head's decoder) or the model input (W, H), e.g. (192, "
                f'256); got {input_size!r}')
        self.input_size = None if input_size is None else tuple(input_size)
        self.with_sigma = 'RLELoss' in _names(type(base_loss))
        if self.with_sigma and not base_loss.size_average:
            self.reduction = 'sum'

    def bind_head(self, head: nn.Module, num_keypoints: int) -> None:
        super().bind_head(head, num_keypoints)
        if self.with_sigma != ('RLEHead' in _names(type(head))):
            raise ValueError(
                f'{self.owner}: `base_loss` {type(self.base_loss).__name__}'
                f' does not fit {type(head).__name__}: RLELoss is the loss '
                'of RLEHead (which predicts sigma), SmoothL1Loss that of '
                'RegressionHead')
        size = getattr(getattr(head, 'decoder', None), 'input_size', None)
        if size is None and self.input_size is None:
            raise ValueError(
                f'{self.owner}: the input size is unknown: give the head '
                f'({type(head).__name__}) a `decoder` (RegressionLabel with '
                '`input_size`) or the loss an `input_size`')
        if size is not None:
            if self.input_size is not None and self.input_size != \
                    tuple(size):
                raise ValueError(
                    f'{self.owner}: `input_size` {self.input_size} differs '
                    f"from the head's decoder.input_size {tuple(size)}")
            self.input_size = tuple(size)

    def _split(self, inputs):
        """(pred, sigma or None, target, target_weight or None)."""
        count = 4 if self.with_sigma else 3
        if not 2 + self.with_sigma <= len(inputs) <= count:
            raise ValueError(
                f'{self.owner}: {type(self.base_loss).__name__} takes ' +
                ('(pred, sigma, target, target_weight)' if self.
                 with_sigma else '(output, target, target_weight)') +
                f', got {len(inputs)} arguments')
        inputs = list(inputs) + [None] * (count - len(inputs))
        if self.with_sigma:
            pred, sigma, target, weight = inputs
        else:
            (pred, target, weight), sigma = inputs, None
        shapes = {'pred': pred, 'target': target, 'sigma': sigma}
        if not isinstance(pred, Tensor) or not all(
                isinstance(t, Tensor) and t.dim() == 3 and t.shape[-1] == 2
                and t.shape == pred.shape
                for t in shapes.values() if t is not None):
            raise ValueError(
                f'{self.owner}: ' +
                ', '.join(f'`{n}` {_shape(t)}'
                          for n, t in shapes.items() if t is not None) +
                ' must be coordinates [B, K, 2] of '
                'the same shape (what RLEHead / RegressionHead pass); for '
                'heatmaps use AFLHeatmapLoss, for SimCC AFLSimCCLoss')
        batch, k = pred.shape[:2]
        if weight is not None and weight.shape not in ((batch, k),
                                                       (batch, k, 1),
                                                       (batch, k, 2)):
            raise ValueError(
                f'{self.owner}: `target_weight` {_shape(weight)} must be '
                f'[B, K, 1] = {[batch, k, 1]} or [B, K]')
        return pred, sigma, target, weight

    def base_inputs(self, *inputs: Tensor):
        self._split(inputs)
        return tuple(inputs), {}

    def keypoints(self, *inputs: Tensor) -> Keypoints:
        pred, sigma, target, weight = self._split(inputs)
        if self.input_size is None:
            raise ValueError(
                f'{self.owner}: the input size is unknown: AFLCriticHook '
                "reads it from the head's decoder before training; give "
                '`input_size` to use the loss without the hook')
        batch, k = pred.shape[:2]
        labelled = torch.ones(batch, k, dtype=torch.bool,
                              device=pred.device) if weight is None else \
            (weight.reshape(batch, k, -1) > 0).all(-1)
        scale = pred.new_tensor(self.input_size, dtype=torch.float32)
        raw = (pred, target) if sigma is None else (pred, sigma, target)
        return Keypoints(pred.detach().float() * scale, labelled,
                         target.detach().float() * scale, labelled, labelled,
                         self.input_size, raw)
