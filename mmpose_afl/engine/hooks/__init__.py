"""Hooks of mmpose-afl, registered in MMPose's HOOKS."""
from .afl_critic_hook import AFLCriticHook  # noqa: F401
