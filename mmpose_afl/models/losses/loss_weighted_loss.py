"""Loss-proportional weighting: any heatmap loss, re-weighted per sample by
its own detached loss (docs/hard_examples.md). AFL with the critic replaced
by the loss itself, the simplest hard-example baseline AFL has to beat."""
import math
from typing import Optional

import torch
from mmpose.registry import MODELS
from torch import Tensor

from .afl_adapters import HeatmapAdapter
from .reweighted_loss import ReweightedLoss


@MODELS.register_module()
class LossWeightedHeatmapLoss(ReweightedLoss):
    """A heatmap loss re-weighted per sample by its own loss. With ``L_b``
    the base loss of sample ``b`` (with the base loss's normalisation and
    ``loss_weight``) and ``B`` the batch size::

        w_b  = L_b^gamma / mean_b'(L_b'^gamma)
        loss = loss_weight * (1/B) sum_b stopgrad(w_b) * L_b

    This is :class:`AFLHeatmapLoss` with ``difficulty_b = L_b^gamma`` in
    place of the critic's: the per-sample base loss, the weighting, the
    normalisation to mean 1 per batch and the reduction are the same code
    (:class:`ReweightedLoss`), so a difference
    between the two measures the critic, nothing else. No critic, no hook:
    it trains with a stock config and needs no ``AFLCriticHook``.

    **Decisions.** ``gamma = 1`` by default: the weight is then the sample's
    share of the batch loss, the direct analogue of Focal Loss's
    ``(1 - p_t)^gamma`` with the loss itself as the uncertainty; ``gamma =
    0`` gives equal weights (the base loss exactly), larger values focus on
    the hardest samples. The weights are always normalised to mean 1 (not
    an option): ``L_b^gamma`` is of the order of the loss itself (about
    1e-3 for heatmap MSE), so unnormalised it would scale the loss down by
    orders of magnitude, to which Adam is sensitive here (docs/afl.md). The
    normalisation makes the weights independent of the loss scale (and of
    ``loss_weight``), and is computed as ``(L_b / max L)^gamma`` in float64
    so that large ``gamma`` neither overflows nor underflows. A negative
    per-sample loss counts as 0; a non-finite one gets the batch's mean
    weight (:func:`finite_difficulty`): the weights of the other samples
    stay finite, and the loss is as finite as the base loss.

    Args:
        base_loss (dict): Config of the wrapped registered heatmap loss.
            Defaults to ``dict(type='KeypointMSELoss',
            use_target_weight=True)``
        gamma (float): The exponent of the per-sample loss; a finite
            number >= 0. Defaults to 1.0
        loss_weight (float): Weight of the loss. Defaults to 1.0
    """

    def __init__(self,
                 base_loss: dict = dict(
                     type='KeypointMSELoss', use_target_weight=True),
                 gamma: float = 1.,
                 loss_weight: float = 1.) -> None:
        if isinstance(gamma,
                      bool) or not (isinstance(gamma, (int, float))
                                    and math.isfinite(gamma) and gamma >= 0):
            raise ValueError(
                'LossWeightedHeatmapLoss: `gamma` (the exponent of the '
                'per-sample loss in the weight) must be a finite number '
                f'>= 0, e.g. 1.0 (the default; 0: equal weights); got '
                f'{gamma!r}')
        HeatmapAdapter.check_base_loss('LossWeightedHeatmapLoss', base_loss)
        super().__init__(
            base_loss, normalize_weights=True, loss_weight=loss_weight)
        self.adapter = HeatmapAdapter('LossWeightedHeatmapLoss',
                                      self.base_loss)
        self.gamma = float(gamma)

    def forward(self,
                output: Tensor,
                target: Tensor,
                target_weights: Optional[Tensor] = None,
                mask: Optional[Tensor] = None,
                weight_target: Optional[Tensor] = None) -> Tensor:
        """The loss of heatmaps [B, K, H, W], arguments as a heatmap head
        gives them (see :class:`HeatmapAdapter`)."""
        inputs, kwargs = self.adapter.base_inputs(output, target,
                                                  target_weights, mask,
                                                  weight_target)
        return self.reweighted('mean', inputs, kwargs)

    def sample_difficulty(self, losses: Tensor) -> Tensor:
        """``(L_b / max_b' L_b')^gamma`` [B] over the finite losses (the
        normalisation to mean 1 follows in :class:`ReweightedLoss`); a
        non-finite loss stays non-finite, so that it gets the mean
        weight."""
        losses = losses.double().clamp_min(0)
        finite = losses.isfinite()
        largest = torch.where(finite, losses, 0).max() if len(losses) else \
            losses.new_zeros(())
        ratio = torch.where(largest > 0, losses / largest,
                            torch.zeros_like(losses))
        ratio = torch.where(finite, ratio, losses)  # non-finite: kept
        return ratio.pow(self.gamma)
