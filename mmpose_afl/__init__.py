"""mmpose-afl: hard-example-aware training for MMPose 1.x.

``import mmpose_afl`` (or ``custom_imports = dict(imports=['mmpose_afl'])`` in
a config) checks the OpenMMLab versions, registers every module of the
project into MMPose's registries and lets checkpoints load with
``weights_only=True`` (see :mod:`mmpose_afl.checkpoint_globals`).
"""
import os

# albumentations (imported by MMPose's transforms, RTMPose's pipeline uses
# it) would otherwise query PyPI for a newer version at every import: a
# network call and a warning in every training process and data worker
os.environ.setdefault('NO_ALBUMENTATIONS_UPDATE', '1')

from .version import __version__, check_dependencies  # noqa: E402

check_dependencies()

from .checkpoint_globals import allow_numpy_dtypes  # noqa: E402

allow_numpy_dtypes()

from . import models  # (registers)
from . import codecs, datasets, engine, evaluation  # noqa: E402,F401

__all__ = ['__version__', 'check_dependencies']
