"""Heads of mmpose-afl, registered in MMPose's MODELS."""
from .sahr_head import SAHRHead  # noqa: F401
from .sigmoid_heatmap_head import SigmoidHeatmapHead  # noqa: F401
