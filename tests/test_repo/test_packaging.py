"""The package as a user installs it (docs/packaging.md): a wheel built from
this repo's source distribution and installed, not editable, into a
throw-away environment beside the verified stack; a config of the user's
own, outside the repo, that takes its bases from the installed copy with
``mmpose_afl::`` and trains with ``mim train``; the editable install that
``tools/install_stack.sh`` makes; the model index; the scope's registries.

The throw-away environments are venvs without pip whose site-packages holds
a ``.pth`` line naming this environment's site-packages (torch, MMPose, ...
are not reinstalled). A plain path line adds no site directory, so the
checkout's editable install there (its finder is started by a ``.pth``) is
not seen: ``mmpose_afl`` comes from the wheel, which the tests assert.
"""
import ast
import json
import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import types
import zipfile
from pathlib import Path

import pytest
import yaml

from tests.e2e import REPO, data_options, short_schedule

CONFIG = 'afl/td-hm_res18_afl-1xb16-20e_synthetic-coco-128x96.py'
STACK = Path(sysconfig.get_paths()['purelib'])
TIMEOUT = 600

USER_CONFIG = f"""\
_base_ = ['mmpose_afl::{CONFIG}']
# the user's own change on top of the shipped config
train_cfg = dict(max_epochs=1)
"""

# run by a throw-away environment's interpreter: what it imports and how
# the user's config resolves, without importing mmpose_afl itself (its
# custom_imports: torch and MMPose take seconds; mim train imports them)
PROBE = """\
import importlib.util, json, sys
stack = {'mmengine', 'torch', 'mmpose', 'mmpose_afl'}
stack_at_start = sorted({m.split('.')[0] for m in sys.modules} & stack)
hooked = any(type(f).__name__ == '_TableHook' for f in sys.meta_path)
from mmengine.config import Config
from mmengine.config.utils import MODULE2PACKAGE
cfg = Config.fromfile(sys.argv[1], import_custom_modules=False)
print(json.dumps(dict(
    stack_at_start=stack_at_start, hooked=hooked,
    package=importlib.util.find_spec('mmpose_afl').origin,
    table=MODULE2PACKAGE.get('mmpose_afl'),
    files=[l for l in cfg.text.splitlines() if l.startswith('/')],
    cfg=cfg.to_dict()), default=str))
"""


def _env() -> dict:
    """This environment without PYTHONPATH (which would expose the
    checkout), one thread, no pip network."""
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONPATH'}
    env.update(
        OMP_NUM_THREADS='1',
        PIP_DISABLE_PIP_VERSION_CHECK='1',
        PIP_NO_INDEX='1')
    return env


def _run(cmd, cwd: Path, log: Path = None) -> str:
    proc = subprocess.run([str(c) for c in cmd],
                          cwd=cwd,
                          env=_env(),
                          capture_output=True,
                          text=True,
                          timeout=TIMEOUT)
    text = proc.stdout + proc.stderr
    if log is not None:
        log.write_text(text)
    assert proc.returncode == 0, (f'{" ".join(map(str, cmd))} failed '
                                  f'({proc.returncode}):\n{text[-6000:]}')
    return proc.stdout


def _throw_away_env(root: Path) -> tuple:
    """A venv at ``root`` that sees this environment's packages; returns
    its interpreter and site-packages."""
    _run([sys.executable, '-m', 'venv', '--without-pip', root], root.parent)
    python = root / 'bin' / 'python'
    site = Path(
        _run([
            python, '-c', 'import sysconfig; print(sysconfig.'
            "get_paths()['purelib'])"
        ], root.parent).strip())
    (site / 'the_stack.pth').write_text(f'{STACK}\n')
    return python, site


def _pip(python: Path, *args) -> str:
    return _run([sys.executable, '-m', 'pip', '--python', python, *args], REPO)


@pytest.fixture(scope='module')
def outside():
    """A folder outside the repo (pytest's own may lie in work_dirs/)."""
    with tempfile.TemporaryDirectory(prefix='mmpose_afl_packaging_') as tmp:
        tmp = Path(tmp).resolve()
        if tmp.is_relative_to(REPO):
            pytest.skip(f'the temporary folder {tmp} lies inside the repo')
        yield tmp


@pytest.fixture(scope='module')
def wheel(outside) -> Path:
    """The wheel that ``pip wheel`` builds from this repo's sdist."""
    dist = outside / 'dist'
    sdist = _run([
        sys.executable, '-c', 'import sys; from setuptools import '
        'build_meta; print(build_meta.build_sdist(sys.argv[1]))', dist
    ], REPO).strip().splitlines()[-1]
    with tarfile.open(dist / sdist) as tar:
        names = tar.getnames()
    assert not [n for n in names if '/.mim' in n], 'links packed in sdist'
    _run([
        sys.executable, '-m', 'pip', 'wheel', '--no-deps',
        '--no-build-isolation', '-w', dist, dist / sdist
    ], outside)
    (found, ) = dist.glob('mmpose_afl-*.whl')
    return found


@pytest.fixture(scope='module')
def installed(outside, wheel) -> tuple:
    """The wheel installed into a throw-away environment, and a user's
    config beside it; returns (interpreter, site-packages, config)."""
    python, site = _throw_away_env(outside / 'venv')
    _pip(python, 'install', '--no-deps', wheel)
    user = outside / 'my_project'
    user.mkdir()
    config = user / 'my_afl_config.py'
    config.write_text(USER_CONFIG)
    return python, site, config


def _probe(python: Path, config: Path) -> dict:
    out = _run([python, '-c', PROBE, config], config.parent)
    return json.loads(out.strip().splitlines()[-1])


def test_wheel_holds_metadata_configs_and_hook(wheel):
    version = ast.parse((REPO / 'mmpose_afl' / 'version.py').read_text())
    (__version__, ) = [
        n.value.value for n in version.body
        if isinstance(n, ast.Assign) and n.targets[0].id == '__version__'
    ]
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        meta_name = next(n for n in names if n.endswith('.dist-info/METADATA'))
        meta = whl.read(meta_name).decode()
        pth = whl.read('mmpose_afl-mmengine.pth').decode()
    for line in ('Name: mmpose-afl', f'Version: {__version__}',
                 'License-Expression: Apache-2.0', 'License-File: LICENSE',
                 'Requires-Python: >=3.8', 'Provides-Extra: tests',
                 'Description-Content-Type: text/markdown'):
        assert line in meta.splitlines(), line
    assert '\n# mmpose-afl\n' in meta  # the README as long description
    # no OpenMMLab package among the requirements (docs/packaging.md)
    requires = [
        ln for ln in meta.splitlines()
        if ln.startswith('Requires-Dist:') and 'extra ==' not in ln
    ]
    assert not [
        r for r in requires if any(
            p in r for p in ('torch', 'mmcv', 'mmengine', 'mmpose'))
    ], requires
    assert any(n.endswith('.dist-info/licenses/LICENSE') for n in names)
    assert pth == ('import mmpose_afl_bootstrap; '
                   'mmpose_afl_bootstrap.install()\n')
    assert 'mmpose_afl_bootstrap.py' in names
    assert 'mmpose_afl/registry.py' in names
    shipped = {
        n[len('mmpose_afl/.mim/'):]
        for n in names if n.startswith('mmpose_afl/.mim/')
    }
    configs = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / 'configs').rglob('*')
        if p.is_file() and '__pycache__' not in p.parts
    }
    assert shipped == configs | {'model-index.yml'}


def test_installed_wheel_resolves_mmpose_afl_bases(installed):
    python, site, config = installed
    probe = _probe(python, config)
    # the wheel's copy, not the checkout
    assert Path(probe['package']) == site / 'mmpose_afl' / '__init__.py'
    assert not Path(probe['package']).is_relative_to(REPO)
    assert not (site / 'mmpose_afl' / '.mim' / 'configs').is_symlink()
    # the hook waits for MMEngine: nothing of the stack imported at start
    assert probe['hooked'] and probe['stack_at_start'] == []
    assert probe['table'] == 'mmpose_afl'
    # the whole chain of this package's bases comes from the installed copy
    ours = [f for f in probe['files'] if '/mmpose_afl/' in f]
    mim = site / 'mmpose_afl' / '.mim' / 'configs'
    assert sorted(Path(f).relative_to(mim).as_posix() for f in ours) == [
        '_base_/datasets/synthetic_coco.py', CONFIG,
        'baseline/td-hm_res18_1xb16-20e_synthetic-coco-128x96.py'
    ]
    checkout = (REPO / 'configs', REPO / 'mmpose_afl')
    assert not [
        f for f in probe['files'] if any(
            Path(f).is_relative_to(c) for c in checkout)
    ]
    cfg = probe['cfg']
    assert cfg['model']['head']['loss']['type'] == 'AFLHeatmapLoss'
    assert cfg['custom_hooks'] == [
        dict(type='SyncBuffersHook', _scope_='mmpose_afl'),
        dict(type='AFLCriticHook', _scope_='mmpose_afl')
    ]
    assert cfg['custom_imports']['imports'] == ['mmpose_afl']
    assert cfg['train_dataloader']['dataset']['data_root'] == (
        'data/synthetic_coco/')
    assert cfg['default_scope'] == 'mmpose'
    assert cfg['train_cfg']['max_epochs'] == 1  # the user's own override


def test_installed_wheel_trains_with_mim(installed, synthetic_coco):
    python, _, config = installed
    work_dir = config.parent / 'work_dir'
    text = _run([
        python, '-m', 'mim', 'train', 'mmpose', config, '--work-dir', work_dir,
        '--cfg-options', *data_options(synthetic_coco), *short_schedule()
    ], config.parent, config.parent / 'console_train.log')
    log = (config.parent / 'console_train.log').read_text()
    # the epoch's last iteration was logged
    assert re.search(r'Epoch\(train\) +\[1\]\[ *(\d+)/\1\]', log), text[-3000:]
    assert 'afl_critic_loss' in log  # AFLCriticHook (scope mmpose_afl) ran
    assert 'coco/AP' in log
    assert (work_dir / 'epoch_1.pth').is_file()
    assert str(REPO / 'mmpose_afl') not in log


def test_mim_search_lists_the_method_configs_after_a_plain_install(installed):
    # what docs/packaging.md offers after `pip install .`
    python, _, config = installed
    out = _run([python, '-m', 'mim', 'search', 'mmpose_afl', '--valid-config'],
               config.parent)
    index = yaml.safe_load((REPO / 'model-index.yml').read_text())
    names = set()
    for metafile in index['Import']:
        for model in yaml.safe_load((REPO / metafile).read_text())['Models']:
            names.add(model['Name'])
    # printed as a list of quoted names after 'valid config ids:'
    listed = set(re.findall(r"'([^']+)'", out.split('config ids:')[-1]))
    assert names and names <= listed, sorted(names - listed)


def test_editable_install_lists_configs_as_documented():
    # mim search cannot see an editable (PEP 660) install: it looks for the
    # package folder beside the .dist-info in site-packages. The docs give
    # MMEngine's lookup instead, which finds it by its import name
    doc = (REPO / 'docs' / 'packaging.md').read_text()
    snippet = doc.split("python - <<'EOF'\n", 1)[1].split('EOF\n', 1)[0]
    out = subprocess.run([sys.executable, '-c', snippet],
                         capture_output=True,
                         text=True,
                         cwd=REPO.parent,
                         timeout=TIMEOUT)
    assert out.returncode == 0, out.stderr
    listed = out.stdout.split()
    expected = sorted(f'mmpose_afl::{p.relative_to(REPO / "configs")}'
                      for p in (REPO / 'configs').rglob('*.py'))
    assert sorted(listed) == expected


def test_editable_install_links_the_checkout(outside):
    """What ``tools/install_stack.sh`` runs, into a throw-away
    environment: ``mmpose_afl/.mim`` links into the checkout."""
    python, site = _throw_away_env(outside / 'venv_editable')
    _pip(python, 'install', '--no-deps', '--no-build-isolation', '-e', REPO)
    mim = REPO / 'mmpose_afl' / '.mim'
    assert (mim / 'configs').is_symlink()
    assert (mim / 'configs').resolve() == REPO / 'configs'
    assert (mim / 'model-index.yml').resolve() == REPO / 'model-index.yml'
    assert (site / 'mmpose_afl-mmengine.pth').is_file()
    config = outside / 'editable_user' / 'my_afl_config.py'
    config.parent.mkdir()
    config.write_text(USER_CONFIG)
    probe = _probe(python, config)
    assert Path(probe['package']) == REPO / 'mmpose_afl' / '__init__.py'
    assert probe['table'] == 'mmpose_afl'
    assert f'{mim}/configs/{CONFIG}' in probe['files']
    assert probe['cfg']['model']['head']['loss']['type'] == 'AFLHeatmapLoss'


def test_requires_python_is_what_the_package_needs():
    # a static minimum-version check of everything the wheel ships, so the
    # declared lowest Python cannot drift from what the code uses
    meta = (REPO / 'pyproject.toml').read_text()
    declared = re.search(r'^requires-python = ">=(3\.\d+)"$', meta, re.M)
    assert declared, 'requires-python must be a plain lower bound'
    out = subprocess.run([
        str(Path(sys.executable).parent / 'vermin'), '--no-tips',
        '--eval-annotations', '--violations', f'-t={declared.group(1)}-',
        'mmpose_afl', 'mmpose_afl_bootstrap.py', 'setup.py'
    ],
                         capture_output=True,
                         text=True,
                         cwd=REPO,
                         timeout=TIMEOUT)
    assert out.returncode == 0, out.stdout + out.stderr


def test_model_index_lists_every_metafile():
    index = yaml.safe_load((REPO / 'model-index.yml').read_text())
    metafiles = sorted(
        p.relative_to(REPO).as_posix()
        for p in REPO.glob('configs/*/metafile.yml'))
    assert sorted(index['Import']) == metafiles


def test_bootstrap_registers_at_once_when_mmengine_is_loaded(monkeypatch):
    import mmpose_afl_bootstrap as bootstrap
    table = types.ModuleType(bootstrap.TABLE_MODULE)
    table.MODULE2PACKAGE = {'mmpose': 'mmpose'}
    monkeypatch.setitem(sys.modules, bootstrap.TABLE_MODULE, table)
    # without the hook that an installed .pth may have started already
    monkeypatch.setattr(
        sys, 'meta_path',
        [f for f in sys.meta_path if not isinstance(f, bootstrap._TableHook)])
    bootstrap.install()
    assert table.MODULE2PACKAGE == {
        'mmpose': 'mmpose',
        'mmpose_afl': 'mmpose_afl'
    }
    assert not [
        f for f in sys.meta_path if isinstance(f, bootstrap._TableHook)
    ]
    # an entry someone set already is kept
    table.MODULE2PACKAGE['mmpose_afl'] = 'mmpose-afl'
    bootstrap.install()
    assert table.MODULE2PACKAGE['mmpose_afl'] == 'mmpose-afl'


def test_scope_registries_fall_through_to_mmpose():
    import mmengine.registry as mmengine_registry
    from mmpose.engine.hooks import PoseVisualizationHook

    from mmpose_afl.engine.hooks.afl_critic_hook import AFLCriticHook
    from mmpose_afl.registry import REGISTRIES
    assert {
        'MODELS', 'HOOKS', 'DATASETS', 'TRANSFORMS', 'VISUALIZERS', 'METRICS',
        'KEYPOINT_CODECS'
    } <= set(REGISTRIES)
    hooks = REGISTRIES['HOOKS']
    assert hooks.scope == 'mmpose_afl'
    # MMEngine's search for the scope from its root finds the child
    assert mmengine_registry.HOOKS._search_child('mmpose_afl') is hooks
    assert hooks.get('AFLCriticHook') is AFLCriticHook
    assert hooks.get('PoseVisualizationHook') is PoseVisualizationHook
    assert hooks.get('CheckpointHook') is mmengine_registry.HOOKS.get(
        'CheckpointHook')
    assert hooks.get('NoSuchHook') is None
