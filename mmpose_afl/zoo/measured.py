"""The run side of a comparison: the metrics a work dir holds, matched with
the names the metafiles publish.

Measured metrics come from what MMEngine writes in a work dir:

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
"""
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from .metafiles import ZooEntry, ZooError

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


@dataclass
class Measured:
    """Metrics measured by a run, and the file they were read from."""
    metrics: Dict[str, float]
    source: str


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
        for k, v in last.items() if '/' in k and isinstance(v, (int, float))
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
            found = [
                p for w, p in _PARTS.items()
                if re.search(rf'(^|[^a-z]){w}($|[^a-z])', prefix)
            ]
            if found:
                part = found[0]
                break
    return part, ''.join(w for w in words if w not in _PARTS)


def match_metrics(baseline: ZooEntry,
                  measured: Measured,
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
        raise ZooError(f'{measured.source} lacks {", ".join(missing)} that '
                       f'{baseline.name} publishes; it has: '
                       f'{", ".join(sorted(measured.metrics)) or "nothing"} '
                       f'(choose the metrics to compare with --metrics){hint}')
    return rows
