"""Metrics of mmpose-afl, registered in MMPose's METRICS."""
