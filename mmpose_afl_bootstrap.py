"""Lets an MMEngine config take its bases from this package, e.g.
``_base_ = ['mmpose_afl::<folder>/<config>.py']`` (a path under this repo's
``configs/``).

MMEngine resolves a ``pkg::`` base only for the packages in its table
``mmengine.config.utils.MODULE2PACKAGE`` (the OpenMMLab projects), and it
reads a config's ``_base_`` before ``custom_imports`` imports anything, so
adding ``mmpose_afl`` to that table at ``import mmpose_afl`` is too late for
``mim train``. Hence this module, installed beside ``mmpose_afl`` with a
``mmpose_afl-mmengine.pth`` file whose one line runs :func:`install` at
every interpreter start: it adds the entry as soon as MMEngine's config
module is imported, through an import hook. It imports nothing of MMEngine
(nor torch) itself, so an interpreter that never uses MMEngine pays one
string comparison per import until then, and MMEngine's installed files stay
as they are. See docs/packaging.md.
"""
import sys
from types import ModuleType
from typing import Optional, Sequence

#: the MMEngine module that holds the table
TABLE_MODULE = 'mmengine.config.utils'
#: the ``pkg::`` prefix, also this package's import name; MMEngine's
#: ``get_installed_path`` finds an editable install by the import name only
SCOPE = 'mmpose_afl'


def register(module: ModuleType) -> bool:
    """Add :data:`SCOPE` to ``module.MODULE2PACKAGE`` if it is not there.

    Args:
        module (ModuleType): ``mmengine.config.utils``.

    Returns:
        bool: whether the table exists (and now holds the entry).
    """
    table = getattr(module, 'MODULE2PACKAGE', None)
    if not isinstance(table, dict):
        return False
    table.setdefault(SCOPE, SCOPE)
    return True


class _TableHook:
    """A ``sys.meta_path`` finder that only watches for
    :data:`TABLE_MODULE`: it lets the other finders find it, wraps the
    loader's ``exec_module`` to :func:`register` right after the module
    runs, and leaves ``sys.meta_path`` (one shot)."""

    def find_spec(self,
                  fullname: str,
                  path: Optional[Sequence[str]] = None,
                  target: Optional[ModuleType] = None):
        if fullname != TABLE_MODULE:
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        for finder in sys.meta_path:
            find = getattr(finder, 'find_spec', None)
            spec = find(fullname, path, target) if find else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        exec_module = getattr(loader, 'exec_module', None)
        if exec_module is None or isinstance(loader, type):
            return spec  # not a per-module loader object: left alone

        def exec_and_register(module: ModuleType) -> None:
            exec_module(module)
            if module.__name__ == TABLE_MODULE:
                register(module)

        loader.exec_module = exec_and_register
        return spec


def install() -> None:
    """Make sure ``mmpose_afl`` is in MMEngine's table: at once if
    MMEngine's config module is already imported, else when it is."""
    module = sys.modules.get(TABLE_MODULE)
    if module is not None:
        register(module)
    elif not any(isinstance(f, _TableHook) for f in sys.meta_path):
        sys.meta_path.insert(0, _TableHook())
