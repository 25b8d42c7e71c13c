"""AFL's adapter of heatmap heads (see ``base.py``)."""
import inspect
from typing import Optional

import torch
from torch import Tensor, nn

from mmpose_afl.models.afl_critic import keypoint_centroids
from ..per_sample_loss import check_heatmap_shapes
from .base import KeypointAdapter, Keypoints, _shape


class HeatmapAdapter(KeypointAdapter):
    """Heatmap heads: ``(output, target, target_weights, mask,
    weight_target)`` as a heatmap head calls its loss; keypoints are the
    intensity-weighted centroids (:func:`keypoint_centroids`) in heatmap
    pixels. The centroid threshold applies to what the head outputs (for a
    head trained on logits, ``HSMLoss``, use a logit threshold such as 0).

    ``weight_target`` (SAHR passes its original heatmaps there) goes to a
    base loss whose ``forward`` takes it (``WAHRLoss``) and is dropped for
    any other, exactly as ``SAHRHead`` calls such a loss directly. MMPose's
    ``AdaptiveWingLoss`` and OHKM loss take no ``mask``: it is passed only
    when given.

    Args:
        owner (str): The loss named in errors.
        base_loss (nn.Module): The built base loss.
        centroid_threshold (float): Values below it do not count for the
            centroids; >= 0. Defaults to 0.1
    """
    head_types = ('HeatmapHead', 'CPMHead', 'MSPNHead', 'ViPNASHead',
                  'SAHRHead', 'SigmoidHeatmapHead')

    def __init__(self,
                 owner: str,
                 base_loss: nn.Module,
                 centroid_threshold: float = 0.1) -> None:
        super().__init__(owner, base_loss)
        if not centroid_threshold >= 0:
            raise ValueError(f'{owner}: `centroid_threshold` must be >= 0, '
                             f'got {centroid_threshold}')
        self.centroid_threshold = centroid_threshold
        self.takes_weight_target = 'weight_target' in inspect.signature(
            base_loss.forward).parameters

    def base_inputs(self,
                    output: Tensor,
                    target: Tensor,
                    target_weights: Optional[Tensor] = None,
                    mask: Optional[Tensor] = None,
                    weight_target: Optional[Tensor] = None):
        check_heatmap_shapes(self.owner, output, target, target_weights, mask)
        args = (output, target, target_weights) + (() if mask is None else
                                                   (mask, ))
        if weight_target is None or not self.takes_weight_target:
            return args, {}
        if weight_target.shape != output.shape:
            raise ValueError(
                f'{self.owner}: `weight_target` {_shape(weight_target)} '
                f'must have the shape of `output` {_shape(output)}')
        return args, dict(weight_target=weight_target)

    def keypoints(self,
                  output: Tensor,
                  target: Tensor,
                  target_weights: Optional[Tensor] = None,
                  mask: Optional[Tensor] = None,
                  weight_target: Optional[Tensor] = None) -> Keypoints:
        batch, k, height, width = output.shape
        weights = target_weights if (target_weights is not None
                                     and target_weights.dim() == 2) else None
        labelled = torch.ones(batch, k, dtype=torch.bool,
                              device=output.device) if weights is None \
            else weights > 0
        pred, pred_present = keypoint_centroids(output.detach(),
                                                self.centroid_threshold,
                                                weights)
        gt, gt_present = keypoint_centroids(target.detach(),
                                            self.centroid_threshold, weights)
        return Keypoints(pred, pred_present, gt, gt_present, labelled,
                         (width, height), (output, target))
