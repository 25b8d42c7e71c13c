"""Hard Sample Mining loss (HSM) of Tao Hu, "Hard Sample Mining Loss for
Human Pose Estimation" (docs/hsm.md)."""
from typing import Optional

import torch
from mmpose.registry import MODELS
from torch import Tensor, nn

from ..compiled import one_pass
from . import head_check  # noqa: F401 (checks the head that takes it)
from .per_sample_loss import PerSampleHeatmapLoss

TINY = 1e-12


@MODELS.register_module()
class HSMLoss(PerSampleHeatmapLoss):
    """Hard Sample Mining loss for heatmaps on logits.

    Per pixel, with the raw head output (logit) ``p`` and the ground-truth
    heatmap ``y`` in [0, 1]::

        Delta = |sigmoid(p) - y|
        loss = (exp(beta * Delta) - 1) * Delta^gamma

    The paper prints ``(1 - e^{beta Delta}) Delta^gamma``, which is <= 0 for
    beta > 0 and would be minimised by maximising ``Delta``: a sign slip, so
    this is its magnitude (0 at ``Delta = 0``, increasing in ``Delta``).
    With beta = 1, gamma = 2 (the paper's best) it is an exponential weight
    on the squared error of the sigmoid output.

    The model's heatmaps become logits: pair this loss with
    :class:`SigmoidHeatmapHead`, which applies the sigmoid before decoding so
    that keypoint scores lie in [0, 1] and starts its logits at a background
    prior. Built inside any other head, the loss raises a ``ValueError``
    that names ``SigmoidHeatmapHead``: under the stock ``HeatmapHead``
    training stalls at all-zero heatmaps and decoding would score
    keypoints with raw logits (docs/hsm.md). A head of your own
    that applies the sigmoid before decoding declares it with the class
    attribute ``applies_sigmoid = True``.

    Reduction and keypoint weights follow :class:`KeypointMSELoss` (whose
    mask handling this class reuses): ``target_weights`` ([B, K] or
    [B, K, H, W]) and ``mask`` multiply the per-pixel loss whenever they are
    given, whatever ``use_target_weight`` says; the loss is the mean over all
    elements, i.e. the batch mean of the per-sample means over ``K, H, W``,
    times ``loss_weight`` (0 for an empty batch; inputs of the wrong shape,
    e.g. a [B, K, 1, W] target, raise a ``ValueError`` naming the shapes
    instead of broadcasting, see :class:`PerSampleHeatmapLoss`). The
    output is a logit. The loss is computed in at least float32 (float32
    for fp16 inputs: ``exp(beta * Delta)`` overflows fp16 for beta > 11),
    and ``Delta`` is clamped to >= 1e-12 inside ``Delta^gamma`` only, so
    its derivative stays finite at ``Delta = 0`` for any gamma > 0 (the
    loss there is still exactly 0): nothing becomes NaN.

    Args:
        beta (float): Exponent factor; must be > 0. Defaults to 1.0
        gamma (float): Power of ``Delta``; must be > 0. Defaults to 2.0
        use_target_weight (bool): Kept for config compatibility with
            :class:`KeypointMSELoss` (see above). Defaults to ``False``
        skip_empty_channel (bool): If ``True``, channels whose target is all
            zero do not contribute. Defaults to ``False``
        loss_weight (float): Weight of the loss. Defaults to 1.0
    """

    def __init__(self,
                 beta: float = 1.,
                 gamma: float = 2.,
                 use_target_weight: bool = False,
                 skip_empty_channel: bool = False,
                 loss_weight: float = 1.):
        super().__init__(
            use_target_weight=use_target_weight,
            skip_empty_channel=skip_empty_channel,
            loss_weight=loss_weight)
        if not beta > 0:
            raise ValueError(
                f'HSMLoss: `beta` must be > 0 (e.g. 1.0), got {beta}')
        if not gamma > 0:
            raise ValueError(
                f'HSMLoss: `gamma` must be > 0 (e.g. 2.0), got {gamma}')
        self.beta = beta
        self.gamma = gamma

    def check_head(self, head: nn.Module) -> None:
        """Raise a ``ValueError`` unless ``head``, the head that takes this
        loss (see :mod:`.head_check`), applies the sigmoid before decoding
        (declares ``applies_sigmoid = True``)."""
        if not getattr(head, 'applies_sigmoid', False):
            raise ValueError(
                f'HSMLoss takes logits, but model.head is '
                f'{type(head).__name__}, which decodes its raw output: set '
                "model.head.type='SigmoidHeatmapHead' (it applies the "
                'sigmoid before decoding and starts at a background prior; '
                f'under {type(head).__name__} HSM stalls at all-zero '
                'heatmaps), or declare applies_sigmoid = True on a head of '
                'your own that does the same')

    def sample_losses(self,
                      output: Tensor,
                      target: Tensor,
                      target_weights: Optional[Tensor] = None,
                      mask: Optional[Tensor] = None) -> Tensor:
        """The loss of each sample [B] (see :meth:`per_sample`)."""
        return hsm_sample_losses(output, target,
                                 self._get_mask(target, target_weights, mask),
                                 self.beta, self.gamma)


@one_pass
def hsm_sample_losses(output: Tensor, target: Tensor, mask: Optional[Tensor],
                      beta: float, gamma: float) -> Tensor:
    """The per-sample means [B] of :class:`HSMLoss`'s per-pixel loss times
    ``mask`` (any shape that broadcasts to the output's, or ``None``), in
    one pass (see :func:`one_pass`)."""
    # at least float32: exp(beta * Delta) overflows fp16 for beta > 11
    dtype = torch.promote_types(output.dtype, torch.float32)
    delta = (output.to(dtype).sigmoid() - target.to(dtype)).abs()
    # the clamp keeps d(Delta^gamma) finite at Delta = 0 (gamma < 1); the
    # loss there is exactly 0 through expm1(0) = 0
    loss = torch.expm1(beta * delta) * delta.clamp(min=TINY).pow(gamma)
    if mask is not None:
        loss = loss * mask
    return loss.flatten(1).mean(dim=1)
