"""Real end-to-end runs for the tests: ``mim train`` / ``mim test`` and
2-process CPU DDP, each in a subprocess on the synthetic data.

Nothing here mocks MMPose or MMEngine: the commands are the ones a user types
(see README), with ``--cfg-options`` that point the configs at a test's own
tiny dataset and shorten the schedule.
"""
import socket
import sys
from pathlib import Path
from typing import List, Optional, Sequence

from mmpose_afl.utils.mim_run import (CommandError, data_options,
                                      last_checkpoint, loader_options,
                                      mim_command, run_command)

REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 900
# this checkout's mmpose_afl (and tests.ddp_probe) in every run, one thread
ENV = dict(PYTHONPATH=str(REPO), OMP_NUM_THREADS='1')
__all__ = [
    'REPO', 'data_options', 'short_schedule', 'run_train', 'run_test',
    'run_dist_train', 'last_checkpoint', 'with_probe', 'rank_states',
    'assert_same_tensors'
]


def short_schedule(max_epochs: int = 1,
                   batch_size: int = 4,
                   val_interval: int = 1) -> List[str]:
    """``--cfg-options`` for a few-iteration run that still validates and
    saves a checkpoint every epoch, in a single process (no loader
    workers) to keep the 2-core CI machine responsive."""
    return [
        f'train_cfg.max_epochs={max_epochs}',
        f'train_cfg.val_interval={val_interval}',
        f'train_dataloader.batch_size={batch_size}',
        *loader_options(0),
        'default_hooks.checkpoint.interval=1',
        'default_hooks.logger.interval=1',
    ]


def _run(cmd: Sequence[str], log: Path) -> str:
    """``cmd`` in the repo; its log's text, or an AssertionError with the
    log's end."""
    try:
        return run_command(cmd, log, cwd=REPO, env=ENV, timeout=TIMEOUT).text
    except CommandError as error:
        raise AssertionError(str(error)) from None


def _options(data_root, kind, cfg_options) -> List[str]:
    opts = []
    if data_root is not None:
        opts += data_options(Path(data_root), kind)
    return opts + list(cfg_options or [])


def run_train(
    config: str,
    work_dir: Path,
    data_root: Optional[Path] = None,
    kind: str = 'coco',
    cfg_options: Optional[Sequence[str]] = None,
    extra_args: Sequence[str] = ()
) -> str:
    """``mim train mmpose CONFIG --work-dir W [extra] --cfg-options ...``;
    returns the console log text and raises with its tail on failure."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    cmd = mim_command('train', config, work_dir, None,
                      _options(data_root, kind, cfg_options), extra_args)
    return _run(cmd, work_dir / 'console_train.log')


def run_test(
    config: str,
    checkpoint: Path,
    work_dir: Path,
    data_root: Optional[Path] = None,
    kind: str = 'coco',
    cfg_options: Optional[Sequence[str]] = None,
    extra_args: Sequence[str] = ()
) -> str:
    """``mim test mmpose CONFIG --checkpoint C --work-dir W ...``."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    cmd = mim_command('test', config, work_dir, checkpoint,
                      _options(data_root, kind, cfg_options), extra_args)
    return _run(cmd, work_dir / 'console_test.log')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def run_dist_train(
    config: str,
    work_dir: Path,
    nproc: int = 2,
    data_root: Optional[Path] = None,
    kind: str = 'coco',
    cfg_options: Optional[Sequence[str]] = None,
    extra_args: Sequence[str] = ()
) -> str:
    """Data-parallel training with ``nproc`` CPU processes on gloo through
    ``tools/dist_train_cpu.py`` (MMEngine's own launcher needs CUDA)."""
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    options = _options(data_root, kind, cfg_options)
    cmd = [
        sys.executable, '-m', 'torch.distributed.run',
        f'--nproc_per_node={nproc}', '--master_addr=127.0.0.1',
        f'--master_port={_free_port()}',
        str(REPO / 'tools' / 'dist_train_cpu.py'), config, '--work-dir',
        str(work_dir), *extra_args,
        *(['--cfg-options', *options] if options else [])
    ]
    return _run(cmd, work_dir / 'console_dist_train.log')


def with_probe(config: str, out_dir: Path) -> str:
    """Write a copy of ``config`` with ``tests.ddp_probe.RankStateDumpHook``
    added, and return its path; after training, each rank's state lies in
    ``<work_dir>/rank_state_<rank>_{start,end}.pth`` (see
    :func:`rank_states`)."""
    from mmengine.config import Config
    cfg = Config.fromfile(str(REPO / config))
    imports = list(cfg.get('custom_imports', {}).get('imports', []))
    cfg.custom_imports = dict(
        imports=imports + ['tests.ddp_probe'], allow_failed_imports=False)
    cfg.custom_hooks = list(cfg.get('custom_hooks',
                                    [])) + [dict(type='RankStateDumpHook')]
    path = Path(out_dir) / ('probe_' + Path(config).name)
    cfg.dump(str(path))
    return str(path)


def rank_states(work_dir: Path, nproc: int = 2, when: str = 'end') -> list:
    """The states that ``RankStateDumpHook`` saved, one per rank, at the
    ``'start'`` or ``'end'`` of training."""
    import torch
    return [
        torch.load(
            Path(work_dir) / f'rank_state_{rank}_{when}.pth',
            map_location='cpu',
            weights_only=False) for rank in range(nproc)
    ]


def assert_same_tensors(a, b, path: str = '') -> int:
    """Assert two nested dict/list structures hold identical tensors;
    returns how many tensors were compared."""
    import torch
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f'{path} differs between ranks'
        return 1
    if isinstance(a, dict):
        assert a.keys() == b.keys(), f'{path}: keys differ'
        return sum(assert_same_tensors(a[k], b[k], f'{path}.{k}') for k in a)
    if isinstance(a, (list, tuple)):
        assert len(a) == len(b), f'{path}: lengths differ'
        return sum(
            assert_same_tensors(x, y, f'{path}[{i}]')
            for i, (x, y) in enumerate(zip(a, b)))
    return 0
