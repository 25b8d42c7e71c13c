"""A conditional AFL critic: it scores a predicted keypoint topology together
with the topology of the sample's own ground truth (docs/hard_examples.md,
"Conditional critic")."""
from typing import Sequence

from mmpose.registry import MODELS
from torch import Tensor

from .afl_critic import AFLCritic


@MODELS.register_module()
class AFLConditionalCritic(AFLCritic):
    """:class:`AFLCritic` that also sees the condition: ``d(x | c)`` scores
    the candidate topology ``x`` (``[B, 2, K, K]``) given the topology ``c``
    of the same sample's ground truth, stacked as 4 input channels; the rest
    of the network is :class:`AFLCritic`'s (``in_channels=4``).

    Used by an AFL loss when its ``critic`` is this type (an
    option; the paper's unconditional critic stays the default): real pairs
    are ``(t(y), t(y))``, fake pairs ``(t(y'), t(y))``, i.e. the candidate
    is the ground truth or the prediction and the condition always the
    ground truth, and the difficulty is ``sigmoid(d(t(y) | t(y)) -
    d(t(y') | t(y)))`` (anchored) or ``sigmoid(-d(t(y') | t(y)))`` (paper).

    **Why.** The unconditional critic compares a prediction with the
    distribution of all ground truths, so it measures how *unusual* a pose
    looks, not how far it is from what *this* person should look like, and
    it followed the label count rather than the prediction's error
    (docs/afl.md). Given its condition, the real distribution is a point
    mass at ``c``, and a 1-Lipschitz critic that maximises ``d(c | c) -
    E d(x' | c)`` is ``d(x | c) = g(c) - ||x - c||``: at that optimum the
    anchored difficulty is ``sigmoid(||t(y') - t(y)||)``, monotone in the
    distance of the prediction's topology from its own ground truth's. A
    critic of finite size trained one step per iteration only approaches
    it, near the predictions it has seen. Decision: the two maps stacked
    rather than their difference ``x - c`` alone (which would also hold the
    optimum), so that the critic still reads the paper's topology maps and
    may score a deviation by the pose it occurs in; it costs two input
    channels of the first convolution.

    **Gradient penalty** (applied by ``AFLCriticHook``): at
    ``alpha t(y) + (1 - alpha) t(y')`` with the condition ``t(y)`` held
    fixed, and on the gradient with respect to the candidate only. The
    Lipschitz constraint of the Wasserstein dual is one per condition, in
    the candidate; penalising the gradient in ``c`` as well would spend the
    unit norm on how scores change *between* people, which no term of the
    objective asks for, and leave less than a unit slope in the candidate.
    Real and fake pairs share their condition, so the interpolate of the
    pairs is exactly that point.

    Args:
        num_keypoints (int): K, the size of the topology maps; must equal
            the heatmap head's ``out_channels``.
        channels (Sequence[int]): Output channels of the conv blocks.
            Defaults to ``(16, 32, 64, 128)``
        negative_slope (float): Slope of the LeakyReLUs. Defaults to 0.2
    """

    def __init__(self,
                 num_keypoints: int,
                 channels: Sequence[int] = (16, 32, 64, 128),
                 negative_slope: float = 0.2) -> None:
        super().__init__(
            num_keypoints, channels, negative_slope, in_channels=4)

    def forward(self, topology: Tensor, condition: Tensor) -> Tensor:
        """Score candidate topologies [B, 2, K, K] given the ground truth's
        [B, 2, K, K]; returns [B] (higher = more like the condition)."""
        return super().forward(topology, condition)
