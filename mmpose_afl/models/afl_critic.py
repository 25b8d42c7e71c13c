"""The critic side of the Adversarial Focal Loss: the topology extractor of
the AFL paper (Appendix A.2), one function of keypoint coordinates for
every head family, and the light-weight WGAN-GP critic that scores its
output. See ``docs/afl.md``."""
import math
from typing import Optional, Sequence, Tuple

import torch
from mmpose.registry import MODELS
from torch import Tensor, nn

from .compiled import one_pass

EPS = 1e-12


@one_pass
def keypoint_centroids(heatmaps: Tensor,
                       threshold: float = 0.1,
                       keypoint_weights: Optional[Tensor] = None
                       ) -> Tuple[Tensor, Tensor]:
    """Intensity-weighted centroid of each heatmap channel.

    The paper does not say how centroids are found. Decision: values below
    ``threshold`` are zeroed and the centroid is the intensity-weighted
    mean pixel position of the rest. A channel with no
    mass left (or whose keypoint weight is 0) is *missing*. Compiled
    (:func:`one_pass`): the heatmaps are read once, for the mass and both
    moments together.

    Args:
        heatmaps (Tensor): Heatmaps in shape [B, K, H, W].
        threshold (float): Values below it do not count; must be >= 0.
            Defaults to 0.1
        keypoint_weights (Tensor, optional): [B, K]; keypoints with weight
            0 are missing. Defaults to ``None``

    Returns:
        tuple:
        - centroids (Tensor): [B, K, 2] as (x, y) in heatmap pixels, 0 for
          missing keypoints.
        - present (Tensor): [B, K] bool.
    """
    _, _, height, width = heatmaps.shape
    values = heatmaps.float()
    kept = torch.where(values >= threshold, values, values.new_zeros(()))
    mass = kept.sum(dim=(2, 3))
    present = mass > EPS
    if keypoint_weights is not None:
        present = present & (keypoint_weights.reshape(present.shape) > 0)
    safe_mass = torch.where(present, mass, mass.new_ones(()))
    xs = torch.arange(width, dtype=values.dtype, device=values.device)
    ys = torch.arange(height, dtype=values.dtype, device=values.device)
    cx = (kept.sum(dim=2) * xs).sum(dim=-1) / safe_mass
    cy = (kept.sum(dim=3) * ys).sum(dim=-1) / safe_mass
    centroids = torch.stack([cx, cy], dim=-1) * present.unsqueeze(-1)
    return centroids, present


def coordinate_topology(coords: Tensor, present: Tensor,
                        size: Tuple[float, float]) -> Tensor:
    """Planar and angular affinities of keypoint coordinates (AFL paper,
    Appendix A.2), all in one vectorised pass over batch and keypoints: the
    one topology every AFL loss computes, whatever the head family.

    With coordinates ``c_i`` and ``g`` the mean of those that exist::

        planar(i, j)  = 1 - ||c_i - c_j|| / ||(W, H)||
        angular(i, j) = 1/2 + 1/2 cos(angle(c_i, g, c_j))

    Both are unchanged when ``coords`` and ``size`` are scaled together, so
    the topology is a function of the coordinates normalised by the frame,
    ``(x / W, y / H)``, and of its aspect ratio: the same pose gives the
    same topology in heatmap pixels, SimCC bins or input pixels. Rows and
    columns of missing keypoints are 0. Where the angle is undefined
    (``c_i`` or ``c_j`` lies on ``g``, e.g. a single keypoint) its cosine
    is taken as 0, i.e. ``angular = 1/2``: neutral, and never NaN.

    Args:
        coords (Tensor): [B, K, 2] as (x, y), in the units of ``size``.
        present (Tensor): [B, K] bool; False marks a missing keypoint.
        size (tuple): ``(W, H)`` of the frame the coordinates lie in.

    Returns:
        Tensor: [B, 2, K, K] float32, channel 0 planar, channel 1 angular.
    """
    width, height = size
    # a missing keypoint's coordinate may be anything, NaN included
    coords = torch.where(
        present.unsqueeze(-1), coords.float(),
        coords.new_zeros((), dtype=torch.float32))
    pair = (present.unsqueeze(2) & present.unsqueeze(1)).float()

    # exact differences: cdist's matrix-product shortcut (used for K > 25)
    # leaves ~1e-4 on the diagonal, where the planar affinity must be 1
    distance = torch.cdist(
        coords, coords, compute_mode='donot_use_mm_for_euclid_dist')
    planar = (1 - distance / math.hypot(width, height)) * pair

    count = present.sum(dim=1, keepdim=True).clamp_min(1)
    centre = coords.sum(dim=1) / count  # missing coordinates are 0
    rays = (coords - centre.unsqueeze(1)) * present.unsqueeze(-1)
    lengths = rays.norm(dim=-1)
    dot = rays @ rays.transpose(1, 2)
    norms = lengths.unsqueeze(2) * lengths.unsqueeze(1)
    cosine = torch.where(norms > EPS, dot / norms.clamp_min(EPS),
                         dot.new_zeros(()))
    angular = (0.5 + 0.5 * cosine.clamp(-1, 1)) * pair
    return torch.stack([planar, angular], dim=1)


def heatmap_topology(heatmaps: Tensor,
                     threshold: float = 0.1,
                     keypoint_weights: Optional[Tensor] = None) -> Tensor:
    """:func:`coordinate_topology` of the heatmaps' centroids (see
    :func:`keypoint_centroids`), in heatmap pixels of a ``(W, H)`` frame.

    Args:
        heatmaps (Tensor): [B, K, H, W].
        threshold (float): See :func:`keypoint_centroids`. Defaults to 0.1
        keypoint_weights (Tensor, optional): [B, K]. Defaults to ``None``

    Returns:
        Tensor: [B, 2, K, K] float32, channel 0 planar, channel 1 angular.
    """
    _, _, height, width = heatmaps.shape
    centroids, present = keypoint_centroids(heatmaps, threshold,
                                            keypoint_weights)
    return coordinate_topology(centroids, present, (width, height))


@MODELS.register_module()
class AFLCritic(nn.Module):
    """Light-weight WGAN-GP critic on the ``[B, 2, K, K]`` topology maps.

    DCGAN-style, as the "off-the-shelf" critic of PyTorch-GAN the paper
    uses (its FLOPs match the paper's Table 2): one ``Conv3x3/2 +
    LeakyReLU`` block per entry of ``channels``, then a linear layer to
    one score per sample. Unlike PyTorch-GAN it has no BatchNorm (the
    gradient penalty is per sample and WGAN-GP forbids batch-dependent
    normalisation), no dropout (the score
    of a sample should not be random), no sigmoid (a Wasserstein critic)
    and no bias in the last layer (it cancels out of the critic loss and
    its gradient penalty, so it would never train).

    Size with the default ``channels`` (multiply-accumulates of one sample):

    ======  ===========  ===============
    K       parameters   MACs
    ======  ===========  ===============
    17      97,808       0.60 M (0.0006 G)
    133     107,664      17.9 M (0.018 G)
    ======  ===========  ===============

    The paper's Table 2 gives 0.00056 GFLOPs, which matches K = 17; its
    0.0097 M parameters does not match any PyTorch-GAN critic.

    Args:
        num_keypoints (int): K, the size of the topology maps; must equal
            the heatmap head's ``out_channels``.
        channels (Sequence[int]): Output channels of the conv blocks.
            Defaults to ``(16, 32, 64, 128)``
        negative_slope (float): Slope of the LeakyReLUs. Defaults to 0.2
        in_channels (int): 2 scores a topology alone; 4 scores it given a
            condition, the ground truth's topology, stacked onto it
            (:class:`AFLConditionalCritic`). Defaults to 2
    """

    def __init__(self,
                 num_keypoints: int,
                 channels: Sequence[int] = (16, 32, 64, 128),
                 negative_slope: float = 0.2,
                 in_channels: int = 2) -> None:
        super().__init__()
        if not (isinstance(num_keypoints, int) and num_keypoints >= 1):
            raise ValueError('AFLCritic: `num_keypoints` must be a positive '
                             f'int (the heatmaps\' K), got {num_keypoints!r}')
        if not channels or any(int(c) < 1 for c in channels):
            raise ValueError('AFLCritic: `channels` must be a non-empty list '
                             f'of positive ints, got {channels!r}')
        if in_channels not in (2, 4):
            raise ValueError('AFLCritic: `in_channels` must be 2 (the '
                             'topology) or 4 (topology and condition), got '
                             f'{in_channels!r}')
        self.num_keypoints = num_keypoints
        self.in_channels = in_channels
        layers, size = [], num_keypoints
        for out_channels in channels:
            layers += [
                nn.Conv2d(in_channels, out_channels, 3, stride=2, padding=1),
                nn.LeakyReLU(negative_slope)
            ]
            in_channels, size = out_channels, (size + 1) // 2
        self.features = nn.Sequential(*layers)
        self.score = nn.Linear(in_channels * size * size, 1, bias=False)

    @property
    def conditional(self) -> bool:
        """Whether the critic scores a topology given a condition."""
        return self.in_channels == 4

    def forward(self,
                topology: Tensor,
                condition: Optional[Tensor] = None) -> Tensor:
        """Score topology maps [B, 2, K, K], given the condition [B, 2, K,
        K] (the ground truth's topology) when the critic is conditional;
        returns [B] (higher = more like the ground truth)."""
        expected = (2, self.num_keypoints, self.num_keypoints)
        name = type(self).__name__
        inputs = [('topology', topology)]
        if self.conditional:
            if condition is None:
                raise ValueError(f'{name}: a conditional critic '
                                 '(in_channels=4) needs a condition')
            inputs.append(('condition', condition))
        for what, value in inputs:
            if value.dim() != 4 or value.shape[1:] != expected:
                raise ValueError(
                    f'{name}: expected {what} maps [B, 2, '
                    f'{self.num_keypoints}, {self.num_keypoints}] '
                    f'(critic.num_keypoints={self.num_keypoints}), got '
                    f'{list(value.shape)}: set `critic.num_keypoints` to '
                    "the heatmaps' K")
        if self.conditional:
            if condition.shape[0] != topology.shape[0]:
                raise ValueError(
                    f'{name}: one condition per candidate, got '
                    f'{condition.shape[0]} for {topology.shape[0]}')
            topology = torch.cat([topology, condition], dim=1)
        return self.score(self.features(topology).flatten(1)).squeeze(1)
