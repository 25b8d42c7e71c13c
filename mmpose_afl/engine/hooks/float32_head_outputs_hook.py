"""Float32 head outputs under bf16 autocast, for MMPose's stock heads
(docs/gpu.md, "bf16 AMP")."""
import types
from typing import Any

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpose.registry import HOOKS
from torch import nn


def to_float32(value: Any) -> Any:
    """``value`` with every floating tensor in it (alone, in a tuple, list
    or dict) cast to float32; anything else unchanged."""
    if isinstance(value, torch.Tensor):
        return value.float() if value.is_floating_point() else value
    if isinstance(value, tuple) and hasattr(value, '_fields'):
        return type(value)(*(to_float32(v) for v in value))
    if isinstance(value, (tuple, list)):
        return type(value)(to_float32(v) for v in value)
    if isinstance(value, dict):
        return {k: to_float32(v) for k, v in value.items()}
    return value


def _float32_forward(self: nn.Module, *args, **kwargs) -> Any:
    """The class's own ``forward`` with float32 outputs (bound to one
    head instance by :class:`Float32HeadOutputsHook`)."""
    return to_float32(type(self).forward(self, *args, **kwargs))


@HOOKS.register_module()
class Float32HeadOutputsHook(Hook):
    """Cast the outputs of ``model.head.forward`` to float32, so that a
    stock MMPose head trains under bf16 autocast.

    Switch it on with one entry in the config::

        custom_hooks = [..., dict(type='Float32HeadOutputsHook')]

    Why: the stock heads' ``loss()`` compute their training accuracy in
    numpy (``HeatmapHead``, ``RTMCCHead``, ``RegressionHead`` and
    ``RLEHead`` through ``mmpose.utils.tensor_utils.to_numpy``), and numpy
    has no bfloat16: under ``AmpOptimWrapper(dtype='bfloat16')`` (the CPU's
    only autocast type, and a common choice on A100 / H100) the first
    iteration fails with ``TypeError: Got unsupported ScalarType
    BFloat16``. fp16 AMP does not need this hook (numpy has float16).

    What it does: in ``before_run`` it binds a ``forward`` to the head
    instance that calls the class's own ``forward`` and casts its floating
    outputs to float32. The layers still run under autocast (bf16 convs
    and matmuls); only what ``loss()`` and ``predict()`` receive is
    float32, so the loss, the accuracy and decoding compute in float32.
    Nothing else changes: the state dict, checkpoints and the config of
    the model are untouched, a copy of the model (EMA) keeps the cast,
    and without autocast the outputs are float32 already.

    Args:
        priority (str): As for any hook. Defaults to ``'VERY_HIGH'``, so
            the cast is in place before other hooks copy the model
    """

    def __init__(self, priority: str = 'VERY_HIGH') -> None:
        self.priority = priority

    def before_run(self, runner) -> None:
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        head = getattr(model, 'head', None)
        if not isinstance(head, nn.Module):
            raise ValueError(
                'Float32HeadOutputsHook is in `custom_hooks` but the model '
                f'({type(model).__name__}) has no `head` module: remove the '
                'hook or use a model with `model.head`')
        # bound to this instance; a deep copy (EMA) rebinds to the copy
        head.forward = types.MethodType(_float32_forward, head)
