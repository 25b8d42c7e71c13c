"""Every tool answers ``--help`` with exit status 0, a description that is a
whole sentence, and a line of help for each of its arguments."""
import re
import subprocess
import sys

import pytest

from tests.e2e import REPO

SCRIPTS = sorted(
    str(p.relative_to(REPO))
    for p in [*REPO.glob('tools/**/*.py'), *REPO.glob('benchmarks/*.py')])


def undocumented(help_text: str) -> list:
    """Arguments of an argparse ``--help`` text that have no help: an
    entry (a line indented by two spaces under a section header) with
    nothing after its name and no indented continuation line."""
    missing = []
    lines = help_text.splitlines()
    in_section = False
    for i, line in enumerate(lines):
        if re.match(r'^\S.*:$', line):  # "options:", "positional arguments:"
            in_section = line.startswith(('options', 'optional', 'positional'))
            continue
        if not in_section or not re.match(r'^  \S', line):
            continue
        name, _, text = line.strip().partition('  ')
        following = lines[i + 1] if i + 1 < len(lines) else ''
        continued = re.match(r'^ {4,}\S', following) is not None
        if not text.strip() and not continued:
            missing.append(name)
    return missing


def test_the_checker_finds_an_undocumented_option():
    text = ('usage: x\n\noptions:\n  -h, --help  show this help message '
            'and exit\n  --num NUM\n  --out OUT   where it goes\n'
            '  --long-option-name LONG_OPTION_NAME\n'
            '                        its help on the next line\n')
    assert undocumented(text) == ['--num NUM']


def test_every_tool_is_checked():
    assert 'tools/demo.py' in SCRIPTS and len(SCRIPTS) >= 10


@pytest.mark.parametrize('script', SCRIPTS)
def test_help_documents_every_option(script):
    out = subprocess.run([sys.executable, script, '--help'],
                         cwd=REPO,
                         capture_output=True,
                         text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert text.startswith('usage:')
    description = text.split('\n\n')[1].strip()
    assert description.endswith(
        ('.',
         ':')), (f'{script}: description stops mid-sentence: {description!r}')
    assert undocumented(text) == [], f'{script}: {undocumented(text)}'


def test_install_stack_help():
    out = subprocess.run(['bash', 'tools/install_stack.sh', '--help'],
                         cwd=REPO,
                         capture_output=True,
                         text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    for option in ('VENV', 'PYTHON', 'MMPOSE_AFL_CACHE', 'MAX_JOBS'):
        assert option in out.stdout
    assert '[install_stack]' not in out.stdout  # it did not start
