"""The configs table of docs/configs.md, generated from the model index
(``configs/*/metafile.yml``, MMPose's metafile format).

    python tools/configs_table.py                  # print the table
    python tools/configs_table.py --write docs/configs.md
    python tools/configs_table.py --check docs/configs.md

``--write`` replaces what lies between the lines ``<!-- configs-table -->``
and ``<!-- /configs-table -->`` of the file with the table; ``--check``
exits with status 1, saying so, when that part differs from the table (the
test suite runs it on docs/configs.md). Columns: the config, its method (the
metafile's ``Architecture``), its training data and the stock MMPose config
it inherits (the first ``mmpose::`` base in its ``_base_`` chain).
"""
import argparse
import sys
from pathlib import Path
from typing import List

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from mmpose_afl.zoo import MMPOSE_PREFIX, base_chain  # noqa: E402

BEGIN, END = '<!-- configs-table -->', '<!-- /configs-table -->'


def metafiles() -> List[Path]:
    return sorted(REPO.glob('configs/*/metafile.yml'))


def table() -> str:
    lines = ['| config | method | training data | stock MMPose base |',
             '|---|---|---|---|']
    for metafile in metafiles():
        models = yaml.safe_load(metafile.read_text())['Models']
        for model in sorted(models, key=lambda m: m['Config']):
            stock = [b for b in base_chain(str(REPO / model['Config']))
                     if b.startswith(MMPOSE_PREFIX)]
            base = f'`{stock[0][len(MMPOSE_PREFIX):]}`' if stock else '–'
            meta = model['Metadata']
            lines.append(f'| `{model["Config"]}` | '
                         f'{" + ".join(meta["Architecture"])} | '
                         f'{meta["Training Data"]} | {base} |')
    return '\n'.join(lines)


def replace_block(text: str, block: str, path: str) -> str:
    """``text`` with the part between the markers replaced by ``block``."""
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(
            BEGIN) > text.index(END):
        raise ValueError(f'{path} needs one line {BEGIN} and, after it, one '
                         f'line {END} around the configs table')
    head, rest = text.split(BEGIN)
    _, tail = rest.split(END)
    return f'{head}{BEGIN}\n{block}\n{END}{tail}'


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument('--write', metavar='FILE',
                       help='replace the table between the markers in FILE')
    group.add_argument('--check', metavar='FILE',
                       help='exit 1 if the table in FILE differs')
    args = parser.parse_args(argv)
    generated = table()
    path = args.write or args.check
    if path is None:
        print(generated)
        return 0
    text = Path(path).read_text()
    try:
        updated = replace_block(text, generated, path)
    except ValueError as err:
        print(f'configs_table: {err}', file=sys.stderr)
        return 1
    if args.write:
        Path(path).write_text(updated)
        return 0
    if updated != text:
        print(f'configs_table: the configs table in {path} differs from the '
              f'metafiles; run `python tools/configs_table.py --write {path}`',
              file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
