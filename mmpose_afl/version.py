"""Version of mmpose-afl and the check of the OpenMMLab stack it runs on."""
from importlib import import_module
from typing import Dict, Tuple

from packaging.version import Version

__version__ = '0.1.0'

# module name -> (lowest version allowed, first version not allowed); the
# two ends CI tests are in docs/installation.md. torch 2.1: the oldest
# stack CI installs (``torch.func.vmap``, ``torch.compile`` and the
# ``torch.autocast`` the losses use exist there); no upper bound below 3.
REQUIRED: Dict[str, Tuple[str, str]] = {
    'torch': ('2.1.0', '3.0.0'),
    'mmengine': ('0.10.0', '1.0.0'),
    'mmcv': ('2.0.1', '2.2.0'),
    'mmpose': ('1.3.0', '1.4.0'),
}

INSTALL_HINT = ('Supported: torch 2.1-2.x, mmengine 0.10.x (official or '
                'onedl-mmengine), mmcv 2.0.1-2.1.x compiled with ops, mmpose '
                '1.3.x; docs/installation.md. `bash tools/install_stack.sh` '
                'in the mmpose-afl checkout installs a tested stack.')


def check_dependencies() -> None:
    """Fail with a message saying what to install when a package is missing
    or outside the supported range.

    Raises:
        ImportError: naming the package, the version found and the range
            required.
    """
    for name, (low, high) in REQUIRED.items():
        try:
            module = import_module(name)
        except ImportError as err:
            raise ImportError(
                f'mmpose_afl needs {name}>={low},<{high}, which is not '
                f'installed ({err}). {INSTALL_HINT}') from err
        # a local build tag (torch's '2.1.2+cpu') is within its release
        found = str(getattr(module, '__version__', '0')).split('+')[0]
        if not Version(low) <= Version(found) < Version(high):
            raise ImportError(
                f'mmpose_afl needs {name}>={low},<{high}, found {name} '
                f'{found}. {INSTALL_HINT}')
    try:
        import_module('mmcv.ops')
    except ImportError as err:
        raise ImportError(
            'mmpose_afl needs mmcv compiled with ops (mmcv-lite is not '
            f'enough: mmpose.models imports mmcv.ops): {err}. '
            f'{INSTALL_HINT}') from err
