"""Say whether AFL's difficulty means something, from a training work dir.

AFLCriticHook records, for a fixed set of tracked training samples and each
time one is seen, its difficulty, its number of labelled keypoints and the
error of its prediction (the mean distance between predicted and
ground-truth heatmap peaks over the labelled keypoints, in heatmap pixels)
in WORK_DIR/afl_difficulty_rank*.jsonl. Each sample's records are averaged
over the last --last-epochs epochs it was seen in, and the tool reports:

  labels     Spearman's rho of difficulty and label count: what the paper's
             critic mostly follows (it sees more to compare with more
             labelled keypoints);
  error|lab  partial Spearman of difficulty and prediction error with the
             label count held fixed (rho of the rank residuals after a
             linear fit on the label count's ranks): whether the difficulty
             follows how wrong the prediction is;
  error      Spearman's rho of difficulty and error, not adjusted;
  AUC        ROC AUC of the difficulty for the synthetic generator's
             `difficulty` flags (mmpose_afl/datasets/synthetic.py), read
             from the training annotation file: any flag vs clean samples,
             then each flag vs clean samples (0.5: chance; 1: every flagged
             sample harder than every clean one). Skipped when the
             annotations carry no flags (e.g. the real COCO).

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
    """``{id: dict(difficulty, error, labels)}``: each sample's means over
    its records of the last ``last_epochs`` epochs it was seen in; samples
    without labelled keypoints (``error`` null) are left out."""
    by_id = defaultdict(list)
    for record in records:
        if record.get('error') is not None:
            by_id[record['id']].append(record)
    samples = {}
    for sample_id, recs in by_id.items():
        last = max(r['epoch'] for r in recs)
        recs = [r for r in recs if r['epoch'] > last - last_epochs]
        samples[sample_id] = {
            key: float(np.mean([r[key] for r in recs]))
            for key in ('difficulty', 'error', 'labels')
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


def report(work_dir: Path, config=None, last_epochs: int = 1) -> dict:
    """The numbers the tool prints, as a dict (see the module docstring).

    Args:
        work_dir (Path): A training work dir with the hook's records.
        config (Config, optional): The training config; ``None`` skips the
            flags' AUC. Defaults to ``None``
        last_epochs (int): Epochs per sample to average. Defaults to 1

    Returns:
        dict: ``samples``, ``spearman_labels``, ``partial_spearman_error``,
        ``spearman_error`` and ``auc`` (``None``, or ``{'any' or flag:
        dict(auc, positives, negatives)}``).
    """
    samples = per_sample(load_records(work_dir), last_epochs)
    ids = sorted(samples)
    difficulty, error, labels = (np.array([samples[i][k] for i in ids])
                                 for k in ('difficulty', 'error', 'labels'))
    result = dict(
        samples=len(ids),
        last_epochs=last_epochs,
        spearman_labels=spearman(difficulty, labels),
        partial_spearman_error=partial_spearman(difficulty, error, labels),
        spearman_error=spearman(difficulty, error),
        auc=None)
    flags = load_flags(config) if config is not None else None
    if flags is not None:
        sample_flags = [set(flags.get(i, [])) for i in ids]
        clean = np.array([not f for f in sample_flags])
        result['auc'] = {}
        for name in ('any', ) + FLAGS:
            positive = ~clean if name == 'any' else np.array(
                [name in f for f in sample_flags])
            keep = positive | clean
            result['auc'][name] = dict(
                auc=roc_auc(difficulty[keep], positive[keep]),
                positives=int(positive.sum()),
                negatives=int(clean.sum()))
    return result


def format_report(result: dict) -> str:
    """The report as a plain-text table."""
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
    return '\n'.join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        'work_dir', type=Path,
        help='training work dir with afl_difficulty_rank*.jsonl')
    parser.add_argument(
        '--config',
        help='training config, for the annotation file that holds the '
        'difficulty flags (default: the config MMEngine dumped in WORK_DIR)')
    parser.add_argument(
        '--last-epochs', type=int, default=1,
        help='average each sample over the last N epochs it was seen in '
        '(default: 1)')
    parser.add_argument(
        '--out', type=Path,
        help='where to write the JSON '
        '(default: WORK_DIR/afl_difficulty_report.json)')
    return parser


def main() -> None:
    args = build_parser().parse_args()
    if args.last_epochs < 1:
        raise SystemExit('--last-epochs must be >= 1')
    from mmengine.config import Config
    config = args.config or next(iter(sorted(args.work_dir.glob('*.py'))),
                                 None)
    result = report(args.work_dir,
                    Config.fromfile(str(config)) if config else None,
                    args.last_epochs)
    print(format_report(result))
    out = args.out or args.work_dir / 'afl_difficulty_report.json'
    out.write_text(json.dumps(result, indent=2) + '\n')
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
