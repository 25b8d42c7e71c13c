"""Run ``mim train`` / ``mim test`` (or any command) in a subprocess, the
way a user types them, with the output in a log file.

The project's scripts and tests start real runs through these functions
instead of each writing its own ``subprocess`` call: the command's output
goes to a log (and, line by line, to an optional callback, e.g. a progress
line), and a failed command raises :class:`CommandError` with the end of
its log. :func:`data_options` and :func:`loader_options` are the
``--cfg-options`` that point a config at a generated synthetic set and keep
its data loading in the training process.
"""
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Union

PathLike = Union[str, Path]
#: the validation annotation file of a synthetic set, per kind
VAL_ANN = {
    'coco': 'person_keypoints_val2017.json',
    'wholebody': 'coco_wholebody_val_v1.0.json'
}


class CommandError(RuntimeError):
    """A command that exited with a non-zero status or ran out of time; the
    message ends with the last lines of its log.

    Args:
        message (str): What failed, with the end of the log.
        returncode (int): The command's exit status (``None`` when it was
            killed for running past its timeout).
    """

    def __init__(self, message: str, returncode: Optional[int]):
        super().__init__(message)
        self.returncode = returncode


@dataclass
class CommandResult:
    """What a finished command left.

    Args:
        text (str): The whole log.
        wall_s (float): Wall-clock seconds.
        cpu_s (float, optional): CPU seconds (user + system) of the command
            and of the processes it waited for; ``None`` where the platform
            does not report them.
    """
    text: str
    wall_s: float
    cpu_s: Optional[float]


def data_options(data_root: PathLike, kind: str = 'coco') -> List[str]:
    """``--cfg-options`` that point a synthetic config's train, val and
    test data and both evaluators at the set under ``data_root``.

    Args:
        data_root (str | Path): A set written by
            ``tools/make_synthetic_data.py`` (or
            :func:`mmpose_afl.datasets.synthetic.generate_dataset`).
        kind (str): ``'coco'`` or ``'wholebody'``. Defaults to ``'coco'``.

    Returns:
        list[str]: ``key=value`` options.
    """
    root = f'{data_root}/'
    ann = f'{root}annotations/{VAL_ANN[kind]}'
    return [
        f'train_dataloader.dataset.data_root={root}',
        f'val_dataloader.dataset.data_root={root}',
        f'test_dataloader.dataset.data_root={root}',
        f'val_evaluator.ann_file={ann}',
        f'test_evaluator.ann_file={ann}',
    ]


def loader_options(num_workers: int = 0) -> List[str]:
    """``--cfg-options`` giving every data loader ``num_workers`` workers
    (0: the data is loaded in the training process, so that a run keeps to
    its core), persistent only when there are any.

    Args:
        num_workers (int): Loader workers per loader. Defaults to 0.

    Returns:
        list[str]: ``key=value`` options.
    """
    settings = (f'num_workers={num_workers}',
                f'persistent_workers={num_workers > 0}')
    return [
        f'{loader}_dataloader.{setting}' for loader in ('train', 'val', 'test')
        for setting in settings
    ]


def mim_command(
    action: str,
    config: PathLike,
    work_dir: PathLike,
    checkpoint: Optional[PathLike] = None,
    cfg_options: Sequence[str] = (),
    extra_args: Sequence[str] = ()
) -> List[str]:
    """``mim <action> mmpose CONFIG [--checkpoint C] --work-dir W [extra]
    [--cfg-options ...]``, with the ``mim`` of this interpreter.

    Args:
        action (str): ``'train'`` or ``'test'``.
        config (str | Path): The config file.
        work_dir (str | Path): The run's work dir.
        checkpoint (str | Path, optional): The checkpoint ``mim test``
            evaluates. Defaults to ``None``.
        cfg_options (Sequence[str]): ``key=value`` overrides. Defaults to
            none.
        extra_args (Sequence[str]): Further arguments (``--amp``,
            ``--resume``). Defaults to none.

    Returns:
        list[str]: The command.
    """
    cmd = [
        str(Path(sys.executable).parent / 'mim'), action, 'mmpose',
        str(config)
    ]
    if checkpoint is not None:
        cmd += ['--checkpoint', str(checkpoint)]
    cmd += ['--work-dir', str(work_dir), *map(str, extra_args)]
    return cmd + (['--cfg-options', *cfg_options] if cfg_options else [])


def _kill_tree(proc: subprocess.Popen) -> None:
    """Kill ``proc`` and the processes of its group."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (AttributeError, ProcessLookupError):  # no killpg, or it is gone
        proc.kill()


def run_command(cmd: Sequence,
                log: PathLike,
                cwd: Optional[PathLike] = None,
                env: Optional[Dict[str, str]] = None,
                on_line: Optional[Callable[[str], None]] = None,
                timeout: Optional[float] = None,
                log_command: bool = False) -> CommandResult:
    """Run ``cmd`` with its output (stdout and stderr) written to ``log``.

    Args:
        cmd (Sequence): The command; its items are turned into strings.
        log (str | Path): The log file (its folder must exist).
        cwd (str | Path, optional): Where to run it. Defaults to ``None``
            (the current directory).
        env (dict, optional): Variables set on top of this process's
            environment. Defaults to ``None``.
        on_line (Callable, optional): Called with each line of output as it
            comes (e.g. to show progress). Defaults to ``None``.
        timeout (float, optional): Seconds after which the command is
            killed. Defaults to ``None`` (no limit).
        log_command (bool): Write ``$ <command>`` as the log's first line.
            Defaults to False.

    Returns:
        CommandResult: The log's text, wall and CPU seconds.

    Raises:
        CommandError: When the command fails or runs out of time.
    """
    cmd = list(map(str, cmd))
    start = time.time()
    with open(log, 'w') as f:
        if log_command:
            f.write(f'$ {" ".join(cmd)}\n')
            f.flush()
        # its own process group, so that a timeout or an interrupt ends
        # the whole tree (mim starts train.py, torchrun its workers)
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=dict(os.environ, **(env or {})),
            start_new_session=True)
        killed = threading.Event()

        def kill() -> None:
            killed.set()
            _kill_tree(proc)

        timer = threading.Timer(timeout, kill) if timeout else None
        if timer:
            timer.start()
        try:
            for line in proc.stdout:
                f.write(line)
                if on_line:
                    on_line(line)
        except BaseException:  # an interrupt, or a failing on_line
            _kill_tree(proc)
            raise
        cpu_s = None
        if hasattr(os, 'wait4'):  # the CPU time of the command's own tree
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = (-os.WTERMSIG(status) if os.WIFSIGNALED(status)
                               else os.WEXITSTATUS(status))
            cpu_s = usage.ru_utime + usage.ru_stime
        proc.wait()
        if timer:
            timer.cancel()
    text = Path(log).read_text()
    if proc.returncode != 0:
        what = (f'timed out after {timeout} s'
                if killed.is_set() else f'exit status {proc.returncode}')
        raise CommandError(
            f'command failed ({what}): {" ".join(cmd)}\n'
            f'--- the end of {log} ---\n{text[-6000:]}',
            None if killed.is_set() else proc.returncode)
    return CommandResult(text, time.time() - start, cpu_s)


def run_mim(action: str,
            config: PathLike,
            work_dir: PathLike,
            checkpoint: Optional[PathLike] = None,
            cfg_options: Sequence[str] = (),
            extra_args: Sequence[str] = (),
            log: Optional[PathLike] = None,
            **kwargs) -> CommandResult:
    """One ``mim train`` / ``mim test`` (:func:`mim_command`), its output in
    ``log``, ``work_dir`` created first.

    Args:
        action, config, work_dir, checkpoint, cfg_options, extra_args: As
            for :func:`mim_command`.
        log (str | Path, optional): The log file. Defaults to ``None``:
            ``<work_dir>/console_<action>.log``.
        **kwargs: ``cwd``, ``env``, ``on_line``, ``timeout``,
            ``log_command`` of :func:`run_command`.

    Returns:
        CommandResult: The log's text, wall and CPU seconds.

    Raises:
        CommandError: When the command fails or runs out of time.
    """
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    cmd = mim_command(action, config, work_dir, checkpoint, cfg_options,
                      extra_args)
    log = Path(work_dir) / f'console_{action}.log' if log is None else log
    return run_command(cmd, log, **kwargs)


def last_checkpoint(work_dir: PathLike) -> Path:
    """The checkpoint that MMEngine's ``last_checkpoint`` file of
    ``work_dir`` names."""
    return Path((Path(work_dir) / 'last_checkpoint').read_text().strip())
