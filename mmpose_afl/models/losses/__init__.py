"""Losses of mmpose-afl, registered in MMPose's MODELS."""
from .hsm_loss import HSMLoss  # noqa: F401
from .wahr_loss import WAHRLoss  # noqa: F401
