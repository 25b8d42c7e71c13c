"""The repository stands on its own: no tracked text file points at notes a
user does not have (a sibling ``shared`` folder, a private design note, an
issue tracker's numbers) or at a path of the machine it was written on, and
every relative link or backticked repo path in a Markdown file resolves."""
import re
import subprocess
from pathlib import Path
from typing import Iterator, List, Tuple

import pytest

from tests.e2e import REPO

# built from pieces, so that this file does not match itself
FORBIDDEN_STRINGS = ('..' + '/shared', 'SPEC' + '.md', '/work' + '/shared')
# the word issue(s), an optional space and '#', then a number (any case);
# a URL's "issues/<number>" is not matched
ISSUE_WORD = re.compile(r'\bissues?' + r' ?#?\d+\b', re.I)
# "#12" as an issue reference in Markdown prose: after a space or an
# opening bracket, digits only, not part of a colour (#fff, #0a0) or a
# heading (# 1) or an anchor (page.md#12-x)
ISSUE_HASH = re.compile(r'(?:^|(?<=[\s(\[,;]))#\d+(?![\w-])')
# an absolute path on a machine of ours (a work dir, a home), not a URL's
MACHINE_PATH = re.compile(r'(?<![\w.~:/-])/(?:work|root)/')
FENCE = re.compile(r'^(```|~~~).*?^\1[ \t]*$', re.S | re.M)
INLINE_CODE = re.compile(r'`([^`\n]+)`')
LINK = re.compile(r'!?\[[^\]\n]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)')
EXTENSION = re.compile(r'\.[A-Za-z0-9]+$')


def tracked_files() -> List[str]:
    out = subprocess.run(['git', 'ls-files'],
                         cwd=REPO,
                         capture_output=True,
                         text=True,
                         check=True)
    return [p for p in out.stdout.splitlines() if (REPO / p).is_file()]


def text_of(path: Path):
    """The file's text, or ``None`` for a binary file (a NUL byte, or not
    UTF-8)."""
    data = path.read_bytes()
    if b'\0' in data:
        return None
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError:
        return None


def prose(markdown: str) -> str:
    """Markdown without fenced code blocks and inline code."""
    return INLINE_CODE.sub(' ', FENCE.sub(' ', markdown))


def outside_mentions(text: str, markdown: bool) -> List[str]:
    """What in ``text`` refers outside the repository."""
    found = [s for s in FORBIDDEN_STRINGS if s in text]
    found += [m.group(0) for m in ISSUE_WORD.finditer(text)]
    found += [m.group(0) for m in MACHINE_PATH.finditer(text)]
    if markdown:
        found += [m.group(0) for m in ISSUE_HASH.finditer(prose(text))]
    return found


def top_level_folders(files: List[str]) -> Tuple[str, ...]:
    return tuple(sorted({f.split('/', 1)[0] + '/' for f in files if '/' in f}))


def looks_like_repo_path(code: str, folders: Tuple[str, ...]) -> bool:
    """A backticked span that names a path in the repository: no spaces or
    wildcards, starts with a top-level folder, and has an extension or ends
    with ``/``."""
    if re.search(r'[\s*?<>{}\[\]$]|\.\.\.', code):
        return False
    return code.startswith(folders) and (code.endswith('/')
                                         or bool(EXTENSION.search(code)))


def unresolved(md_path: str, text: str, folders: Tuple[str,
                                                       ...]) -> Iterator[str]:
    """Relative links and backticked repo paths of a Markdown file that do
    not exist."""
    base = (REPO / md_path).parent
    without_fences = FENCE.sub(' ', text)
    for m in LINK.finditer(INLINE_CODE.sub(' ', without_fences)):
        target = m.group(1)
        if re.match(r'^([a-z][a-z0-9+.-]*:|#)', target, re.I):
            continue  # http(s), mailto, ... and in-page anchors
        path = target.split('#', 1)[0]
        if not (base / path).exists():
            yield f'link ({target})'
    for m in INLINE_CODE.finditer(without_fences):
        code = m.group(1).strip()
        if looks_like_repo_path(code, folders) and not (REPO / code).exists():
            yield f'path `{code}`'


def test_the_checks_can_fail():
    issue = 'iss' + 'ue'
    assert outside_mentions(f'see {issue} 12', False)
    assert outside_mentions(f'{issue.title()}s #3 and 4', False)
    assert outside_mentions('see ..' + '/shared/papers', False)
    assert outside_mentions('as in SPEC' + '.md', False)
    assert outside_mentions('fixed in #' + '12.', True)
    assert outside_mentions('(#' + '7)', True)
    assert outside_mentions('--out-dir /' + 'work/bench_out/x', False)
    assert outside_mentions('`/' + 'root/.cache/pip`', True)
    for fine in ('colour #fff or #0a0b0c', '# 1 heading', '`#' + '12` in code',
                 '[x](page.md#12-y)', 'https://github.com/a/b/issues/38',
                 'x = 1  # 2 px', 'https://x.org/' + 'work/y', 'work_dirs/a',
                 '../' + 'work/b'):
        assert not outside_mentions(fine, True), fine
    folders = ('docs/', 'tools/')
    assert list(unresolved('README.md', '[a](docs/nope.md)', folders))
    assert list(unresolved('README.md', 'run `tools/nope.py`', folders))
    assert not list(
        unresolved(
            'README.md', '[a](https://x.org/y.md) [b](#anchor) `tools/*.py` '
            '`data/coco/` `tools/demo.py --help` [c](LICENSE)', folders))


FILES = tracked_files()
TEXTS = {f: t for f in FILES if (t := text_of(REPO / f)) is not None}


@pytest.mark.parametrize('path', sorted(TEXTS))
def test_no_mention_of_what_is_outside_the_repo(path):
    found = outside_mentions(TEXTS[path], path.endswith('.md'))
    assert not found, f'{path} refers outside the repository: {found}'


@pytest.mark.parametrize('path', sorted(p for p in TEXTS if p.endswith('.md')))
def test_markdown_links_and_paths_resolve(path):
    missing = list(unresolved(path, TEXTS[path], top_level_folders(FILES)))
    assert not missing, f'{path}: {missing} do not exist'
