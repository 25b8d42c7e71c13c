"""Shared fixtures: tiny synthetic COCO and COCO-WholeBody datasets, made
once per test session with the project's own generator; losses run
eagerly here (tests/test_models/test_compiled.py switches compiling on).

The ``e2e`` marker: ``pytest -m "not e2e"`` runs the fast tier. A test is
marked when it starts a real training or test run, decided at collection
from the code of the test function, of the fixtures it requests (their
whole closure) and of every function defined under tests/ that those call,
followed through names and module attributes (see :func:`_starts_a_run`):

* it calls one of :data:`RUNNERS` (``mim train`` / ``mim test``, 2-process
  DDP, the shared trained work dirs, the bf16 Runner runs); a new helper
  that starts a run another way belongs there;
* it calls ``from_cfg`` and ``train``, ``test`` or ``val`` in one function
  (an MMEngine Runner that runs);
* it starts a subprocess whose command names ``mim`` with ``train`` /
  ``test``, or a script of :data:`RUNNING_SCRIPTS` (each of them trains),
  as string constants of one function.

A test marked by hand (``pytestmark = pytest.mark.e2e`` in a file that is
end to end throughout) keeps its mark. tests/test_e2e_marker.py checks the
rules.
"""
import inspect
import os
import types
from pathlib import Path

import pytest

# hundreds of small loss instances would each compile once: eager is the
# reference the compiled path is tested against (inherited by the e2e runs)
os.environ.setdefault('TORCH_COMPILE_DISABLE', '1')


def _generate(tmp_path_factory, kind: str) -> Path:
    from mmpose_afl.datasets.synthetic import generate_dataset
    root = tmp_path_factory.mktemp(f'synthetic_{kind}')
    generate_dataset(root, kind=kind, num_train=8, num_val=4, seed=0)
    return root


@pytest.fixture(scope='session')
def synthetic_coco(tmp_path_factory) -> Path:
    """Root of a generated COCO-format set (8 train, 4 val images)."""
    return _generate(tmp_path_factory, 'coco')


@pytest.fixture(scope='session')
def synthetic_wholebody(tmp_path_factory) -> Path:
    """Root of a generated COCO-WholeBody set (8 train, 4 val images)."""
    return _generate(tmp_path_factory, 'wholebody')


TESTS = Path(__file__).resolve().parent
#: (module, function) of the helpers that start a real run
RUNNERS = {('tests.e2e', 'run_train'), ('tests.e2e', 'run_test'),
           ('tests.e2e', 'run_dist_train'), ('tests.trained_runs', 'trained'),
           ('tests.amp_runs', 'amp_run'), ('tests.amp_runs', 'bf16_runner')}
#: scripts that train whenever a test runs them (matched by file name)
RUNNING_SCRIPTS = {
    'demo.py', 'gpu_check.py', 'bench_accuracy.py', 'dist_train_cpu.py'
}
_RUNNER_CALLS = {'train', 'test', 'val'}


def _codes(code: types.CodeType):
    """``code`` and the code objects nested in it (defs, lambdas)."""
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _in_tests(obj) -> bool:
    try:
        return TESTS in Path(inspect.getfile(obj)).resolve().parents
    except TypeError:  # builtins
        return False


def _starts_a_run(func, seen: set) -> bool:
    """Whether ``func`` or a function under tests/ it calls starts a run
    (the rules of the module docstring)."""
    func = inspect.unwrap(getattr(func, '__func__', func))
    if (not isinstance(func, types.FunctionType) or func in seen
            or func.__module__ == __name__):  # these rules name mim
        return False
    seen.add(func)
    if (func.__module__, func.__name__) in RUNNERS:
        return True
    called = []
    for code in _codes(func.__code__):
        names = set(code.co_names)
        consts = {c for c in code.co_consts if isinstance(c, str)}
        if 'from_cfg' in names and names & _RUNNER_CALLS:
            return True
        if 'mim' in consts and consts & {'train', 'test'}:
            return True
        scripts = {Path(c).name for c in consts if ' ' not in c}
        if scripts & RUNNING_SCRIPTS and names & {'subprocess', 'executable'}:
            return True
        for name in names:
            value = func.__globals__.get(name)
            if isinstance(value, types.ModuleType) and _in_tests(value):
                called += [getattr(value, n, None) for n in names]
            elif value is not None:
                called.append(value)
    return any(
        _starts_a_run(f, seen) for f in called
        if isinstance(f, types.FunctionType) and _in_tests(f))


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'e2e: starts a real training or test run (mim train / '
        'mim test, DDP, an MMEngine Runner); deselect with -m "not e2e"')


def pytest_collection_modifyitems(config, items):
    for item in items:
        if item.get_closest_marker('e2e'):
            continue
        seen: set = set()
        funcs = [getattr(item, 'function', None)]
        fixtures = getattr(item, '_fixtureinfo', None)
        for defs in (fixtures.name2fixturedefs.values() if fixtures else ()):
            funcs += [d.func for d in defs]
        if any(_starts_a_run(f, seen) for f in funcs if f is not None):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope='session')
def multi_scale_coco(tmp_path_factory) -> Path:
    """Root of a multi-person synthetic COCO set for the bottom-up configs
    (4 train, 2 val images)."""
    from mmpose_afl.datasets.synthetic import generate_dataset
    root = tmp_path_factory.mktemp('synthetic_coco_multi_scale')
    generate_dataset(
        root, 'coco', num_train=4, num_val=2, seed=0, layout='multi_scale')
    return root
