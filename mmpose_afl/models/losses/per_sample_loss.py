"""What this project's heatmap losses share: the input shape check and the
reduction of per-sample losses to the batch loss (also for an empty
batch)."""
from typing import Optional

from mmpose.models.losses import KeypointMSELoss
from torch import Tensor


def _shape(tensor: Tensor) -> str:
    return str(list(tensor.shape))


def check_heatmap_shapes(loss_name: str,
                         output: Tensor,
                         target: Tensor,
                         target_weights: Optional[Tensor] = None,
                         mask: Optional[Tensor] = None) -> None:
    """Raise a ``ValueError`` naming ``loss_name``, the field and the shapes
    unless ``output`` and ``target`` are [B, K, H, W] of the same shape,
    ``target_weights`` (when given) is [B, K] or [B, K, H, W] and ``mask``
    (when given) is [B, K, H, W] or [B, 1, H, W].

    Checked before any computation, so a wrong shape is never broadcast
    (e.g. a [B, K, 1, W] target) and never surfaces as an error of an
    inner operation.

    Args:
        loss_name (str): The loss named in the error.
        output (Tensor): The predicted heatmaps.
        target (Tensor): The target heatmaps.
        target_weights (Tensor, optional): Keypoint or pixel weights.
            Defaults to ``None``
        mask (Tensor, optional): Pixel mask. Defaults to ``None``
    """
    if output.dim() != 4 or target.shape != output.shape:
        raise ValueError(
            f'{loss_name}: `output` {_shape(output)} and `target` '
            f'{_shape(target)} must be heatmaps [B, K, H, W] of the same '
            'shape')
    batch, k, height, width = output.shape
    allowed_shapes = ((batch, k), output.shape)
    if (target_weights is not None
            and target_weights.shape not in allowed_shapes):
        raise ValueError(
            f'{loss_name}: `target_weights` {_shape(target_weights)} must '
            f'be [B, K] = {[batch, k]} or [B, K, H, W] = {_shape(output)} '
            f'(`output` {_shape(output)}, `target` {_shape(target)})')
    if mask is not None and mask.shape not in (output.shape,
                                               (batch, 1, height, width)):
        raise ValueError(
            f'{loss_name}: `mask` {_shape(mask)} must be [B, K, H, W] = '
            f'{_shape(output)} or [B, 1, H, W] = '
            f'{[batch, 1, height, width]} (`output` {_shape(output)}, '
            f'`target` {_shape(target)})')


class PerSampleHeatmapLoss(KeypointMSELoss):
    """Base of the heatmap losses that are a batch mean of per-sample
    losses (:class:`WAHRLoss`, :class:`HSMLoss`, :class:`FoWKALLoss`).

    A subclass implements :meth:`sample_losses`; :meth:`per_sample` checks
    the input shapes (:func:`check_heatmap_shapes`) and returns it, and
    ``forward`` is ``per_sample(...).mean() * loss_weight``.
    :class:`AFLHeatmapLoss` re-weights :meth:`per_sample` directly.

    **Empty batch.** With B = 0 ``forward`` returns 0 (the sum of the
    empty per-sample losses, so it keeps its ``grad_fn`` and back-propagates
    an all-zero, empty gradient) instead of the NaN of a mean over nothing:
    a rank or a data loader that yields no sample then neither stops
    training nor writes NaN into the weights. Decision: zero rather than an
    error, as a batch without samples has nothing wrong to report.

    The mask conventions are :class:`KeypointMSELoss`'s (``_get_mask``):
    ``target_weights`` and ``mask`` multiply the per-pixel loss whenever
    given, whatever ``use_target_weight`` says.

    Args:
        use_target_weight (bool): Kept for config compatibility with
            :class:`KeypointMSELoss`. Defaults to ``False``
        skip_empty_channel (bool): If ``True``, channels whose target is all
            zero do not contribute. Defaults to ``False``
        loss_weight (float): Weight of the loss. Defaults to 1.0
    """

    def sample_losses(self, output: Tensor, target: Tensor,
                      target_weights: Optional[Tensor], mask: Optional[Tensor],
                      **kwargs) -> Tensor:
        """The loss of each sample [B] of inputs already checked; what a
        subclass implements."""
        raise NotImplementedError

    def per_sample(self,
                   output: Tensor,
                   target: Tensor,
                   target_weights: Optional[Tensor] = None,
                   mask: Optional[Tensor] = None,
                   **kwargs) -> Tensor:
        """The loss of each sample, without ``loss_weight``: shape [B].

        Arguments as in :meth:`forward`; a wrong shape raises a
        ``ValueError`` naming the loss and the shapes.
        """
        check_heatmap_shapes(
            type(self).__name__, output, target, target_weights, mask)
        return self.sample_losses(output, target, target_weights, mask,
                                  **kwargs)

    def forward(self,
                output: Tensor,
                target: Tensor,
                target_weights: Optional[Tensor] = None,
                mask: Optional[Tensor] = None,
                **kwargs) -> Tensor:
        """Forward function of loss.

        Note:
            - batch_size: B
            - num_keypoints: K
            - heatmaps height: H
            - heatmaps weight: W

        Args:
            output (Tensor): The output heatmaps with shape [B, K, H, W]
            target (Tensor): The target heatmaps with shape [B, K, H, W]
            target_weights (Tensor, optional): The target weights of
                different keypoints, with shape [B, K] (keypoint-wise) or
                [B, K, H, W] (pixel-wise). Defaults to ``None``
            mask (Tensor, optional): The masks of valid heatmap pixels in
                shape [B, K, H, W] or [B, 1, H, W]. Defaults to ``None``
            **kwargs: Further inputs of the subclass's
                :meth:`sample_losses`.

        Returns:
            Tensor: The batch mean of :meth:`per_sample` times
            ``loss_weight``; 0 for an empty batch.
        """
        losses = self.per_sample(output, target, target_weights, mask,
                                 **kwargs)
        reduced = losses.mean() if losses.numel() else losses.sum()
        return reduced * self.loss_weight
