"""Losses of mmpose-afl, registered in MMPose's MODELS."""
from .afl_loss import AFLRegressionLoss  # noqa: F401
from .afl_loss import AFLHeatmapLoss, AFLSimCCLoss
from .fowkal_loss import FoWKALLoss  # noqa: F401
from .gaussian_support import GAUSSIAN_SUPPORT_FLOOR  # noqa: F401
from .gaussian_support import check_support_floor, gaussian_support
from .hsm_loss import HSMLoss  # noqa: F401
from .loss_weighted_loss import LossWeightedHeatmapLoss  # noqa: F401
from .per_sample_loss import PerSampleHeatmapLoss  # noqa: F401
from .per_sample_loss import check_heatmap_shapes
from .wahr_loss import WAHRLoss  # noqa: F401
