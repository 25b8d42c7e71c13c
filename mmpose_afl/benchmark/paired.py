"""Methods against a reference method, paired by seed: per-seed
differences, their mean ± sd, a verdict, markdown tables and a figure of
the per-seed differences. Used by benchmarks/bench_accuracy.py,
afl_comparison.py and ae_sahr_comparison.sh; ``python -m
mmpose_afl.benchmark.paired --method ... --reference ...`` applies the
rule to one metric.

Why paired: with the same seed every method starts from the same weights
and sees the same data in the same order with the same augmentations
(benchmarks/bench_accuracy.py's docstring says how that is ensured), so
the seed's share of the spread cancels in ``method - reference`` of that
seed.

Verdict rule (written in every report): over the seeds both runs have
(a value of -1, COCO's "no ground truth in this stratum", leaves the seed
out), the differences d_s = method_s - reference_s; their mean, sd (n - 1)
and a two-sided one-sample t-test of mean(d) = 0 (the paired t-test).
``better`` if p < 0.05 and the mean is > 0, ``worse`` if p < 0.05 and the
mean is < 0, else ``not distinguishable`` (at this budget and number of
seeds: with 3 seeds |t| must exceed 4.30). With identical differences
(sd = 0) p is the t-test's limit: 0 if they are not 0, else 1. With fewer
than 2 seeds there is no test (p None): ``not distinguishable``.
"""
import statistics
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from scipy import stats

ALPHA = 0.05
RULE = ('Verdict: two-sided paired t-test over the seeds (per-seed '
        'difference to the reference run of the same seed) at 5 %: better / '
        'worse when p < 0.05 (by the sign of the mean), otherwise not '
        'distinguishable; seeds where either run has no ground truth in the '
        'stratum (-1) are left out.')
MARK = {'better': '▲', 'worse': '▼', 'not distinguishable': '='}


def paired(method: Dict[int, float], reference: Dict[int, float]) -> dict:
    """Per-seed differences ``method - reference`` over the seeds both have
    (with values >= 0), their mean and sd (n - 1), the two-sided paired
    t-test's p-value and the verdict (module docstring); and whether every
    seed of ``method`` is >= the reference's value of that seed minus the
    reference's sd (the "never collapses" goal of docs/afl.md)."""
    seeds = sorted(
        s for s in set(method) & set(reference)
        if method[s] >= 0 and reference[s] >= 0)
    diffs = [method[s] - reference[s] for s in seeds]
    if not diffs:
        return dict(
            seeds=[],
            diffs=[],
            mean=None,
            sd=None,
            p=None,
            verdict='not distinguishable',
            no_collapse=True)
    mean = statistics.mean(diffs)
    sd = statistics.stdev(diffs) if len(diffs) > 1 else 0.
    ref_sd = statistics.stdev([reference[s]
                               for s in seeds]) if len(seeds) > 1 else 0.
    p: Optional[float] = None
    if len(diffs) > 1:
        if sd > 1e-12:
            p = float(stats.ttest_1samp(diffs, 0.).pvalue)
        else:  # identical differences: the t-test's limit
            p = 0. if abs(mean) > 1e-12 else 1.
    verdict = 'not distinguishable'
    if p is not None and p < ALPHA:
        verdict = 'better' if mean > 0 else 'worse'
    return dict(
        seeds=seeds,
        diffs=diffs,
        mean=mean,
        sd=sd,
        p=p,
        verdict=verdict,
        no_collapse=all(method[s] >= reference[s] - ref_sd for s in seeds))


Runs = Dict[str, Dict[int, Dict[str, float]]]  # method -> seed -> metrics


def _values(runs: Runs, method: str, key: str) -> Dict[int, float]:
    return {s: m[key] for s, m in runs[method].items() if key in m}


def mean_sd(values: Sequence[float]) -> str:
    """``0.450 ± 0.071`` over the values >= 0 (``-`` if none)."""
    values = [v for v in values if v >= 0]
    if not values:
        return '-'
    sd = statistics.stdev(values) if len(values) > 1 else 0.
    return f'{statistics.mean(values):.3f} ± {sd:.3f}'


def cell(result: dict) -> str:
    """``+0.012 ± 0.008 ▲`` (mean ± sd of the differences, verdict)."""
    if result['mean'] is None:
        return '-'
    return (f'{result["mean"]:+.3f} ± {result["sd"]:.3f} '
            f'{MARK[result["verdict"]]}')


def delta_table(runs: Runs, rows: Sequence[Tuple[str, str]],
                reference: str) -> List[str]:
    """Markdown: one row per ``(label, metric key)``, the reference's mean
    ± sd, then each other method's paired difference cell; rows where the
    reference has no value >= 0 are left out."""
    methods = [m for m in runs if m != reference]
    lines = [
        f'| metric | {reference} | ' + ' | '.join(f'Δ {m}'
                                                  for m in methods) + ' |',
        '|---|---:|' + '---:|' * len(methods)
    ]
    for label, key in rows:
        ref = _values(runs, reference, key)
        if not any(v >= 0 for v in ref.values()):
            continue
        cells = [cell(paired(_values(runs, m, key), ref)) for m in methods]
        lines.append(f'| {label} | {mean_sd(list(ref.values()))} | ' +
                     ' | '.join(cells) + ' |')
    return lines


def seed_table(runs: Runs, rows: Sequence[Tuple[str, str]],
               reference: str) -> List[str]:
    """Markdown: per method and metric the per-seed differences, mean ±
    sd, p and the verdict."""
    lines = [
        '| method | metric | per-seed Δ to ' + reference +
        ' | mean ± sd | p | verdict |', '|---|---|---|---:|---:|---|'
    ]
    for method in runs:
        if method == reference:
            continue
        for label, key in rows:
            result = paired(
                _values(runs, method, key), _values(runs, reference, key))
            if not result['seeds']:
                continue
            p = '-' if result['p'] is None else f'{result["p"]:.3f}'
            lines.append(
                f'| {method} | {label} | ' +
                ', '.join(f's{s} {d:+.3f}'
                          for s, d in zip(result['seeds'], result['diffs'])) +
                f' | {result["mean"]:+.3f} ± {result["sd"]:.3f} | {p} | '
                f'{result["verdict"]} |')
    return lines


def plot(panels: Sequence[Tuple[str, Runs, Sequence[Tuple[str, str]]]],
         reference: str, path: Path) -> None:
    """One axis per ``(title, runs, rows)``: for each metric row and
    method, the per-seed differences to ``reference`` as points and their
    mean ± sd as a bar with an error bar; 0 is drawn as a line."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    fig, axes = plt.subplots(
        len(panels), 1, squeeze=False, figsize=(12, 3.6 * len(panels)))
    for ax, (title, runs, rows) in zip(axes[:, 0], panels):
        methods = [m for m in runs if m != reference]
        rows = [(label, key) for label, key in rows
                if any(v >= 0 for v in _values(runs, reference, key).values())]
        width = 0.8 / max(len(methods), 1)
        colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
        for i, method in enumerate(methods):
            for j, (_, key) in enumerate(rows):
                result = paired(
                    _values(runs, method, key), _values(runs, reference, key))
                if not result['diffs']:
                    continue
                x = j + (i - (len(methods) - 1) / 2) * width
                colour = colours[i % len(colours)]
                ax.bar(
                    x,
                    result['mean'],
                    width * 0.9,
                    color=colour,
                    alpha=0.35,
                    yerr=result['sd'],
                    capsize=2,
                    label=method if j == 0 else None)
                ax.scatter(
                    np.full(len(result['diffs']), x),
                    result['diffs'],
                    s=10,
                    color=colour,
                    zorder=3)
        ax.axhline(0, color='black', linewidth=0.8)
        ax.set_xticks(
            range(len(rows)), [label for label, _ in rows],
            rotation=30,
            ha='right',
            fontsize=8)
        ax.set_ylabel(f'Δ to {reference}')
        ax.set_title(f'{title}: per-seed paired differences (points), '
                     'mean ± sd (bars)')
        ax.legend(fontsize=7, ncol=min(5, max(len(methods), 1)))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> int:
    import argparse
    parser = argparse.ArgumentParser(
        description='Apply the verdict rule to one metric of two methods, '
        'one value per seed in the same seed order.',
        epilog=__doc__.split('\n\n', 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--method',
        type=float,
        nargs='+',
        required=True,
        help='the method\'s value at each seed')
    parser.add_argument(
        '--reference',
        type=float,
        nargs='+',
        required=True,
        help='the reference\'s value at each seed')
    args = parser.parse_args(argv)
    if len(args.method) != len(args.reference):
        parser.error('--method and --reference need one value per seed '
                     'each')
    result = paired(
        dict(enumerate(args.method)), dict(enumerate(args.reference)))
    p = '-' if result['p'] is None else f'{result["p"]:.4f}'
    print(f'differences {[round(d, 6) for d in result["diffs"]]}, '
          f'{cell(result)}, p {p}: {result["verdict"]}')
    return 0


if __name__ == '__main__':
    raise SystemExit(main())
