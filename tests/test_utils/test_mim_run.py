"""mmpose_afl.utils.mim_run, the runner behind tests/e2e.py, the tools and
the benchmarks: the log, the line callback, a failure's exit status and
log tail, the timeout, and the commands and options it builds."""
import sys
import time
from pathlib import Path

import pytest

from mmpose_afl.utils.mim_run import (CommandError, data_options,
                                      loader_options, mim_command, run_command)

PRINT_THREE = 'import sys\nfor i in range(3): print("line", i)\n'


def test_the_log_and_the_callback_get_every_line(tmp_path):
    lines = []
    result = run_command([sys.executable, '-c', PRINT_THREE],
                         tmp_path / 'log',
                         on_line=lines.append,
                         log_command=True)
    assert lines == ['line 0\n', 'line 1\n', 'line 2\n']
    text = (tmp_path / 'log').read_text()
    assert text == result.text and text.startswith(f'$ {sys.executable} -c')
    assert text.endswith('line 0\nline 1\nline 2\n')
    assert result.wall_s > 0 and result.cpu_s > 0


def test_a_failure_raises_with_its_status_and_the_end_of_its_log(tmp_path):
    code = 'import sys\nprint("x" * 7000)\nsys.exit("the reason")\n'
    with pytest.raises(CommandError) as error:
        run_command([sys.executable, '-c', code],
                    tmp_path / 'log',
                    env=dict(PYTHONUNBUFFERED='1'))
    assert error.value.returncode == 1
    message = str(error.value)
    assert 'exit status 1' in message and message.endswith('the reason\n')
    assert len(message) < 6500  # the end of the log, not all of it


def test_a_command_past_its_timeout_is_killed_with_its_children(tmp_path):
    # the child holds the output open as train.py under mim does
    child = 'import time; time.sleep(60)'
    code = f'import subprocess, sys; subprocess.run([sys.executable, "-c", ' \
        f'"{child}"])'
    began = time.time()
    with pytest.raises(CommandError, match='timed out after 1 s') as error:
        run_command([sys.executable, '-c', code], tmp_path / 'log', timeout=1)
    assert error.value.returncode is None and time.time() - began < 30


def test_commands_and_options():
    cmd = mim_command('test', 'a.py', 'w', 'c.pth', ['x=1'], ['--dump', 'p'])
    # (the interpreter's own entry point, beside it)
    assert Path(cmd[0]).parent == Path(sys.executable).parent
    assert cmd[1:] == [
        'test', 'mmpose', 'a.py', '--checkpoint', 'c.pth', '--work-dir', 'w',
        '--dump', 'p', '--cfg-options', 'x=1'
    ]
    assert '--cfg-options' not in mim_command('train', 'a.py', 'w')
    assert data_options('d', 'wholebody')[3] == (
        'val_evaluator.ann_file=d/annotations/coco_wholebody_val_v1.0.json')
    assert 'val_dataloader.persistent_workers=True' in loader_options(2)
    assert 'test_dataloader.num_workers=0' in loader_options()
