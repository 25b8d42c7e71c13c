"""Say whether AFL's difficulty means something, from a training work dir,
and how it compares with two other per-sample signals.

AFLCriticHook records, for a fixed set of tracked training samples and each
time one is seen, its difficulty, its number of labelled keypoints, the
error of its prediction (the mean distance between predicted and
ground-truth heatmap peaks over the labelled keypoints, in heatmap pixels),
its base loss (the wrapped loss of that sample alone, before AFL's weight)
and the OKS error of its prediction (1 - OKS of the heatmap peaks with the
dataset's sigmas and the annotation's area;
mmpose_afl/evaluation/sample_oks.py) in WORK_DIR/afl_difficulty_rank*.jsonl.
Each sample's records are averaged over the last --last-epochs epochs it
was seen in, and the tool reports, for each signal (difficulty, base loss,
OKS error):

  labels     Spearman's rho of the signal and label count: what the paper's
             critic mostly follows (it sees more to compare with more
             labelled keypoints);
  error|lab  partial Spearman of the signal and prediction error with the
             label count held fixed (rho of the rank residuals after a
             linear fit on the label count's ranks): whether the signal
             follows how wrong the prediction is;
  error      Spearman's rho of the signal and error, not adjusted;
  AUC        ROC AUC of the signal for the synthetic generator's
             `difficulty` flags (mmpose_afl/datasets/synthetic.py), read
             from the training annotation file: any flag vs clean samples,
             then each flag vs clean samples (0.5: chance; 1: every flagged
             sample harder than every clean one). Skipped when the
             annotations carry no flags (e.g. the real COCO).

The OKS error is the oracle: it is computed from the ground truth, so no
training signal can know more about how wrong a prediction is; its AUC
says how far the flagged people are predicted worse at all, i.e. the most
any error-following signal could reach. Records written before the base
loss and OKS error were recorded leave those columns n/a.

It prints a table and writes the numbers as JSON. The default hook tracks
16 samples; track more for tighter numbers, e.g.
custom_hooks=[..., dict(type='AFLCriticHook', num_tracked=512)].

    python tools/afl_difficulty_report.py WORK_DIR [--config CFG]
        [--last-epochs 1] [--out WORK_DIR/afl_difficulty_report.json]
"""
import argparse
import json
from collections import defaultdict
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
from scipy.stats import rankdata

FLAGS = ('occluded', 'truncated', 'unusual_pose', 'small')
# the per-sample signals compared: AFL's difficulty, the base loss, and the
# oracle (the prediction's OKS error), in this order
SIGNALS = ('difficulty', 'base_loss', 'oks_error')
SIGNAL_NAMES = dict(
    difficulty='difficulty',
    base_loss='base loss',
    oks_error='OKS error (oracle)')


def load_records(work_dir: Path) -> List[dict]:
    """All records of ``afl_difficulty_rank*.jsonl`` (every rank)."""
    files = sorted(Path(work_dir).glob('afl_difficulty_rank*.jsonl'))
    if not files:
        raise SystemExit(f'no afl_difficulty_rank*.jsonl in {work_dir}: was '
                         'it trained with AFLCriticHook (num_tracked > 0)?')
    return [
        json.loads(line) for path in files
        for line in path.read_text().splitlines() if line.strip()
    ]


def per_sample(records: List[dict], last_epochs: int = 1) -> Dict[int, dict]:
    """``{id: dict(difficulty, error, labels, base_loss, oks_error)}``: each
    sample's means over its records of the last ``last_epochs`` epochs it
    was seen in; samples without labelled keypoints (``error`` null) are
    left out. ``base_loss`` / ``oks_error`` are NaN when one of those
    records lacks them (written before they were recorded, or ``null``)."""
    by_id = defaultdict(list)
    for record in records:
        if record.get('error') is not None:
            by_id[record['id']].append(record)
    samples = {}
    for sample_id, recs in by_id.items():
        last = max(r['epoch'] for r in recs)
        recs = [r for r in recs if r['epoch'] > last - last_epochs]
        samples[sample_id] = {
            key:
            float(
                np.mean(
                    [np.nan if r.get(key) is None else r[key] for r in recs]))
            for key in ('difficulty', 'error', 'labels', 'base_loss',
                        'oks_error')
        }
    return samples


def _pearson(x: np.ndarray, y: np.ndarray) -> Optional[float]:
    x, y = x - x.mean(), y - y.mean()
    norm = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / norm) if norm > 1e-12 else None


def spearman(x, y) -> Optional[float]:
    """Spearman's rho (Pearson of average ranks); ``None`` when either
    is constant or there are fewer than 3 values."""
    if len(x) < 3:
        return None
    return _pearson(rankdata(x), rankdata(y))


def partial_spearman(x, y, z) -> Optional[float]:
    """Spearman's rho of ``x`` and ``y`` with ``z`` held fixed: the Pearson
    correlation of the residuals of rank(x) and rank(y) after a least-squares
    fit on [1, rank(z)] (equal to ``spearman(x, y)`` when ``z`` is
    constant); ``None`` when undefined or with fewer than 4 values."""
    if len(x) < 4:
        return None
    design = np.stack([np.ones(len(z)), rankdata(z)], axis=1)

    def residual(values):
        ranks = rankdata(values)
        coef, *_ = np.linalg.lstsq(design, ranks, rcond=None)
        return ranks - design @ coef

    return _pearson(residual(x), residual(y))


def roc_auc(scores, positive) -> Optional[float]:
    """ROC AUC of ``scores`` for the boolean ``positive`` (Mann-Whitney,
    ties count one half); ``None`` without both classes."""
    scores, positive = np.asarray(scores, float), np.asarray(positive, bool)
    num_pos, num_neg = positive.sum(), (~positive).sum()
    if not num_pos or not num_neg:
        return None
    ranks = rankdata(scores)
    return float((ranks[positive].sum() - num_pos * (num_pos + 1) / 2) /
                 (num_pos * num_neg))


def load_flags(config) -> Optional[Dict[int, List[str]]]:
    """``{annotation id: names of its true difficulty flags}`` from the
    training annotation file of ``config`` (an MMEngine ``Config``), where
    the generator stores ``difficulty=dict(occluded=True, small=False,
    ...)``; ``None`` when the annotations carry no ``difficulty`` field."""
    dataset = config.train_dataloader.dataset
    ann_file = Path(dataset.get('data_root', '')) / dataset.ann_file
    annotations = json.loads(ann_file.read_text())['annotations']
    if not any('difficulty' in a for a in annotations):
        return None
    return {
        a['id']: [name for name, on in a.get('difficulty', {}).items() if on]
        for a in annotations
    }


def signal_statistics(values, error, labels, flags=None) -> dict:
    """The statistics of one per-sample signal (module docstring) over the
    samples where it is finite.

    Args:
        values, error, labels: Per-sample arrays of the same length.
        flags (list, optional): Per sample, the set of its difficulty
            flags; ``None`` leaves ``auc`` ``None``. Defaults to ``None``

    Returns:
        dict: ``samples`` (where the signal is finite), ``spearman_labels``,
        ``partial_spearman_error``, ``spearman_error`` and ``auc``
        (``None``, or ``{'any' or flag: dict(auc, positives,
        negatives)}``).
    """
    values = np.asarray(values, float)
    keep = np.isfinite(values)
    values, error, labels = (
        np.asarray(a, float)[keep] for a in (values, error, labels))
    result = dict(
        samples=int(keep.sum()),
        spearman_labels=spearman(values, labels),
        partial_spearman_error=partial_spearman(values, error, labels),
        spearman_error=spearman(values, error),
        auc=None)
    if flags is not None:
        sample_flags = [f for f, k in zip(flags, keep) if k]
        clean = np.array([not f for f in sample_flags], bool)
        result['auc'] = {}
        for name in ('any', ) + FLAGS:
            positive = ~clean if name == 'any' else np.array(
                [name in f for f in sample_flags], bool)
            chosen = positive | clean
            result['auc'][name] = dict(
                auc=roc_auc(values[chosen], positive[chosen]),
                positives=int(positive.sum()),
                negatives=int(clean.sum()))
    return result


def report(work_dir: Path, config=None, last_epochs: int = 1) -> dict:
    """The numbers the tool prints, as a dict (see the module docstring).

    Args:
        work_dir (Path): A training work dir with the hook's records.
        config (Config, optional): The training config; ``None`` skips the
            flags' AUC. Defaults to ``None``
        last_epochs (int): Epochs per sample to average. Defaults to 1

    Returns:
        dict: ``samples``, ``last_epochs``, the difficulty's
        ``spearman_labels``, ``partial_spearman_error``, ``spearman_error``
        and ``auc`` (see :func:`signal_statistics`), and ``signals``: the
        same for each of ``SIGNALS`` (difficulty, base loss, OKS error).
    """
    samples = per_sample(load_records(work_dir), last_epochs)
    ids = sorted(samples)
    values = {
        key: np.array([samples[i][key] for i in ids], float)
        for key in ('error', 'labels') + SIGNALS
    }
    flags = load_flags(config) if config is not None else None
    sample_flags = None if flags is None else [
        set(flags.get(i, [])) for i in ids
    ]
    signals = {
        name:
        signal_statistics(values[name], values['error'], values['labels'],
                          sample_flags)
        for name in SIGNALS
    }
    difficulty = signals['difficulty']
    return dict(
        samples=len(ids),
        last_epochs=last_epochs,
        spearman_labels=difficulty['spearman_labels'],
        partial_spearman_error=difficulty['partial_spearman_error'],
        spearman_error=difficulty['spearman_error'],
        auc=difficulty['auc'],
        signals=signals)


def format_report(result: dict) -> str:
    """The report as plain text: the difficulty's numbers, then the table
    of every signal side by side (one column each)."""

    def num(value):
        return 'n/a' if value is None else f'{value:+.3f}'

    lines = [
        f"{result['samples']} tracked samples (mean of the last "
        f"{result['last_epochs']} epoch(s) each)",
        f"rho(difficulty, labels)          {num(result['spearman_labels'])}",
        'rho(difficulty, error | labels)  '
        f"{num(result['partial_spearman_error'])}",
        f"rho(difficulty, error)           {num(result['spearman_error'])}",
    ]
    if result['auc'] is None:
        lines.append('AUC: the annotations carry no difficulty flags')
    else:
        for name, entry in result['auc'].items():
            auc = 'n/a' if entry['auc'] is None else f"{entry['auc']:.3f}"
            lines.append(f'AUC {name:<13} {auc:>6}  ({entry["positives"]} '
                         f'flagged vs {entry["negatives"]} clean)')
    signals = result['signals']
    width = max(len(SIGNAL_NAMES[s]) for s in SIGNALS) + 2
    lines += [
        '', 'Signals side by side (the OKS error knows the ground truth: '
        'the oracle)', ' ' * 30 + ''.join(f'{SIGNAL_NAMES[s]:>{width}}'
                                          for s in SIGNALS),
        f"{'samples with the signal':<30}" +
        ''.join(f"{signals[s]['samples']:>{width}}" for s in SIGNALS)
    ]
    for label, key in (('rho(signal, labels)', 'spearman_labels'),
                       ('rho(signal, error | labels)',
                        'partial_spearman_error'), ('rho(signal, error)',
                                                    'spearman_error')):
        lines.append(f'{label:<30}' +
                     ''.join(f'{num(signals[s][key]):>{width}}'
                             for s in SIGNALS))
    for name in result['auc'] or {}:
        cells = []
        for s in SIGNALS:
            auc = (signals[s]['auc'] or {}).get(name, {}).get('auc')
            cells.append(f"{'n/a' if auc is None else f'{auc:.3f}':>{width}}")
        lines.append(f'{"AUC " + name:<30}' + ''.join(cells))
    return '\n'.join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        'work_dir',
        type=Path,
        help='training work dir with afl_difficulty_rank*.jsonl')
    parser.add_argument(
        '--config',
        help='training config, for the annotation file that holds the '
        'difficulty flags (default: the config MMEngine dumped in WORK_DIR)')
    parser.add_argument(
        '--last-epochs',
        type=int,
        default=1,
        help='average each sample over the last N epochs it was seen in '
        '(default: 1)')
    parser.add_argument(
        '--out',
        type=Path,
        help='where to write the JSON '
        '(default: WORK_DIR/afl_difficulty_report.json)')
    return parser


def main() -> None:
    args = build_parser().parse_args()
    if args.last_epochs < 1:
        raise SystemExit('--last-epochs must be >= 1')
    from mmengine.config import Config
    config = args.config or next(
        iter(sorted(args.work_dir.glob('*.py'))), None)
    result = report(args.work_dir,
                    Config.fromfile(str(config)) if config else None,
                    args.last_epochs)
    print(format_report(result))
    out = args.out or args.work_dir / 'afl_difficulty_report.json'
    out.write_text(json.dumps(result, indent=2) + '\n')
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
