"""docs/results.md quotes its results files: each "mean ± sd" of a row
stands in the results file the row links, a verdict next to it on the same
row of that file, and each p-value too. The files are the source; the page
is checked against them, not the other way round."""
import re

import pytest

from tests.e2e import REPO

PAGE = REPO / 'docs' / 'results.md'
RESULTS_LINK = re.compile(r'\]\(\.\./(benchmarks/results_\w+\.md)\)')
# "+0.100 ± 0.013", optionally followed by ", better" (or worse, ...)
QUOTED = re.compile(r'([+−]?\d\.\d{3} ± \d\.\d{3})'
                    r'(?:, (better|worse|not distinguishable))?')
P_VALUE = re.compile(r'\(p (0\.\d{3})')


def rows(section: str):
    """The table rows of a section of the page that link a results file."""
    text = PAGE.read_text().split(f'## {section}\n', 1)[1]
    text = text.split('\n## ', 1)[0]
    return [
        line for line in text.splitlines()
        if line.startswith('| ') and RESULTS_LINK.search(line)
    ]


def results_lines(row: str):
    return [
        line for path in RESULTS_LINK.findall(row)
        for line in (REPO / path).read_text().splitlines()
    ]


def ascii_minus(number: str) -> str:
    return number.replace('−', '-')  # the results files write '-'


MEASURED = rows('What was measured here')
BASELINES = rows('The protocols, and the MSE baseline of each')


def test_the_page_has_the_rows_checked():
    assert len(MEASURED) >= 12 and len(BASELINES) >= 3
    for row in MEASURED:  # every measured row says its verdict
        assert any(verdict for _, verdict in QUOTED.findall(row)), row


@pytest.mark.parametrize('row', MEASURED + BASELINES)
def test_quoted_numbers_and_verdicts_are_the_files(row):
    lines = results_lines(row)
    for number, verdict in QUOTED.findall(row):
        cell = f'| {ascii_minus(number)} '
        on = [line for line in lines if cell in line]
        assert on, f'{number} is in none of {RESULTS_LINK.findall(row)}'
        if verdict:
            assert any(f'| {verdict} |' in line for line in on), (
                f'{number}: the file does not say "{verdict}" on its row')
    for p_value in P_VALUE.findall(row):
        assert any(f'| {p_value} |' in line for line in lines), p_value


def test_the_check_can_fail():
    row = ('| x | y | AP +0.100 ± 0.013, worse | D, '
           '[results_accuracy.md](../benchmarks/results_accuracy.md) |')
    with pytest.raises(AssertionError, match='does not say "worse"'):
        test_quoted_numbers_and_verdicts_are_the_files(row)
    with pytest.raises(AssertionError, match='is in none of'):
        test_quoted_numbers_and_verdicts_are_the_files(
            row.replace('+0.100', '+0.101'))
