"""The zoo side of a comparison: published numbers and the baseline entry.

The published numbers are read from the model-index metafiles installed
with MMPose (``mmpose/.mim/configs/**/*.yml``: ``Models`` entries with
``Config`` and ``Results`` -> ``Metrics``) plus any metafiles given (which
win, so a project metafile can stand in for a config that has no zoo
entry).

The baseline of a config is found by walking the ``_base_`` chain of the
config *file text* (the dumped config of a work dir has no ``_base_`` left):
the nearest ancestor that has an entry in the metafiles is the baseline, and
the walk stops at the first ``mmpose::`` base, so a config is never compared
with a stock config that its own stock base happens to inherit.
"""
import ast
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional

import yaml

MMPOSE_PREFIX = 'mmpose::'


class ZooError(Exception):
    """A comparison that cannot be made (unknown baseline, missing metric,
    unreadable results); its message says what was looked for and where."""


@dataclass
class ZooEntry:
    """One model-index entry: a config with its published metrics."""
    name: str
    config: str  # key under ``configs/``, see :func:`config_key`
    dataset: str
    metrics: Dict[str, float]
    source: str  # the metafile it was read from
    config_file: Optional[str] = None  # the entry's config, if found


def mmpose_config_root() -> Path:
    """``configs/`` of the installed MMPose (``mmpose/.mim/configs``)."""
    spec = importlib.util.find_spec('mmpose')
    if spec is None or not spec.submodule_search_locations:
        raise ZooError('mmpose is not installed: the zoo metafiles are read '
                       'from mmpose/.mim/configs')
    root = Path(spec.submodule_search_locations[0]) / '.mim' / 'configs'
    if not root.is_dir():
        raise ZooError(f'{root} does not exist: this mmpose installation '
                       'has no model-index metafiles')
    return root


def config_key(path: str) -> str:
    """The path of a config from its ``configs/`` folder on, as model-index
    ``Config`` fields spell it: ``mmpose::a/b.py`` -> ``configs/a/b.py``,
    ``/x/repo/configs/afl/c.py`` -> ``configs/afl/c.py``."""
    path = str(path)
    if path.startswith(MMPOSE_PREFIX):
        return 'configs/' + path[len(MMPOSE_PREFIX):].lstrip('/')
    parts = Path(path).as_posix().split('/')
    if 'configs' in parts:
        last = len(parts) - 1 - parts[::-1].index('configs')
        return '/'.join(parts[last:])
    return Path(path).name


def _bases(config: Path) -> List[str]:
    """The ``_base_`` entries of a Python config file, read from its text."""
    try:
        tree = ast.parse(config.read_text(), filename=str(config))
    except (OSError, SyntaxError) as err:
        raise ZooError(f'cannot read config {config}: {err}') from None
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == '_base_'):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                raise ZooError(f'{config}: _base_ is not a literal string or '
                               'list of strings') from None
            return [value] if isinstance(value, str) else list(value)
    return []


def base_chain(config: str) -> List[str]:
    """Ancestors of ``config``, nearest first (depth first in ``_base_``
    order), ending at the first ``mmpose::`` base. Local ancestors are
    absolute paths, stock ones stay ``mmpose::...``."""
    chain: List[str] = []

    def walk(path: Path) -> bool:
        for base in _bases(path):
            if base.startswith(MMPOSE_PREFIX):
                chain.append(base)
                return True
            local = (path.parent / base).resolve()
            if not local.is_file():
                raise ZooError(f'{path}: _base_ {base!r} not found '
                               f'(looked for {local})')
            chain.append(str(local))
            if walk(local):
                return True
        return False

    path = Path(config).resolve()
    if not path.is_file():
        raise ZooError(f'config {config} not found')
    walk(path)
    return chain


def default_metafiles() -> List[Path]:
    """Every ``*.yml`` under the installed MMPose's ``configs/``."""
    return sorted(mmpose_config_root().glob('**/*.yml'))


def _entry_config_file(config: str, metafile: Path) -> Optional[str]:
    """The config file a model-index ``Config`` field names: absolute, in
    MMPose's ``configs/``, next to the metafile, or under the cwd."""
    candidates = [Path(config)] if Path(config).is_absolute() else [
        mmpose_config_root().parent / config_key(config),
        Path(metafile).parent / config,
        Path.cwd() / config,
    ]
    return next((str(c) for c in candidates if c.is_file()), None)


def load_entries(metafiles: Iterable[Path]) -> Dict[str, ZooEntry]:
    """Model-index entries by config key; an earlier metafile wins over a
    later one for the same config, and for an entry with several results the
    first one is used (as MMPose's README tables do)."""
    entries: Dict[str, ZooEntry] = {}
    for metafile in metafiles:
        try:
            data = yaml.safe_load(Path(metafile).read_text())
        except (OSError, yaml.YAMLError) as err:
            raise ZooError(f'cannot read metafile {metafile}: {err}') from None
        if not isinstance(data, dict) or not data.get('Models'):
            continue
        for model in data['Models']:
            results = model.get('Results') or []
            if 'Config' not in model or not results:
                continue
            key = config_key(model['Config'])
            if key in entries:
                continue
            first = results[0]
            entries[key] = ZooEntry(
                name=model.get('Name',
                               Path(key).stem),
                config=key,
                dataset=first.get('Dataset', ''),
                metrics={
                    str(k): float(v)
                    for k, v in (first.get('Metrics') or {}).items()
                },
                source=str(metafile),
                config_file=_entry_config_file(model['Config'], metafile))
    return entries


def find_baseline(config: str,
                  entries: Dict[str, ZooEntry],
                  baseline: Optional[str] = None) -> ZooEntry:
    """The zoo entry to compare ``config`` with: ``baseline`` (an entry
    name or config path) when given, else the nearest ancestor with an
    entry, up to and including the first ``mmpose::`` base."""
    if baseline is not None:
        key = config_key(baseline)
        for entry in entries.values():
            if baseline == entry.name or key == entry.config:
                return entry
        raise ZooError(f'baseline {baseline!r} is in none of the metafiles '
                       '(give an entry Name or its Config path)')
    chain = base_chain(config)
    for ancestor in chain:
        entry = entries.get(config_key(ancestor))
        if entry is not None:
            return entry
    if not chain:
        raise ZooError(f'{config} has no _base_: it inherits no MMPose config '
                       'whose zoo numbers could be the baseline (use '
                       '--baseline NAME)')
    raise ZooError(
        f'unknown baseline for {config}: none of its bases '
        f'({", ".join(config_key(c) for c in chain)}) has published numbers '
        'in the MMPose metafiles; give a stand-in entry with '
        '--baseline-metafile or name one with --baseline')
