"""Heads of mmpose-afl, registered in MMPose's MODELS."""
from .ae_sahr_head import AESAHRHead, MaskedAEHead  # noqa: F401
from .sahr_head import SAHRHead  # noqa: F401
from .sigmoid_heatmap_head import SigmoidHeatmapHead  # noqa: F401
