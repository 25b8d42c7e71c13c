"""The rules by which tests/conftest.py marks a test ``e2e``, on small
functions written here to start (or not) a run the ways the tests do."""
import subprocess
import sys

from tests import e2e
from tests.conftest import _starts_a_run
from tests.e2e import run_train
from tests.trained_runs import trained


def _through_a_helper(config, work_dir):
    return run_train(config, work_dir)


def _through_the_module(config, work_dir):
    return e2e.run_dist_train(config, work_dir)


def _shared_work_dir(tmp_path_factory, data_root):
    return trained('a.py', tmp_path_factory, data_root)


def _runner_that_trains(cfg):
    from mmengine.runner import Runner
    Runner.from_cfg(cfg).train()


def _runner_that_only_loads(cfg):
    from mmengine.runner import Runner
    return Runner.build_dataloader(cfg.train_dataloader)


def _train_mode(model):
    return model.train()


def _mim_train(python, config):
    subprocess.run([python, '-m', 'mim', 'train', 'mmpose', config])


def _demo():
    subprocess.run([sys.executable, 'tools/demo.py', '--epochs', '1'])


def _demo_named_only():
    return 'tools/demo.py' in ['tools/demo.py']


# in tuples, which the rules do not follow, so that the tests below do not
# start a run in the rules' eyes and stay in the fast tier
STARTS = (_through_a_helper, _through_the_module, _shared_work_dir,
          _runner_that_trains, _mim_train, _demo)
STARTS_NONE = (_runner_that_only_loads, _train_mode, _demo_named_only,
               e2e.short_schedule)


def test_runs_are_found():
    for func in STARTS:
        assert _starts_a_run(func, set()), func.__name__


def test_what_starts_no_run_is_not_marked():
    for func in STARTS_NONE:
        assert not _starts_a_run(func, set()), func.__name__
