"""AFL against MSE, paired by seed, and what AFL's difficulty measured, from
the runs of an AFL-focused ``bench_accuracy.py``.

    python benchmarks/bench_accuracy.py --preset demo-full --methods MSE \\
        'AFL (MSE)' 'AFL (MSE, paper)' --datasets wholebody coco \\
        --out-dir work_dirs/bench_afl --out benchmarks/results_afl.md
    python benchmarks/afl_comparison.py work_dirs/bench_afl \\
        [--out benchmarks/results_afl_paired.md]

A seed gives every method the same initialisation and data order, so each
AFL run is compared with the MSE run of its own seed (bench_accuracy.py adds
ReseedBeforeInitHook for that). Per dataset and AFL variant, for each
metric: the per-seed differences to MSE, their mean ± sd, and a verdict
from a two-sided paired t-test at 5 % (better / worse / not
distinguishable; mmpose_afl/benchmark/paired.py, shared with
bench_accuracy.py); and whether every seed stays at or above MSE's value of
that seed minus the sd of MSE over the seeds (the "never collapses" goal of
docs/afl.md). Per AFL run, what the difficulty did: the smallest and the
mean effective sample size of the weights over the logged windows
(``afl_ess``), and ``tools/afl_difficulty_report.py``'s rank correlation of
the tracked samples' difficulty with their label count, its partial rank
correlation with the prediction's error at fixed label count, and the ROC
AUC for the synthetic difficulty flags (any flag vs clean).
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

from mmpose_afl.benchmark.accuracy_configs import slug
from mmpose_afl.benchmark.accuracy_methods import COLUMNS, METHODS
from mmpose_afl.benchmark.paired import RULE, paired
from mmpose_afl.zoo import Measured, ZooError, read_measured

# run as a user runs it: its report is a tool of its own
TOOL = Path(__file__).resolve().parents[1] / 'tools/afl_difficulty_report.py'
REFERENCE = 'MSE'


def run_dir(root: Path, dataset: str, method: str) -> Path:
    """Where ``bench_accuracy.py`` puts a method's runs (one per seed)."""
    return root / dataset / slug(method)


def finished(root: Path, dataset: str, method: str) -> Dict[int, Measured]:
    """``{seed: metrics}`` of a method's finished runs (those with an
    evaluation; runs still training are left out)."""
    found = {}
    for path in sorted(run_dir(root, dataset, method).glob('seed*')):
        try:
            found[int(path.name[4:])] = read_measured(str(path))
        except ZooError:
            pass
    return found


def ess(work_dir: Path) -> Optional[Dict[str, float]]:
    """Smallest and mean ``afl_ess`` of a run's logged training windows."""
    values = []
    for path in work_dir.glob('*/vis_data/scalars.json'):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if 'afl_ess' in record:
                values.append(record['afl_ess'])
    if not values:
        return None
    return dict(min=min(values), mean=statistics.mean(values))


def difficulty_report(work_dir: Path) -> dict:
    """``tools/afl_difficulty_report.py``'s numbers for a run (the tool
    reads the difficulty flags of the training annotations that the run's
    dumped config names); empty when the run tracked no samples."""
    if not list(work_dir.glob('afl_difficulty_rank*.jsonl')):
        return {}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / 'report.json'
        subprocess.run(
            [sys.executable,
             str(TOOL),
             str(work_dir), '--out',
             str(out)],
            check=True,
            stdout=subprocess.DEVNULL)
        return json.loads(out.read_text())


def _fmt(value: Optional[float], digits: int = 3, sign: bool = False) -> str:
    if value is None or value != value:  # None or NaN
        return '-'
    return f'{value:+.{digits}f}' if sign else f'{value:.{digits}f}'


def comparison(root: Path) -> List[str]:
    """The markdown of the comparison for every dataset under ``root``."""
    lines = []
    for dataset, columns in COLUMNS.items():
        variants = [
            m for m in METHODS
            if m.startswith('AFL') and finished(root, dataset, m)
        ]
        measured = {
            m: {
                s: found.metrics
                for s, found in finished(root, dataset, m).items()
            }
            for m in [REFERENCE] + variants
        }
        if not measured[REFERENCE] or not variants:
            continue
        lines += [
            f'## synthetic {dataset}', '',
            '| AFL variant | metric | MSE | per-seed Δ to MSE | '
            'mean ± sd | p | verdict | ≥ MSE − sd on every seed |',
            '|---|---|---:|---|---:|---:|---|---|'
        ]
        for method in variants:
            for column, key in columns:
                ref = {s: m[key] for s, m in measured[REFERENCE].items()}
                result = paired(
                    {
                        s: m[key]
                        for s, m in measured[method].items()
                    }, ref)
                if not result['seeds']:
                    continue
                lines.append(
                    f'| {method} | {column} | '
                    f'{statistics.mean(ref.values()):.3f} | ' + ', '.join(
                        f's{s} {d:+.3f}'
                        for s, d in zip(result['seeds'], result['diffs'])) +
                    f' | {result["mean"]:+.3f} ± {result["sd"]:.3f} | '
                    f'{_fmt(result["p"])} | {result["verdict"]} | '
                    f'{"yes" if result["no_collapse"] else "**no**"} |')
        lines += [
            '', '| AFL variant | seed | ESS min | ESS mean | '
            'ρ(difficulty, labels) | '
            'ρ(difficulty, error), labels fixed | AUC any flag | '
            'tracked |', '|---|---:|---:|---:|---:|---:|---:|---:|'
        ]
        for method in variants:
            for seed in measured[method]:
                work_dir = run_dir(root, dataset, method) / f'seed{seed}'
                weights = ess(work_dir) or {}
                found = difficulty_report(work_dir)
                auc = (found.get('auc') or {}).get('any') or {}
                lines.append(
                    f'| {method} | {seed} | {_fmt(weights.get("min"))} | '
                    f'{_fmt(weights.get("mean"))} | '
                    f'{_fmt(found.get("spearman_labels"), sign=True)} | '
                    f'{_fmt(found.get("partial_spearman_error"), sign=True)}'
                    f' | {_fmt(auc.get("auc"))} | '
                    f'{found.get("samples", "-")} |')
        lines.append('')
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        epilog=__doc__.split('\n\n', 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        'root',
        type=Path,
        help="bench_accuracy.py's --out-dir with MSE and "
        'AFL runs')
    parser.add_argument(
        '--out',
        type=Path,
        help='markdown file to write (default: print only)')
    args = parser.parse_args(argv)
    lines = comparison(args.root)
    if not lines:
        print(
            f'afl_comparison: no MSE and AFL runs under {args.root}',
            file=sys.stderr)
        return 2
    text = '\n'.join(lines)
    print(text)
    if args.out:
        args.out.write_text(
            '# AFL against MSE, paired by seed\n\nWritten by `python '
            f'benchmarks/afl_comparison.py {args.root}`; the runs are '
            "bench_accuracy.py's (see benchmarks/results_afl.md for the "
            'budget and the machine). ' + RULE + '\n\n' + text + '\n')
    return 0


if __name__ == '__main__':
    sys.exit(main())
