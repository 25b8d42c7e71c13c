"""What AFL needs from one head family, one small object per family: the
base loss's inputs from the head's loss arguments, and the predicted and
ground-truth keypoint coordinates the critic's topology is computed from
(docs/afl.md, "How to add AFL to a new head").

An adapter (a :class:`KeypointAdapter`) implements

- ``check_base_loss(owner, cfg)`` (class method): a ``ValueError`` at build
  time unless ``cfg`` is a loss of the family;
- ``bind_head(head)``: check the head and read what only it knows (called
  by ``AFLCriticHook`` before training);
- ``base_inputs(*head_args)``: check the shapes and return ``(args,
  kwargs)`` for the base loss's ``forward`` (batch first, so the per-sample
  protocol of ``reweighted_loss.py`` applies);
- ``keypoints(*head_args)``: :class:`Keypoints`, detached.

Coordinates are in the frame of their family (heatmap pixels, input
pixels); the topology depends on them only normalised by the frame, so the
same pose has the same topology whatever the head.
"""
from dataclasses import dataclass
from typing import List, Tuple

from mmpose.registry import MODELS
from torch import Tensor, nn

EXAMPLES = dict(
    heatmap="dict(type='KeypointMSELoss', use_target_weight=True)",
    simcc="dict(type='KLDiscretLoss', use_target_weight=True, beta=10., "
    "label_softmax=True)",
    regression="dict(type='RLELoss', use_target_weight=True)")
AFL_LOSSES = dict(
    heatmap='AFLHeatmapLoss',
    simcc='AFLSimCCLoss',
    regression='AFLRegressionLoss')


@dataclass
class Keypoints:
    """Predicted and ground-truth keypoints of a batch, detached.

    Args:
        pred (Tensor): [B, K, 2] (x, y) in the units of ``size``.
        pred_present (Tensor): [B, K] bool, predicted keypoints that exist.
        gt (Tensor): [B, K, 2], same units.
        gt_present (Tensor): [B, K] bool.
        labelled (Tensor): [B, K] bool, keypoints with a label (weight > 0).
        size (tuple): ``(W, H)`` of the frame the coordinates lie in.
        raw (tuple): The head's tensors; a sample with a non-finite value
            in any of them keeps its batch from the critic.
    """
    pred: Tensor
    pred_present: Tensor
    gt: Tensor
    gt_present: Tensor
    labelled: Tensor
    size: Tuple[float, float]
    raw: Tuple[Tensor, ...]


def _shape(tensor) -> str:
    return str(list(tensor.shape)) if isinstance(tensor, Tensor) else \
        repr(type(tensor).__name__)


def _names(cls: type) -> set:
    return {c.__name__ for c in cls.__mro__}


class KeypointAdapter:
    """Base of the adapters (module docstring).

    Args:
        owner (str): The loss named in errors.
        base_loss (nn.Module): The built base loss.
    """
    family = 'heatmap'
    what = 'heatmaps'  # what the head's K is called in errors
    nonfinite_what = 'heatmap pixel'  # a bad value of the head's tensors
    head_types: Tuple[str, ...] = ()
    base_types: Tuple[str, ...] = ()
    head_k_field = 'out_channels'
    reduction = 'mean'
    families: List[type] = []  # every adapter class, in definition order

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        KeypointAdapter.families.append(cls)

    def __init__(self, owner: str, base_loss: nn.Module) -> None:
        self.owner = owner
        self.base_loss = base_loss

    @classmethod
    def check_base_loss(cls, owner: str, cfg) -> None:
        from ..reweighted_loss import ReweightedLoss
        loss_type = cfg.get('type') if isinstance(cfg, dict) else None
        loss_cls = MODELS.get(loss_type) if isinstance(loss_type, str) \
            else loss_type if isinstance(loss_type, type) else None
        if loss_cls is None or issubclass(loss_cls, ReweightedLoss):
            raise ValueError(
                f'{owner}: `base_loss` must be the config of a registered '
                f'{cls.family} loss other than an AFL loss, e.g. '
                f'{EXAMPLES.get(cls.family)}; got {cfg!r}')
        # the family whose `base_types` claim the loss; a family without
        # `base_types` takes any loss that no family claims
        claimed = next((a.family for a in KeypointAdapter.families
                        if _names(loss_cls) & set(a.base_types)), None)
        if claimed != (cls.family if cls.base_types else None):
            family = claimed or 'heatmap'
            raise ValueError(
                f'{owner}: `base_loss` {loss_cls.__name__} is a {family} '
                f'loss, but {owner} wraps {cls.family} losses (e.g. '
                f'{EXAMPLES.get(cls.family)}): wrap {loss_cls.__name__} in '
                f'{AFL_LOSSES[family]}')

    def bind_head(self, head: nn.Module, num_keypoints: int) -> None:
        """A ``ValueError`` naming both unless ``head`` is of this family
        and has ``num_keypoints`` keypoints."""
        names, head_name = _names(type(head)), type(head).__name__
        for adapter in KeypointAdapter.families:
            if names & set(adapter.head_types) and adapter.family != \
                    self.family:
                raise ValueError(
                    f'{self.owner} (a {self.family} loss) is the loss of '
                    f'{head_name}, a {adapter.family} head: use '
                    f'{AFL_LOSSES[adapter.family]} there')
        if self.family != 'heatmap' and not names & set(self.head_types):
            raise ValueError(
                f'{self.owner} needs a {self.family} head '
                f'({", ".join(self.head_types)}); it is the loss of '
                f'{head_name}')
        head_k = getattr(head, self.head_k_field, None)
        if head_k is not None and head_k != num_keypoints:
            raise ValueError(
                f'{self.owner}: `critic.num_keypoints` ({num_keypoints}) '
                f"must equal the head's `{self.head_k_field}` ({head_k})")
