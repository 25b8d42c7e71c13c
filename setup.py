"""The build step of mmpose-afl that pyproject.toml (which holds the
metadata) cannot declare: ``build_py`` adds, beside the Python modules,

* ``mmpose_afl/.mim/``: ``configs/`` and ``model-index.yml``, where MMEngine
  looks for the configs that ``_base_ = ['mmpose_afl::<folder>/<config>.py']``
  names and ``mim search`` for the model index. As MMPose does it (its
  ``add_mim_extension``): copies in a wheel, links into the checkout for an
  editable install, so that an edited config is used at once.
* ``mmpose_afl-mmengine.pth`` at the top of site-packages, whose one line
  runs ``mmpose_afl_bootstrap.install()`` at interpreter start: it lets
  MMEngine accept the ``mmpose_afl::`` prefix (the module says why a .pth).

Unlike MMPose's hook, which looks for ``develop`` in ``sys.argv``, this works
for PEP 660 editable installs (``pip install -e .``). See docs/packaging.md.
"""
import os
import shutil
from pathlib import Path
from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: what goes into mmpose_afl/.mim (paths relative to the repo root)
MIM_FILES = ('configs', 'model-index.yml')
PTH_NAME = 'mmpose_afl-mmengine.pth'
PTH_LINE = 'import mmpose_afl_bootstrap; mmpose_afl_bootstrap.install()\n'


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


class BuildPy(build_py):
    """``build_py`` that also writes ``.mim`` and the ``.pth`` file."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            # the package is imported from the checkout: link .mim there;
            # editable_wheel points install_lib at the wheel it is packing
            self._link_mim(ROOT / 'mmpose_afl' / '.mim')
            target = Path(self.get_finalized_command('install').install_lib)
        else:
            self._copy_mim(Path(self.build_lib) / 'mmpose_afl' / '.mim')
            target = Path(self.build_lib)
        target.mkdir(parents=True, exist_ok=True)
        (target / PTH_NAME).write_text(PTH_LINE, encoding='utf-8')

    @staticmethod
    def _link_mim(mim: Path) -> None:
        mim.mkdir(parents=True, exist_ok=True)
        for name in MIM_FILES:
            link = mim / name
            _remove(link)
            try:  # relative: the checkout may move
                link.symlink_to(os.path.relpath(ROOT / name, mim))
            except OSError:  # no symlinks (e.g. Windows without rights)
                BuildPy._copy_one(ROOT / name, link)

    @staticmethod
    def _copy_mim(mim: Path) -> None:
        _remove(mim)  # no stale configs from an earlier build
        mim.mkdir(parents=True)
        for name in MIM_FILES:
            BuildPy._copy_one(ROOT / name, mim / name)

    @staticmethod
    def _copy_one(src: Path, dst: Path) -> None:
        if not src.exists():
            raise FileNotFoundError(f'{src} is missing: it must be shipped '
                                    'in mmpose_afl/.mim')
        if src.is_dir():
            shutil.copytree(
                src,
                dst,
                ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))
        else:
            shutil.copyfile(src, dst)


setup(cmdclass={'build_py': BuildPy})
