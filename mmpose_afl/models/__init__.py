"""Models of mmpose-afl: losses and heads, registered in MMPose's MODELS."""
from . import afl_conditional_critic, afl_critic, heads, losses  # noqa: F401
