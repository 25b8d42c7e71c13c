"""The per-pixel maths of :class:`FoWKALLoss`: MMPose's AWing written out
element-wise, the (F)WAHR pixel weights and the per-keypoint terms in one
compiled pass (docs/fowkal.md)."""
import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from mmpose.models.losses import AdaptiveWingLoss
from torch import Tensor

from ..compiled import one_pass
from .gaussian_support import gaussian_support
from .wahr_loss import wahr_weight


def awing_map(output: Tensor, target: Tensor,
              awing: AdaptiveWingLoss) -> Tensor:
    """MMPose's AWing (``awing.criterion``'s maths and parameters),
    element-wise: same shape as ``output``.

    Written out so that it compiles into one kernel with the rest: with
    ``r = theta / epsilon`` and ``e = alpha - P``, the powers of the
    constant base are one ``exp(e ln r)``; only ``(delta / epsilon)^e``
    stays a ``pow``, whose gradient at ``delta = 0`` is finite (an
    ``exp``/``log`` would be NaN). Equal to the criterion in value and
    gradient (tests); its cost is in docs/fowkal.md."""
    r = awing.theta / awing.epsilon
    delta = (target - output).abs()
    e = awing.alpha - target
    r_e = torch.exp(e * math.log(r))
    a = awing.omega / (1 + r_e) * e * (r_e / r) / awing.epsilon
    c = awing.theta * a - awing.omega * torch.log1p(r_e)
    near = awing.omega * torch.log1p(torch.pow(delta / awing.epsilon, e))
    return torch.where(delta < awing.theta, near, a * delta - c)


def pixel_weights(output: Tensor, target: Tensor, weighting: Optional[str],
                  gamma: float, tau: float,
                  support_floor: float) -> Optional[Tensor]:
    """The WAHR / FWAHR weights W, shaped as ``output`` (``P^`` not
    detached, ``P`` constant), or ``None`` when ``weighting`` is ``None``::

        WAHR:  W = P^g |1 - P^| + |P^| (1 - P^g)
        FWAHR: W = the WAHR weight  where P^ >= 2^(-1/g),  else  tau * P

    with ``P`` 0 below ``support_floor``."""
    if weighting is None:
        return None
    weight = wahr_weight(output, target, gamma, support_floor)
    if weighting == 'fwahr':
        gt = target.detach().clamp(min=0)
        gt = torch.where(
            gaussian_support(gt, support_floor), gt, torch.zeros_like(gt))
        weight = torch.where(output >= 2.0**(-1.0 / gamma), weight, tau * gt)
    return weight


@one_pass
def fowkal_keypoint_terms(output: Tensor, target: Tensor,
                          mask: Optional[Tensor], awing: AdaptiveWingLoss,
                          weighting: Optional[str], gamma: float, tau: float,
                          support_floor: float) -> Tuple[Tensor, Tensor]:
    """``mean_HW(W * mask * AWing)`` and ``mean_HW(W * mask * (P^ - P)^2)``,
    each [B, K] in at least float32, in one pass over the pixels (see
    :func:`one_pass`). ``mask`` broadcasts to ``output`` or is ``None``;
    the other arguments are those of :func:`awing_map` and
    :func:`pixel_weights`."""
    dtype = torch.promote_types(output.dtype, torch.float32)
    output, target = output.to(dtype), target.to(dtype)
    weight = pixel_weights(output, target, weighting, gamma, tau,
                           support_floor)
    if mask is not None:
        weight = mask if weight is None else weight * mask
    awing = awing_map(output, target, awing)
    mse = F.mse_loss(output, target, reduction='none')
    if weight is not None:
        awing, mse = awing * weight, mse * weight
    return awing.flatten(2).mean(-1), mse.flatten(2).mean(-1)
