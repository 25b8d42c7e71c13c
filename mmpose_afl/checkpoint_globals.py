"""Lets MMEngine load this project's checkpoints with
``torch.load(weights_only=True)``, so that every load is the safe one and
prints nothing.

MMEngine (the onedl build, see docs/installation.md) loads a checkpoint with
``weights_only=True`` and an allow-list of its own; whatever that rejects it
loads again with ``weights_only=False``, after printing PyTorch's long
"Weights only load failed ..." text. Every MMPose checkpoint is rejected:
its ``meta['dataset_meta']`` holds numpy arrays of dtype ``uint8``
(``keypoint_colors``, ``skeleton_link_colors``) and ``float32``
(``sigmas``, ``dataset_keypoint_weights``), while MMEngine's list has the
dtype classes of ``uint32``, ``int64`` and ``float64`` only.

Decision: allow-list the dtype classes of numpy's fixed-size numeric types
(bool, signed and unsigned integers, floats, complex). They are data
descriptors: unpickling one can only rebuild a dtype, never run code, so
this keeps ``weights_only=True`` safe. torch before 2.4 has no allow-list
(and loads with ``weights_only=False`` by default): nothing to do there.
Nothing else in this project's
checkpoints needs it: the AFL critic and its optimizer, the KAL factors and
running means and the SAHR scale branch are tensors, numbers and dicts.
"""
from typing import List

import numpy as np
import torch

NUMPY_DTYPE_CLASSES: List[type] = [
    type(np.dtype(t))
    for t in (np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8,
              np.uint16, np.uint32, np.uint64, np.float16, np.float32,
              np.float64, np.complex64, np.complex128)
]


def allow_numpy_dtypes() -> bool:
    """Adds :data:`NUMPY_DTYPE_CLASSES` to torch's weights-only allow-list
    (idempotent); a no-op on torch < 2.4, which has none.

    Returns:
        bool: Whether torch has the allow-list (and so it was extended).
    """
    add_safe_globals = getattr(torch.serialization, 'add_safe_globals', None)
    if add_safe_globals is None:
        return False
    add_safe_globals(NUMPY_DTYPE_CLASSES)
    return True
