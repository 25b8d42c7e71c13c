"""Compare runs with the MMPose model-zoo numbers of their baseline config.

    python tools/compare_with_zoo.py CONFIG RESULTS [CONFIG RESULTS ...]
        [--baseline-metafile META.yml ...] [--baseline NAME]
        [--metrics AP AR ...] [--png comparison.png] [--md comparison.md]

RESULTS is a work dir of ``mim train`` / ``mim test`` or the JSON file MMEngine
wrote in it (``<ts>/<ts>.json`` after a test, ``<ts>/vis_data/<ts>.json``
during training). The baseline of each CONFIG is the nearest config in its
``_base_`` chain that has published numbers, up to its first ``mmpose::`` base
(see ``mmpose_afl/zoo/``). Prints a markdown table (baseline row, each
method row, and its difference per metric) and draws a bar chart.

A run evaluated on other data than the published numbers (synthetic data,
another annotation file, ground-truth instead of detected person boxes), or
whose backbone started from other weights than the zoo model's (e.g.
``init_cfg=None``, random weights, against the zoo's ImageNet ones; a run
with ``load_from`` is a fine-tune and is not flagged), is not comparable
with them: the tool then warns, on stderr and under the table, and says
what differs.
Exit status 2, with the reason, when a baseline or a metric is not found.
"""
import argparse
import sys
from collections import OrderedDict
from pathlib import Path

from mmpose_afl.zoo import (ZooError, data_mismatches, default_metafiles,
                            eval_data, find_baseline, load_entries,
                            match_metrics, mmpose_config_root, read_measured,
                            run_config, start_mismatches)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        'runs',
        nargs='+',
        metavar='CONFIG RESULTS',
        help='pairs of a config and its work dir or results JSON')
    parser.add_argument(
        '--baseline-metafile',
        action='append',
        default=[],
        metavar='YML',
        help='extra model-index metafile(s), read before MMPose\'s own, e.g. '
        'a stand-in entry for a config the zoo has no numbers for')
    parser.add_argument(
        '--baseline',
        help='compare with this entry (Name or Config) instead of the one '
        'found in the _base_ chain')
    parser.add_argument(
        '--metrics',
        nargs='+',
        help='published metric names to compare (default: all of the '
        'baseline\'s, e.g. AP AP@0.5 AP@0.75 AR AR@0.5)')
    parser.add_argument(
        '--png',
        default='zoo_comparison.png',
        help='bar chart to write (default: %(default)s; "" for none)')
    parser.add_argument('--md', help='also write the table to this file')
    args = parser.parse_args(argv)
    if len(args.runs) % 2:
        parser.error('give CONFIG RESULTS pairs (an even number of paths)')
    return args


def compare(runs, metafiles, baseline=None, metrics=None):
    """Groups of comparisons by baseline:
    ``{entry name: (entry, [(label, source, rows, mismatches)])}``."""
    entries = load_entries(list(metafiles) + default_metafiles())
    groups = OrderedDict()
    for config, results in zip(runs[::2], runs[1::2]):
        entry = find_baseline(config, entries, baseline)
        measured = read_measured(results)
        rows = match_metrics(entry, measured, metrics)
        used = run_config(config, results)
        mismatches = (
            data_mismatches(eval_data(used), entry) +
            start_mismatches(used, entry))
        groups.setdefault(entry.name, (entry, []))[1].append(
            (Path(config).stem, measured.source, rows, mismatches))
    return groups


def baseline_label(entry) -> str:
    """The baseline's row: ``(zoo)`` when its numbers come from MMPose's
    own metafiles, ``(stand-in)`` when from a ``--baseline-metafile``."""
    # ``parents`` rather than ``Path.is_relative_to``, new in Python 3.9
    zoo = mmpose_config_root().resolve() in Path(
        entry.source).resolve().parents
    return f'{entry.name} ({"zoo" if zoo else "stand-in"})'


def markdown(groups) -> str:
    lines = []
    for entry, methods in groups.values():
        names = [name for name, _, _ in methods[0][2]]
        lines += [
            f'Baseline `{entry.name}` on {entry.dataset} '
            f'(published: {entry.source})', '',
            '| model | ' + ' | '.join(names) + ' |',
            '|---|' + '---:|' * len(names), f'| {baseline_label(entry)} | ' +
            ' | '.join(f'{entry.metrics[n]:.3f}' for n in names) + ' |'
        ]
        for label, _, rows, _ in methods:
            lines.append(f'| {label} | ' +
                         ' | '.join(f'{m:.3f}' for _, _, m in rows) + ' |')
            lines.append('| Δ | ' + ' | '.join(f'{m - p:+.3f}'
                                               for _, p, m in rows) + ' |')
        lines += [''] + [
            f'{label}: {source}' for label, source, _, _ in methods
        ]
        lines += [
            f'**Not like-for-like** ({label}): {mismatch}'
            for label, _, _, mismatches in methods for mismatch in mismatches
        ]
        lines.append('')
    return '\n'.join(lines)


def bar_chart(groups, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(
        len(groups), 1, figsize=(9, 3.5 * len(groups)), squeeze=False)
    for ax, (entry, methods) in zip(axes[:, 0], groups.values()):
        names = [name for name, _, _ in methods[0][2]]
        bars = [(baseline_label(entry), [entry.metrics[n] for n in names])]
        bars += [(label, [m for _, _, m in rows])
                 for label, _, rows, _ in methods]
        x = np.arange(len(names))
        width = 0.8 / len(bars)
        for i, (label, values) in enumerate(bars):
            drawn = ax.bar(
                x + (i - (len(bars) - 1) / 2) * width,
                values,
                width,
                label=label)
            if i:  # annotate each method bar with its difference
                deltas = [f'{m - p:+.3f}' for _, p, m in methods[i - 1][2]]
                ax.bar_label(drawn, deltas, fontsize=7)
        ax.set_xticks(x, names)
        ax.set_ylim(0, 1.3 * max(max(v) for _, v in bars))
        ax.set_title(f'{entry.dataset}: baseline {entry.name}', fontsize=9)
        # beside the axes: run names are long, a row of them overflows
        ax.legend(fontsize=7, loc='upper left', bbox_to_anchor=(1.01, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=120, bbox_inches='tight')
    plt.close(fig)


def main(argv=None) -> int:
    args = parse_args(argv)
    try:
        groups = compare(args.runs, args.baseline_metafile, args.baseline,
                         args.metrics)
    except ZooError as err:
        print(f'compare_with_zoo: {err}', file=sys.stderr)
        return 2
    for _, methods in groups.values():
        for label, _, _, mismatches in methods:
            for mismatch in mismatches:
                print(
                    f'compare_with_zoo: WARNING: {label} is not comparable '
                    f'with its baseline: {mismatch}',
                    file=sys.stderr)
    table = markdown(groups)
    print(table)
    if args.md:
        Path(args.md).write_text(table)
    if args.png:
        bar_chart(groups, args.png)
        print(f'bar chart: {args.png}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
