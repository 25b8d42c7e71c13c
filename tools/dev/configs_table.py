"""The configs tables of docs/configs.md: every config file of the
repository, the method configs from the model index
(``configs/*/metafile.yml``, MMPose's metafile format), the others read
from the config itself.

    python tools/dev/configs_table.py                  # print the tables
    python tools/dev/configs_table.py --write docs/configs.md
    python tools/dev/configs_table.py --check docs/configs.md

``--write`` replaces what lies between the lines ``<!-- configs-table -->``
and ``<!-- /configs-table -->`` of the file with the tables; ``--check``
exits with status 1, saying so, when that part differs from them (the
test suite runs it on docs/configs.md). Columns: the config, its method
(the metafile's ``Architecture``, or the head and loss the config builds),
its training data and the stock MMPose config it inherits (the first
``mmpose::`` base in its ``_base_`` chain).
"""
import argparse
import sys
from pathlib import Path
from typing import List

import yaml

from mmpose_afl.zoo import MMPOSE_PREFIX, base_chain

REPO = Path(__file__).resolve().parents[2]

BEGIN, END = '<!-- configs-table -->', '<!-- /configs-table -->'
# dataset types in the metafiles' words
DATASETS = {
    'CocoDataset': 'COCO',
    'CocoWholeBodyDataset': 'COCO-WholeBody',
    'MpiiDataset': 'MPII'
}


def metafiles() -> List[Path]:
    return sorted(REPO.glob('configs/*/metafile.yml'))


def config_files() -> List[str]:
    """Every config of the repository (``configs/**/*.py`` outside
    ``_base_``), relative to the repository root."""
    return sorted(
        p.relative_to(REPO).as_posix() for p in REPO.glob('configs/**/*.py')
        if '_base_' not in p.relative_to(REPO).parts)


def stock_base(config: str) -> str:
    """The first ``mmpose::`` config in the ``_base_`` chain, backticked."""
    stock = [
        b for b in base_chain(str(REPO / config))
        if b.startswith(MMPOSE_PREFIX)
    ]
    return f'`{stock[0][len(MMPOSE_PREFIX):]}`' if stock else '–'


def training_data(cfg) -> str:
    """The training set of a built config, in the metafiles' words."""
    dataset = cfg.train_dataloader.dataset
    name = DATASETS.get(dataset.type, dataset.type)
    if 'synthetic' in dataset.get('data_root', ''):
        return f'synthetic {name} (tools/make_synthetic_data.py)'
    return name


def head_and_loss(cfg) -> str:
    """``Head + Loss`` of a built config (and an AFL critic's type)."""
    head = cfg.model.head
    loss = head.get('loss') or head.get('keypoint_loss') or {}
    words = [head.type, loss.get('type', '–')]
    if 'critic' in loss:
        words.append(loss.critic.type)
    return ' + '.join(words)


def method_rows() -> List[str]:
    """One row per model-index entry: its ``Architecture`` and data."""
    rows = []
    for metafile in metafiles():
        models = yaml.safe_load(metafile.read_text())['Models']
        for model in sorted(models, key=lambda m: m['Config']):
            meta = model['Metadata']
            rows.append(f'| `{model["Config"]}` | '
                        f'{" + ".join(meta["Architecture"])} | '
                        f'{meta["Training Data"]} | '
                        f'{stock_base(model["Config"])} |')
    return rows


def other_rows(indexed: List[str]) -> List[str]:
    """One row per config outside the model index (baselines and the
    peers the methods are compared with), read from the config itself."""
    from mmengine.config import Config
    rows = []
    for config in config_files():
        if config in indexed:
            continue
        cfg = Config.fromfile(str(REPO / config))
        rows.append(f'| `{config}` | {head_and_loss(cfg)} | '
                    f'{training_data(cfg)} | {stock_base(config)} |')
    return rows


def table() -> str:
    """The generated part of docs/configs.md: two tables that together
    list every config file."""
    methods = method_rows()
    indexed = [row.split('`')[1] for row in methods]
    return '\n'.join([
        '**Method configs** (the model index, `configs/*/metafile.yml`):',
        '',
        '| config | method | training data | stock MMPose base |',
        '|---|---|---|---|',
        *methods,
        '',
        '**Baselines and peers** (not in the model index: the plain models',
        'the methods are compared with, and the hard-example peers of',
        '[hard_examples.md](hard_examples.md); read from each config):',
        '',
        '| config | head + loss | training data | stock MMPose base |',
        '|---|---|---|---|',
        *other_rows(indexed),
    ])


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
    group.add_argument(
        '--write',
        metavar='FILE',
        help='replace the table between the markers in FILE')
    group.add_argument(
        '--check', metavar='FILE', help='exit 1 if the table in FILE differs')
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
        print(
            f'configs_table: the configs tables in {path} differ from the '
            f'configs; run `python tools/dev/configs_table.py --write {path}`',
            file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
