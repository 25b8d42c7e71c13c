"""Training-loop pieces of mmpose-afl (hooks), registered in MMPose's HOOKS."""
from . import hooks  # noqa: F401
