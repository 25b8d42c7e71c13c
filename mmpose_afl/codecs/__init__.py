"""Codecs of mmpose-afl, registered in MMPose's KEYPOINT_CODECS."""
from .associative_embedding import AssociativeEmbeddingLabels  # noqa: F401
