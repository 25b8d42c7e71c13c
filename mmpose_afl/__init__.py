"""mmpose-afl: hard-example-aware training for MMPose 1.x.

``import mmpose_afl`` (or ``custom_imports = dict(imports=['mmpose_afl'])`` in
a config) checks the OpenMMLab versions and registers every module of the
project into MMPose's registries.
"""
from .version import __version__, check_dependencies

check_dependencies()

from . import datasets, engine, evaluation, models  # noqa: E402,F401  (registers)

__all__ = ['__version__', 'check_dependencies']
