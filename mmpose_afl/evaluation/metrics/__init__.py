"""Metrics of mmpose-afl, registered in MMPose's METRICS."""
from .wholebody_part_metric import CocoWholeBodyPartMetric  # noqa: F401
