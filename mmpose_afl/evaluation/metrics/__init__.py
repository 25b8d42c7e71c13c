"""Metrics of mmpose-afl, registered in MMPose's METRICS."""
from .stratified_metric import (StratifiedCocoMetric,  # noqa: F401
                                StratifiedCocoWholeBodyMetric)
from .wholebody_part_metric import CocoWholeBodyPartMetric  # noqa: F401
