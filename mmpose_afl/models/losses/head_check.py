"""Losses that check the head that takes them, when the model is built.

MMPose heads build their loss in ``__init__`` (``self.loss_module =
MODELS.build(loss)``), so a loss cannot see its head while it is built. A
loss that must agree with its head defines ``check_head(head)``, which
raises a ``ValueError`` naming the config field (e.g. :class:`HSMLoss`:
the head must apply the sigmoid; :class:`FoWKALLoss`: the parts must cover
the head's ``out_channels``). Decision: torch's module-registration hook
calls it the moment an MMPose head takes the loss as a submodule, also
through a wrapping loss such as ``AFLHeatmapLoss``, so a stock MMPose head
is checked at build time without changing it. A loss built on its own
(tests, benchmarks) is not checked."""
from mmpose.models.heads.base_head import BaseHead
from torch import nn
from torch.nn.modules.module import register_module_module_registration_hook


def check_losses_of_head(module: nn.Module, name: str,
                         submodule: nn.Module) -> None:
    """Module-registration hook: when ``module`` is an MMPose head, call
    ``check_head(module)`` of every module in ``submodule`` that has one.

    Args:
        module (nn.Module): The module that takes ``submodule``.
        name (str): The attribute name (unused).
        submodule (nn.Module): The new submodule (``None`` allowed).
    """
    if not isinstance(module, BaseHead) or submodule is None:
        return None
    for child in submodule.modules():
        check = getattr(child, 'check_head', None)
        if callable(check):
            check(module)
    return None


register_module_module_registration_hook(check_losses_of_head)
