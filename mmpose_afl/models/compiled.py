"""One-pass losses: the per-pixel maths of a loss fused by ``torch.compile``
where it works, the same eager code where it does not."""
import functools
import os
import warnings
from typing import Callable

import torch
from torch._dynamo.exc import TorchDynamoException

#: Environment switch: ``MMPOSE_AFL_COMPILE=0`` runs every loss eagerly
#: (e.g. the test suite, where each of hundreds of small loss instances
#: would compile once); anything else, or unset, compiles.
COMPILE_ENV = 'MMPOSE_AFL_COMPILE'


def compile_enabled() -> bool:
    """Whether losses compile (:data:`COMPILE_ENV` is not ``'0'``)."""
    return os.environ.get(COMPILE_ENV, '1') != '0'


class CompiledOrEager:
    """Call ``fn`` through ``torch.compile`` and fall back to ``fn`` itself,
    for good and with one warning, when compiling fails; :func:`one_pass`
    is its decorator form. Meant for pure functions of tensors and Python
    numbers (a loss's per-pixel maths and reduction), not for modules: a
    module keeps no compiled object, so it deep-copies (EMA) and pickles as
    before.

    Why: a heatmap loss is one element-wise expression per pixel plus a
    reduction, but eagerly every intermediate is a full ``[B, K, H, W]``
    tensor written to memory and kept for backward (WAHR: about ten). The
    compiled kernel reads the inputs once and its backward keeps only the
    inputs: on this project's 2-core CPU, WAHR at ``[16, 133, 64, 48]``
    goes from 4.1x to 1.2x the time of ``KeypointMSELoss``, HSM from 3.0x
    to 0.8x (``make bench`` has the figures). The values are the eager
    ones up to float rounding (tested).

    What falls back: only ``torch.compile``'s own failures
    (``TorchDynamoException``: no C++ compiler or Triton, an unsupported
    construct). Errors of the inputs are raised as they are: shapes are
    checked before this is called, and a call that fails compiled and
    eagerly raises the eager error and keeps compiling on. Compiling happens at the first call of
    each new input signature (seconds; PyTorch recompiles for new shapes
    and then compiles shape-generic code).

    Args:
        fn (Callable): The function to compile.
    """

    def __init__(self, fn: Callable):
        self.fn = fn
        self.compiled = torch.compile(fn)
        functools.update_wrapper(self, fn)

    def __call__(self, *args, **kwargs):
        if self.compiled is None or not compile_enabled():
            return self.fn(*args, **kwargs)
        try:
            return self.compiled(*args, **kwargs)
        except TorchDynamoException as error:
            # an error of the inputs themselves is raised here, as eagerly,
            # and leaves compiling on
            result = self.fn(*args, **kwargs)
            warnings.warn(f'{self.fn.__qualname__}: torch.compile failed '
                          f'({type(error).__name__}: {error}); computing it '
                          'eagerly from now on')
            self.compiled = None
            return result


def one_pass(fn: Callable) -> CompiledOrEager:
    """Decorator: ``fn`` compiled by :class:`CompiledOrEager`."""
    return CompiledOrEager(fn)
