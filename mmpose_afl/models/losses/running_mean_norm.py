"""Running means that put loss terms of different scales on one scale, as
:class:`FoWKALLoss` does for AWing and MSE (docs/fowkal.md)."""
import math

import torch
from mmengine.dist import all_reduce
from torch import Tensor


def check_running_mean_args(momentum: float, clip: float) -> None:
    """Raise a ``ValueError`` naming the config field unless ``momentum``
    lies in (0, 1] and ``clip`` is a finite number >= 1."""
    if not 0 < momentum <= 1:
        raise ValueError('FoWKALLoss: `norm_momentum` must be in (0, 1] '
                         f'(e.g. 0.01), got {momentum}')
    if not (math.isfinite(clip) and clip >= 1):
        raise ValueError('FoWKALLoss: `norm_clip` must be a finite '
                         f'number >= 1 (e.g. 4.0), got {clip}')


def running_mean_normalisers(running: Tensor, terms: Tensor, active: Tensor,
                             momentum: float, clip: float,
                             training: bool) -> Tensor:
    """The detached mean of each term, blended into ``running`` in training.

    Like BatchNorm's running statistics: in training, each term's batch
    mean over the active keypoints (summed over DDP ranks with
    ``all_reduce``, so every rank keeps the same means) is blended into
    ``running`` in place with weight ``momentum``, and the updated means
    are returned; in eval, ``running`` is returned (the batch mean for a
    term not yet set, ``running == 0``). So that one bad batch cannot
    freeze training, only finite statistics update the means, each
    clipped to ``clip`` times the running mean; at a term's first update
    each keypoint's term is clipped to ``clip`` times this rank's median.

    Args:
        running (Tensor): The running means [T], 0 for a term not yet set;
            updated in place in training.
        terms (Tensor): The per-keypoint terms [T, B, K].
        active (Tensor): Bool [B, K], the keypoints that count.
        momentum (float): Weight of the batch, in (0, 1].
        clip (float): A batch statistic counts as at most this many times
            the running mean, >= 1.
        training (bool): Update ``running``.

    Returns:
        Tensor: The normalisers [T], detached.
    """
    terms = terms.detach()
    if training and terms.numel():
        # this rank's median of the labelled keypoints' terms, per term
        median = terms.masked_fill(~active, math.nan).flatten(1)
        median = median.nanmedian(1).values
        first = (running == 0) & ~median.isnan()
        cap = torch.where(first, clip * median, math.inf)
        terms = torch.minimum(terms, cap.view(-1, 1, 1))
    stats = torch.cat([  # the sums of the terms and the number of keypoints
        terms.sum((1, 2)),
        active.sum().to(terms.dtype).reshape(1)
    ])
    if training:
        all_reduce(stats)  # sum over DDP ranks (no-op otherwise)
    batch = stats[:-1] / stats[-1].clamp(min=1)
    if not training:
        return torch.where(running > 0, running, batch)
    usable = batch.isfinite() & (stats[-1] > 0)
    clipped = torch.minimum(batch, clip * running)
    blended = (1 - momentum) * running + momentum * clipped
    updated = torch.where(running > 0, blended, batch)
    running.copy_(torch.where(usable, updated, running))
    return running.clone()
