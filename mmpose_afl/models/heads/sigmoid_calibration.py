"""Re-calibrate the final conv of a stock (MSE-trained) heatmap head for
:class:`SigmoidHeatmapHead`, which reads the conv's output as logits.

One function for ``tools/recalibrate_sigmoid_head.py`` and
:class:`SigmoidHeadCalibrationHook`. The conv is mapped affinely,
``logit = a y + b`` with ``b = log(p / (1 - p))`` and ``a = -2 b``: the MSE
heatmap range [0, 1] becomes [p, 1 - p] under the sigmoid, and, as
``a > 0``, the argmax of every heatmap (every keypoint found) stays the
same. Without it the whole background starts at sigmoid 0.5, and HSM
fine-tuning from a stock checkpoint collapses (docs/finetune.md).
"""
import math
from typing import Dict, Tuple

# the heatmap head's final conv in MMPose 1.x and 0.x checkpoints, also as
# saved from a model wrapper (DDP)
FINAL_LAYER = ('head.final_layer', 'keypoint_head.final_layer',
               'module.head.final_layer')


def calibration_coefficients(prior: float = 0.1) -> Tuple[float, float]:
    """``(a, b)`` of ``logit = a y + b``: ``sigmoid(b) = prior`` and
    ``sigmoid(a + b) = 1 - prior``.

    Args:
        prior (float): The sigmoid the background (MSE output 0) gets, in
            (0, 0.5). Defaults to 0.1, SigmoidHeatmapHead's ``prior_prob``

    Returns:
        tuple[float, float]: ``a`` (> 0) and ``b``.
    """
    if not 0 < prior < 0.5:
        raise ValueError('`prior` (the sigmoid of the background) must lie '
                         f'in (0, 0.5), e.g. 0.1; got {prior}')
    b = math.log(prior / (1 - prior))
    return -2 * b, b


def recalibrate_final_conv(checkpoint: Dict, prior: float = 0.1) -> str:
    """Re-calibrate the heatmap head's final conv of ``checkpoint`` in
    place (see the module docstring).

    Args:
        checkpoint (dict): A loaded MMPose checkpoint (a dict with
            ``state_dict``, or a bare state dict)
        prior (float): As :func:`calibration_coefficients`. Defaults to 0.1

    Returns:
        str: The prefix of the conv that was re-calibrated (one of
        ``FINAL_LAYER``).
    """
    a, b = calibration_coefficients(prior)
    state = checkpoint.get('state_dict', checkpoint)
    prefix = next((p for p in FINAL_LAYER if f'{p}.weight' in state), None)
    if prefix is None or f'{prefix}.bias' not in state:
        names = ' or '.join(f'{p}.weight/.bias' for p in FINAL_LAYER)
        raise ValueError(
            f'the checkpoint has no heatmap head final conv ({names})')
    state[f'{prefix}.weight'] = a * state[f'{prefix}.weight']
    state[f'{prefix}.bias'] = a * state[f'{prefix}.bias'] + b
    return prefix
