"""mmpose-afl: hard-example-aware training for MMPose 1.x.

The OpenMMLab stack (torch, a compiled mmcv, mmengine, mmpose) cannot be
resolved by pip on its own here, so it is not listed in ``install_requires``:
``tools/install_stack.sh`` (run by ``make test`` / ``make demo``) installs it,
and ``import mmpose_afl`` checks the versions and says what is missing.
"""
from setuptools import find_packages, setup

setup(
    name='mmpose_afl',
    version='0.1.0',
    description='Adversarial Focal Loss, FoWKAL, SAHR/WAHR and HSM for MMPose 1.x',
    packages=find_packages(include=['mmpose_afl', 'mmpose_afl.*']),
    python_requires='>=3.8',
    include_package_data=True,
)
