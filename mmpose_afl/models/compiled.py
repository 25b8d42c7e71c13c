"""One-pass losses: the per-pixel maths of a loss fused by ``torch.compile``,
the same code eagerly where compiling is switched off or fails.

Decision: a heatmap loss is one element-wise expression per pixel plus a
reduction; eagerly every intermediate is a full ``[B, K, H, W]`` tensor
kept for backward, compiled the inputs are read once. The losses' costs
with and without it are in docs/benchmarks.md.

Switches are torch's own: ``TORCH_COMPILE_DISABLE=1`` (or
``torch._dynamo.config.disable = True``) runs every loss eagerly, e.g.
the test suite, where hundreds of small loss instances would each
compile once.
"""
import functools
import warnings
from typing import Callable

import torch
from torch._dynamo.exc import TorchDynamoException


class CompiledOrEager:
    """Call ``fn`` through ``torch.compile``; fall back to ``fn`` itself,
    for good and with one warning, when compiling fails. :func:`one_pass`
    is its decorator form. Meant for pure functions of tensors and Python
    numbers, not for modules: a module keeps no compiled object, so it
    deep-copies (EMA) and pickles as before.

    Only ``torch.compile``'s own failures fall back (a
    ``TorchDynamoException``: no C++ compiler or Triton, an unsupported
    construct; or a platform where ``torch.compile`` is unavailable). An
    error of the inputs is raised as eagerly, and compiling stays on.

    Args:
        fn (Callable): The function to compile.
    """

    def __init__(self, fn: Callable):
        self.fn = fn
        functools.update_wrapper(self, fn)
        try:
            self.compiled = torch.compile(fn)
        except RuntimeError as error:  # e.g. no torch.compile here
            self.compiled = None
            warnings.warn(f'{fn.__qualname__}: torch.compile is unavailable '
                          f'({error}); computing it eagerly')

    def __call__(self, *args, **kwargs):
        if self.compiled is None:
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
