"""Losses of mmpose-afl, registered in MMPose's MODELS."""
