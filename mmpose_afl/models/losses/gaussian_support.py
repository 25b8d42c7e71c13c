"""The support of a Gaussian target heatmap: where WAHR, FWAHR and SAHR
treat a pixel as foreground, the same under every MMPose Gaussian codec
(docs/sahr_wahr.md, "Gaussian support")."""
import math

import numpy as np
from torch import Tensor

#: ``exp(-4.5)`` rounded to float32 (the targets' dtype, so that a pixel
#: exactly 3 sigma from an integer keypoint is inside the support whether
#: it is compared in float32 or float64): the value of a Gaussian 3 sigma
#: from its centre, where MMPose's standard ``MSRAHeatmap`` (and
#: ``UDPHeatmap``) cut it off along each axis. The unbiased (DARK)
#: encoder does not cut it off at all, so ``gt > 0`` is no foreground test
#: there; ``gt >= GAUSSIAN_SUPPORT_FLOOR`` is the disc of
#: radius 3 sigma under all three encoders.
GAUSSIAN_SUPPORT_FLOOR = float(np.float32(math.exp(-4.5)))


def check_support_floor(owner: str, support_floor: float) -> None:
    """Raise a ``ValueError`` naming ``owner`` unless ``0 <= support_floor
    < 1``."""
    if not 0 <= support_floor < 1:
        raise ValueError(
            f'{owner}: `support_floor` must be in [0, 1) (e.g. '
            f'exp(-4.5) = {GAUSSIAN_SUPPORT_FLOOR:.4f}; 0 means gt > 0), '
            f'got {support_floor}')


def gaussian_support(heatmaps: Tensor,
                     support_floor: float = GAUSSIAN_SUPPORT_FLOOR) -> Tensor:
    """Boolean map of the pixels inside the Gaussian support: ``gt >=
    support_floor`` and ``gt > 0`` (so a floor of 0 is the old ``gt > 0``).

    Args:
        heatmaps (Tensor): Ground-truth heatmaps in [0, 1], any shape
        support_floor (float): The smallest value inside the support.
            Defaults to :data:`GAUSSIAN_SUPPORT_FLOOR` (``exp(-4.5)``)

    Returns:
        Tensor: ``bool``, the shape of ``heatmaps``.
    """
    return (heatmaps >= support_floor) & (heatmaps > 0)
