"""Hooks of mmpose-afl, registered in MMPose's HOOKS."""
from .afl_critic_hook import AFLCriticHook  # noqa: F401
from .float32_head_outputs_hook import Float32HeadOutputsHook  # noqa: F401
from .reseed_hook import ReseedBeforeInitHook  # noqa: F401
from .sigmoid_head_calibration_hook import \
    SigmoidHeadCalibrationHook  # noqa: F401
