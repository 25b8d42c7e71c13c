"""The report of ``benchmarks/bench_accuracy.py``: mean ± sd per method,
each method's paired difference to its reference (:mod:`.paired`) overall,
per difficulty stratum and per WholeBody part, and a figure of the means."""
from pathlib import Path
from typing import Dict, List, Tuple

from . import paired
from .accuracy_methods import (COCO, COLUMNS, PARTS, PREFIX, REFERENCE,
                               REFERENCES, STRATA)


def reference_of(method: str) -> str:
    """The method whose run of the same seed ``method`` is paired with."""
    return REFERENCES.get(method, REFERENCE)


def paired_groups(runs: Dict[str, dict]) -> List[Tuple[str, Dict[str, dict]]]:
    """(reference, runs of the reference and of the methods paired with
    it) for each reference in ``runs`` with at least one such method, in
    the order of ``runs``."""
    groups = []
    for reference in runs:
        members = [
            m for m in runs if m != reference and reference_of(m) == reference
        ]
        if members:
            groups.append((reference, {
                m: runs[m]
                for m in [reference] + members
            }))
    return groups


Results = Dict[str, Dict[str, Dict[int, Dict[str, float]]]]


def table(results: Results, dataset: str) -> List[str]:
    """Markdown: mean ± sd over the seeds of each method and column."""
    columns = COLUMNS[dataset]
    lines = [
        '| method | ' + ' | '.join(c for c, _ in columns) + ' |',
        '|---|' + '---:|' * len(columns)
    ]
    for method, runs in results[dataset].items():
        cells = [
            paired.mean_sd([m[key] for m in runs.values()])
            for _, key in columns
        ]
        lines.append(f'| {method} | ' + ' | '.join(cells) + ' |')
    return lines


def paired_panels(dataset: str) -> List[Tuple[str, List[Tuple[str, str]]]]:
    """(title, [(label, metric key)]) of the paired tables and figure
    panels: COCO AP overall and per stratum; for WholeBody the same per
    part (whole, body, foot, face, hand)."""
    prefix = PREFIX[dataset]
    parts = [('', '')] if dataset == COCO else PARTS
    return [(f'synthetic {dataset}' + (f', {label}' if label else ''),
             [(f'{label} AP'.strip(), f'{prefix}{pre}AP')] +
             [(f'{label} AP {s}'.strip(), f'{prefix}{pre}AP_{s}')
              for s in STRATA]) for label, pre in parts]


def plot_means(results: Results, path: Path) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import numpy as np
    datasets = list(results)
    fig, axes = plt.subplots(
        len(datasets), 1, squeeze=False, figsize=(10, 3.8 * len(datasets)))
    for ax, dataset in zip(axes[:, 0], datasets):
        columns = COLUMNS[dataset]
        methods = list(results[dataset])
        width = 0.8 / len(methods)
        x = np.arange(len(columns))
        for i, method in enumerate(methods):
            values = np.array([[m[key] for _, key in columns]
                               for m in results[dataset][method].values()])
            sd = values.std(0, ddof=1) if len(values) > 1 else None
            ax.bar(
                x + (i - (len(methods) - 1) / 2) * width,
                values.mean(0),
                width,
                yerr=sd,
                capsize=2,
                label=method)
        ax.set_xticks(x, [c for c, _ in columns])
        ax.set_title(f'synthetic {dataset}: mean ± sd over seeds')
        ax.legend(fontsize=7, ncol=min(5, len(methods)))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report(results: Results, sizes: Dict[str, Tuple[int, int]], settings: dict,
           command: str, preset: str, timing: List[str]) -> List[str]:
    """The markdown report."""
    sizes_text = ', '.join(
        f'{dataset} {h}x{w}' for dataset in results
        for w, h in [settings['input_size'][dataset] or (96, 128)])
    nets = ' (RTMPose-t: its CSPNeXt-t)' if any('RTMPose' in m for d in results
                                                for m in results[d]) else ''
    lines = [
        '# Accuracy on the synthetic data', '',
        f'Written by `python benchmarks/bench_accuracy.py {command}` (preset '
        f'{preset}); the protocol is in the script\'s docstring. Every '
        f'method: ResNet-18{nets} from random weights (input {sizes_text}), '
        f'batch {settings["batch_size"]}, {settings["epochs"]} epochs, seeds '
        f'{settings["seeds"]}; mean ± sd (n - 1) over the seeds of the '
        'validation at the end. ' +
        ('Each seed trains and validates on its own synthetic set, drawn '
         'with the seed as generator seed (the same for every method), '
         'so the sd covers the draw of the data as well as training.'
         if settings['data_per_seed'] else
         'Every seed trains and validates on the same synthetic set '
         '(generator seed 0).') +
        (f' The people are drawn at the poses of '
         f'`{Path(settings["poses"]).name}` (a seeded split of its images '
         'per seed; every keypoint, box, visibility flag and area the '
         'file\'s; no difficulty flags, so the strata are the '
         'annotations\' own; mmpose_afl/datasets/real_pose.py).'
         if settings.get('poses') else ''), ''
    ] + timing
    for dataset in results:
        num_train, num_val = sizes[dataset]
        lines += [
            f'## synthetic {dataset} ({num_train} train / {num_val} '
            'val images)', ''
        ] + table(results, dataset) + ['']
        for reference, runs in paired_groups(results[dataset]):
            lines += [
                f'### Paired difference to {reference}', '',
                'Each cell: mean ± sd over the seeds of the method\'s '
                f'value minus {reference}\'s of the same seed, and the '
                'verdict: ▲ better, ▼ worse, = not distinguishable at '
                f'this budget. {paired.RULE} The {reference} column is '
                'its own mean ± sd. Strata: '
                'mmpose_afl/evaluation/metrics/stratified_metric.py.', ''
            ]
            for title, rows in paired_panels(dataset):
                lines += [f'#### {title}', ''] + paired.delta_table(
                    runs, rows, reference) + ['']
            lines += [f'### Per seed, to {reference}', ''] + \
                paired.seed_table(runs, COLUMNS[dataset], reference) + ['']
    return lines
