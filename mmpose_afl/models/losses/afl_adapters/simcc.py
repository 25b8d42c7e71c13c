"""AFL's adapter of SimCC heads (see ``base.py``)."""
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from .base import KeypointAdapter, Keypoints, _shape


class SimCCAdapter(KeypointAdapter):
    """SimCC heads (``RTMCCHead``, ``RTMWHead``, ``SimCCHead`` with MMPose's
    ``KLDiscretLoss``): ``(pred_simcc, gt_simcc, target_weight)``.
    ``KLDiscretLoss`` sums over the batch, so the reduction is a sum.

    Keypoints: the expected bin of each 1-D distribution as the loss sees
    it (``softmax(beta * pred)``; the target under ``label_softmax`` as
    ``softmax(label_beta * gt)``, else normalised to sum 1), over the head's
    ``simcc_split_ratio``: input pixels. The expected value rather than the
    argmax, so that it moves continuously with the logits.
    """
    family = 'simcc'
    what = 'SimCC vectors'
    nonfinite_what = 'SimCC logit or label'
    head_types = ('RTMCCHead', 'RTMWHead', 'SimCCHead')
    base_types = ('KLDiscretLoss', )
    reduction = 'sum'
    simcc_split_ratio = 1.0

    def bind_head(self, head: nn.Module, num_keypoints: int) -> None:
        super().bind_head(head, num_keypoints)
        self.simcc_split_ratio = float(getattr(head, 'simcc_split_ratio', 1.0))

    def base_inputs(self,
                    pred_simcc,
                    gt_simcc,
                    target_weight: Optional[Tensor] = None):
        pairs = (pred_simcc, gt_simcc)
        ok = all(
            isinstance(p, (tuple, list)) and len(p) == 2 and all(
                isinstance(t, Tensor) and t.dim() == 3 for t in p)
            for p in pairs)
        if ok:
            (px, py), (gx, gy) = pairs
            ok = (
                px.shape == gx.shape and py.shape == gy.shape
                and px.shape[:2] == py.shape[:2])
        if not ok:
            shapes = [[_shape(t)
                       for t in p] if isinstance(p,
                                                 (tuple, list)) else _shape(p)
                      for p in pairs]
            raise ValueError(
                f'{self.owner}: `pred_simcc` {shapes[0]} and `gt_simcc` '
                f'{shapes[1]} must be (x, y) pairs of SimCC vectors '
                '[B, K, W*ratio] and [B, K, H*ratio] of the same shapes '
                '(what RTMCCHead / RTMWHead pass); for heatmaps use '
                'AFLHeatmapLoss')
        batch, k = pred_simcc[0].shape[:2]
        if target_weight is not None and target_weight.shape != (batch, k):
            raise ValueError(
                f'{self.owner}: `target_weight` {_shape(target_weight)} '
                f'must be [B, K] = {[batch, k]}')
        return (tuple(pred_simcc), tuple(gt_simcc), target_weight), {}

    def target_distribution(self, labels: Tensor) -> Tensor:
        """The target distribution [B, K, L] as the loss sees it."""
        base = self.base_loss
        if base.label_softmax:
            return torch.softmax(labels.float() * base.label_beta, dim=-1)
        return labels.float().clamp_min(0)

    def keypoints(self,
                  pred_simcc,
                  gt_simcc,
                  target_weight: Optional[Tensor] = None) -> Keypoints:
        base, ratio = self.base_loss, self.simcc_split_ratio
        batch, k = pred_simcc[0].shape[:2]
        labelled = torch.ones(batch, k, dtype=torch.bool,
                              device=pred_simcc[0].device) \
            if target_weight is None else target_weight > 0
        pred, gt, present = [], [], labelled
        for logits, labels in zip(pred_simcc, gt_simcc):
            coord, _ = expected_bins(
                torch.softmax(logits.detach().float() * base.beta, dim=-1))
            pred.append(coord / ratio)
            coord, has_mass = expected_bins(
                self.target_distribution(labels.detach()))
            gt.append(coord / ratio)
            present = present & has_mass
        size = (pred_simcc[0].shape[-1] / ratio,
                pred_simcc[1].shape[-1] / ratio)
        return Keypoints(
            torch.stack(pred, -1), labelled, torch.stack(gt, -1), present,
            labelled, size, (*pred_simcc, *gt_simcc))


def expected_bins(distributions: Tensor) -> Tuple[Tensor, Tensor]:
    """The expected bin ``sum_i i p_i / sum_i p_i`` of each non-negative
    1-D distribution [B, K, L], and whether it has any mass: ([B, K] with 0
    where no mass, [B, K] bool)."""
    p = distributions.float()
    mass = p.sum(dim=-1)
    present = mass > 1e-12
    bins = torch.arange(p.shape[-1], dtype=p.dtype, device=p.device)
    coords = (p * bins).sum(dim=-1) / torch.where(present, mass,
                                                  mass.new_ones(()))
    return torch.where(present, coords, coords.new_zeros(())), present
