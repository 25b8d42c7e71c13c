"""Left/right confusion of a top-down model's predictions: per joint pair,
the share of people whose two channels (left and right) both land on the
same joint (and the share whose two channels are swapped), and the median
error per joint group, from the predictions ``mim test ... --dump
preds.pkl`` writes.

Why: on the synthetic WholeBody set MSE puts both knees (and both ankles)
on the same leg for most people, and the feet, which hang off the ankles,
follow; benchmarks/calibration_notes.md has the measurement. For a
person with both joints of a pair (a, b) labelled, the two predictions
are matched to the ground truth in the four possible ways, each scored by
its summed distance: own (a-a, b-b), swapped (a-b, b-a), or one joint
taken twice (a-a, b-a or a-b, b-b). The pair is *collapsed* when one
joint taken twice is strictly nearest, *swapped* when the swap is
strictly nearer than both others. Errors are divided by ``sqrt(area)``,
the scale COCO's OKS uses.

Example::

    mim test mmpose CONFIG --checkpoint CKPT --dump work_dirs/preds.pkl
    python benchmarks/left_right.py work_dirs/preds.pkl
"""
import argparse
import pickle
from pathlib import Path

from mmpose_afl.evaluation.left_right import GROUPS, PAIRS, left_right


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        epilog=__doc__.split('\n\n', 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        'dumps',
        type=Path,
        nargs='+',
        help='prediction pickles of mim test --dump (one '
        'row each)')
    args = parser.parse_args(argv)
    print('| predictions | people | ' + ' | '.join(f'{n} collapsed / swapped'
                                                   for n in PAIRS) + ' | ' +
          ' | '.join(f'{n} error' for n in GROUPS) + ' |')
    print('|---' * (2 + len(PAIRS) + len(GROUPS)) + '|')
    for path in args.dumps:
        samples = pickle.loads(path.read_bytes())
        shares, medians = left_right(samples)
        cells = [
            '{collapsed:.2f} / {swapped:.2f}'.format(
                **shares[n]) if n in shares else '' for n in PAIRS
        ]
        cells += [f'{medians[n]:.3f}' if n in medians else '' for n in GROUPS]
        print(f'| {path} | {len(samples)} | ' + ' | '.join(cells) + ' |')


if __name__ == '__main__':
    main()
