"""Hooks of mmpose-afl, registered in MMPose's HOOKS."""
