"""Compare measured metrics with the MMPose model zoo.

The baseline of a config is found by walking the ``_base_`` chain of the
config *file text* (the dumped config of a work dir has no ``_base_`` left):
the nearest ancestor that has an entry in the metafiles is the baseline, and
the walk stops at the first ``mmpose::`` base, so a config is never compared
with a stock config that its own stock base happens to inherit. The published
numbers are read from the model-index metafiles installed with MMPose
(``mmpose/.mim/configs/**/*.yml``: ``Models`` entries with ``Config`` and
``Results`` -> ``Metrics``) plus any metafiles given (which win, so a project
metafile can stand in for a config that has no zoo entry).

Measured metrics come from what MMEngine writes in a work dir (see
:func:`read_measured`):

* ``mim test`` / ``Runner.test()``:
  ``<work_dir>/<timestamp>/<timestamp>.json``, one JSON object of the test
  metrics (``LoggerHook.after_test_epoch``). ``mim test --dump`` writes
  predictions (a pickle), not metrics, so it is not a source.
* ``mim train`` with validation:
  ``<work_dir>/<timestamp>/vis_data/<timestamp>.json``, JSON lines written
  by ``LoggerHook`` through ``LocalVisBackend`` (MMPose's default
  visualizer backend): training records carry ``lr``, validation records
  carry the metrics with the evaluator's prefix (``coco/AP``).
  ``vis_data/scalars.json`` holds the same records plus whatever other
  hooks add, and is read only when the ``<timestamp>.json`` is missing.

The newest evaluation in a work dir wins (timestamps sort in time order), so
a ``mim test`` run after training is the one compared; within a training
log the last validation (the final model, as papers report) is used.

Published numbers only mean something for the data they were measured on.
:func:`data_mismatches` compares what the run was evaluated on (from the
config MMEngine dumped into its work dir, which holds any
``--cfg-options``) with what the entry's config evaluates on: the dataset
type, the annotation file's name, ground-truth vs detected person boxes,
and whether the run's annotation file says it is synthetic
(``info.description`` of ``tools/make_synthetic_data.py``'s files) while
the entry is not. Data roots are not compared: the same COCO may live
anywhere. :func:`start_mismatches` compares how the two start: a run
whose backbone ``init_cfg`` differs from the entry's (``None``: random
weights, where the zoo model started from ImageNet ones) is not measured
against a like-for-like number; a run with ``load_from`` starts from a
trained checkpoint (a fine-tune) and is not flagged.
"""
import ast
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import yaml

MMPOSE_PREFIX = 'mmpose::'
_TIMESTAMP = re.compile(r'^\d{8}_\d{6}$')
# part words as MMPose's metafiles (``Body AP``, ``Whole AP``) and metric
# prefixes (``coco-wholebody/AP``) spell them, mapped to one name each
_PARTS = {
    'body': 'body',
    'foot': 'foot',
    'face': 'face',
    'hand': 'hand',
    'lefthand': 'lefthand',
    'righthand': 'righthand',
    'whole': 'whole',
    'wholebody': 'whole',
}


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


@dataclass
class EvalData:
    """What a config is evaluated on, as far as comparability goes."""
    dataset: str  # the test dataset's type
    ann_file: str  # the name of the test evaluator's annotation file
    boxes: str  # 'ground-truth boxes' or 'detected boxes (<file name>)'
    description: str = ''  # the annotation file's ``info.description``

    def __str__(self) -> str:
        text = f'{self.dataset} {self.ann_file}, {self.boxes}'
        return f'{text} ("{self.description}")' if self.description else text


@dataclass
class Measured:
    """Metrics measured by a run, and the file they were read from."""
    metrics: Dict[str, float]
    source: str


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
                name=model.get('Name', Path(key).stem),
                config=key,
                dataset=first.get('Dataset', ''),
                metrics={
                    str(k): float(v)
                    for k, v in (first.get('Metrics') or {}).items()
                },
                source=str(metafile),
                config_file=_entry_config_file(model['Config'], metafile))
    return entries


def find_baseline(config: str, entries: Dict[str, ZooEntry],
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


def _timestamp_dirs(work_dir: Path) -> List[Path]:
    return sorted(p for p in work_dir.iterdir()
                  if p.is_dir() and _TIMESTAMP.match(p.name))


def _records(path: Path) -> List[dict]:
    """The JSON object(s) of a file: one object, or JSON lines."""
    text = path.read_text()
    try:
        data = json.loads(text)
        return [data] if isinstance(data, dict) else []
    except json.JSONDecodeError:
        pass
    records = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise ZooError(f'{path}:{number} is not JSON') from None
    return records


def _is_evaluation(record: dict) -> bool:
    # evaluator metrics always carry the metric's prefix (``coco/AP``);
    # training records carry the learning rate
    return 'lr' not in record and any('/' in k for k in record)


def _evaluation_in(path: Path) -> Optional[Measured]:
    evaluations = [r for r in _records(path) if _is_evaluation(r)]
    if not evaluations:
        return None
    last = evaluations[-1]
    metrics = {
        k: float(v)
        for k, v in last.items()
        if '/' in k and isinstance(v, (int, float))
    }
    source = str(path)
    if 'step' in last:
        source += f' (evaluation at step {last["step"]})'
    return Measured(metrics, source)


def read_measured(path: str) -> Measured:
    """Metrics of a work dir or of a JSON file MMEngine wrote (see the
    module docstring for which file is used)."""
    path = Path(path)
    if path.is_file():
        found = _evaluation_in(path)
        if found is None:
            raise ZooError(f'{path} holds no evaluation metrics (records '
                           'with prefixed keys such as "coco/AP")')
        return found
    if not path.is_dir():
        raise ZooError(f'{path}: no such work dir or results file')
    for run in reversed(_timestamp_dirs(path)):
        candidates = [
            run / f'{run.name}.json',  # test
            run / 'vis_data' / f'{run.name}.json',  # train + val
            run / 'vis_data' / 'scalars.json',
        ]
        for candidate in candidates:
            if candidate.is_file():
                found = _evaluation_in(candidate)
                if found is not None:
                    return found
    raise ZooError(f'{path} holds no evaluation results: expected '
                   '<timestamp>/<timestamp>.json (mim test) or '
                   '<timestamp>/vis_data/<timestamp>.json with validation '
                   'records (mim train with val_interval)')


def _config(config_file: str) -> Any:
    """The config of ``config_file``; any error as a :class:`ZooError`."""
    from mmengine.config import Config
    try:
        return Config.fromfile(config_file)
    except Exception as err:  # any config error: say which file, and why
        raise ZooError(f'cannot read config {config_file}: '
                       f'{type(err).__name__}: {err}') from None


def eval_data(config_file: str) -> EvalData:
    """What ``config_file`` is evaluated on (its ``test_dataloader`` and
    ``test_evaluator``); the annotation file's ``info.description`` is read
    when the file exists."""
    cfg = _config(config_file)
    try:
        dataset = cfg.test_dataloader.dataset
        evaluator = cfg.test_evaluator
    except AttributeError as err:
        raise ZooError(f'cannot read the test data of {config_file}: '
                       f'{err}') from None
    if isinstance(evaluator, (list, tuple)):
        evaluator = evaluator[0]
    ann_file = evaluator.get('ann_file') or str(
        Path(dataset.get('data_root', '')) / dataset.get('ann_file', ''))
    bbox_file = dataset.get('bbox_file')
    boxes = ('ground-truth boxes' if not bbox_file else
             f'detected boxes ({Path(bbox_file).name})')
    description = ''
    if Path(ann_file).is_file():
        info = json.loads(Path(ann_file).read_text()).get('info') or {}
        description = str(info.get('description', ''))
    return EvalData(str(dataset.get('type')), Path(ann_file).name, boxes,
                    description)


def run_config(config: str, results: str) -> str:
    """The config a run really used: the one MMEngine dumped into its work
    dir (``--cfg-options`` included) when ``results`` is a work dir that
    has it, else ``config``."""
    dumped = Path(results) / Path(config).name
    return str(dumped) if dumped.is_file() else str(config)


def data_mismatches(run: EvalData, entry: ZooEntry) -> List[str]:
    """How the run's evaluation data differ from the entry's (empty when
    they agree as far as can be told, or the entry has no config here)."""
    found = []
    if 'synthetic' in run.description.lower() and (
            'synthetic' not in entry.dataset.lower()):
        found.append(f'the run was evaluated on synthetic data '
                     f'("{run.description}"), the published numbers on '
                     f'{entry.dataset or "other data"}')
    if entry.config_file is None:
        return found
    published = eval_data(entry.config_file)
    for field in ('dataset', 'ann_file', 'boxes'):
        if getattr(run, field) != getattr(published, field):
            found.append(f'{field}: the run has {getattr(run, field)}, '
                         f'{entry.name} has {getattr(published, field)}')
    return found


def backbone_init(config_file: str) -> Tuple[Optional[str], Any]:
    """``(load_from, backbone init_cfg)`` of a config, as plain values;
    a missing ``init_cfg`` is ``None`` (the backbone's own random init)."""
    cfg = _config(config_file)
    init = cfg.get('model', {}).get('backbone', {}).get('init_cfg')
    if hasattr(init, 'to_dict'):
        init = init.to_dict()
    return cfg.get('load_from'), init


def describe_init(init: Any) -> str:
    """A backbone ``init_cfg`` in words."""
    if isinstance(init, dict) and init.get('type') == 'Pretrained':
        return f'pretrained weights ({init.get("checkpoint")})'
    return f'random weights (init_cfg={init!r})'


def start_mismatches(run_config_file: str, entry: ZooEntry) -> List[str]:
    """How the run's backbone started, where it differs from the entry's
    (empty when they agree, when the run loads a checkpoint with
    ``load_from``, or when the entry has no config here)."""
    if entry.config_file is None:
        return []
    load_from, run_init = backbone_init(run_config_file)
    _, published = backbone_init(entry.config_file)
    if load_from or run_init == published:
        return []
    return [f'backbone init_cfg: the run started from '
            f'{describe_init(run_init)}, {entry.name} from '
            f'{describe_init(published)}; train with the stock init_cfg '
            '(the shipped configs keep it) to compare with the zoo']


def _split(name: str) -> Tuple[str, str]:
    """(part, statistic) of a metric name, both normalised:
    ``Body AP`` -> (body, ap), ``AP@0.5`` -> ('', ap.5),
    ``coco/AP .5`` -> ('', ap.5), ``coco-wholebody/AP`` -> (whole, ap),
    ``coco-wholebody/body_AP`` and ``wholebody/AP_body`` -> (body, ap)."""
    *prefixes, stat = name.lower().split('/')
    stat = stat.replace('@0.', ' .').replace('_', ' ').replace('-', ' ')
    words = stat.split()
    parts = [w for w in words if w in _PARTS]
    part = _PARTS[parts[0]] if parts else ''
    if not parts:
        for prefix in reversed(prefixes):
            found = [p for w, p in _PARTS.items()
                     if re.search(rf'(^|[^a-z]){w}($|[^a-z])', prefix)]
            if found:
                part = found[0]
                break
    return part, ''.join(w for w in words if w not in _PARTS)


def match_metrics(baseline: ZooEntry, measured: Measured,
                  names: Optional[Sequence[str]] = None
                  ) -> List[Tuple[str, float, float]]:
    """``(metric, published, measured)`` for each metric of the baseline
    (or each of ``names``), matching metafile names with evaluator keys
    (``AP@0.5`` <-> ``coco/AP .5``)."""
    by_split: Dict[Tuple[str, str], str] = {}
    for key in measured.metrics:
        by_split.setdefault(_split(key), key)
    wanted = list(names) if names else list(baseline.metrics)
    rows, missing = [], []
    for name in wanted:
        if name not in baseline.metrics:
            raise ZooError(f'metric {name!r} is not published for '
                           f'{baseline.name} (it has: '
                           f'{", ".join(baseline.metrics)})')
        key = by_split.get(_split(name))
        if key is None:
            missing.append(name)
        else:
            rows.append((name, baseline.metrics[name], measured.metrics[key]))
    if missing:
        hint = ''
        if any(_split(n)[0] not in ('', 'whole') for n in missing) and all(
                _split(k)[0] in ('', 'whole') for k in measured.metrics):
            hint = ('; MMPose\'s CocoWholeBodyMetric reports the whole body '
                    'only: per-part numbers need a per-part metric in the '
                    'evaluator')
        raise ZooError(
            f'{measured.source} lacks {", ".join(missing)} that '
            f'{baseline.name} publishes; it has: '
            f'{", ".join(sorted(measured.metrics)) or "nothing"} '
            f'(choose the metrics to compare with --metrics){hint}')
    return rows
