"""Whether a run and its zoo entry are measured like for like.

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
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional, Tuple

from .metafiles import ZooEntry, ZooError


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
    boxes = ('ground-truth boxes'
             if not bbox_file else f'detected boxes ({Path(bbox_file).name})')
    description = ''
    if Path(ann_file).is_file():
        info = json.loads(Path(ann_file).read_text()).get('info') or {}
        description = str(info.get('description', ''))
    return EvalData(
        str(dataset.get('type')),
        Path(ann_file).name, boxes, description)


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
    return [
        f'backbone init_cfg: the run started from '
        f'{describe_init(run_init)}, {entry.name} from '
        f'{describe_init(published)}; train with the stock init_cfg '
        '(the shipped configs keep it) to compare with the zoo'
    ]
