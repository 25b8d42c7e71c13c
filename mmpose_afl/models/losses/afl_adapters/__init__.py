"""Adapters of head families to AFL, one small object per family (the
protocol is in ``base.py``; docs/afl.md, "How to add AFL to a new
head")."""
from .base import KeypointAdapter, Keypoints  # noqa: F401
from .heatmap import HeatmapAdapter  # noqa: F401
from .regression import RegressionAdapter  # noqa: F401
from .simcc import SimCCAdapter, expected_bins  # noqa: F401
