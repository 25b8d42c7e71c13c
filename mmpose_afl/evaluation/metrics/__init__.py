"""Metrics of mmpose-afl, registered in MMPose's METRICS."""
from .stratified_metric import StratifiedCocoMetric  # noqa: F401
from .stratified_metric import StratifiedCocoWholeBodyMetric
from .wholebody_part_metric import CocoWholeBodyPartMetric  # noqa: F401
