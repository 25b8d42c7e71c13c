"""Models of mmpose-afl: losses and heads, registered in MMPose's MODELS."""
from . import heads, losses  # noqa: F401
