"""Evaluation pieces of mmpose-afl, registered in MMPose's METRICS."""
from . import metrics  # noqa: F401
