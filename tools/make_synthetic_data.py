"""Write a synthetic COCO or COCO-WholeBody keypoint dataset.

    python tools/make_synthetic_data.py --kind coco --out data/synthetic_coco
    python tools/make_synthetic_data.py --kind wholebody \\
        --out data/synthetic_coco_wholebody --num-train 200 --num-val 50
    python tools/make_synthetic_data.py --kind coco --layout multi_scale
    python tools/make_synthetic_data.py --kind wholebody --poses \\
        benchmarks/coco_poses/person_keypoints_val2017_labels_only.json

See ``mmpose_afl/datasets/synthetic.py`` for what is drawn and how the
difficulty of each person is made, and ``mmpose_afl/datasets/real_pose.py``
for the people drawn at the poses of a COCO keypoint file (``--poses``).
"""
import argparse
import time

from mmpose_afl.datasets.real_pose import generate_from_poses
from mmpose_afl.datasets.synthetic import (LAYOUTS, UNUSUAL_POSES,
                                           generate_dataset)

DEFAULT_OUT = dict(
    coco='data/synthetic_coco', wholebody='data/synthetic_coco_wholebody')


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        '--kind',
        choices=['coco', 'wholebody'],
        default='coco',
        help='COCO (17 keypoints) or COCO-WholeBody (133) '
        '(default: %(default)s)')
    parser.add_argument(
        '--out',
        help='output root (default: '
        'data/synthetic_coco or data/synthetic_coco_wholebody,'
        ' with _multi_scale appended for that layout, _mild'
        ' for mild unusual poses and _real_pose with --poses)')
    parser.add_argument(
        '--poses',
        metavar='FILE',
        help='a COCO person keypoint annotation file: draw '
        'its images instead of random people, every person '
        'at exactly its keypoints, box and visibility '
        '(train and val a seeded split of its images; '
        '--layout and --unusual-pose do not apply)')
    parser.add_argument(
        '--num-train',
        type=int,
        help='training images (default: 200; with --poses '
        'every image of FILE not in val)')
    parser.add_argument(
        '--num-val',
        type=int,
        default=50,
        help='validation images (default: %(default)s)')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='random seed; the same seed writes the same '
        'bytes (default: %(default)s)')
    parser.add_argument(
        '--layout',
        choices=LAYOUTS,
        default='default',
        help='default: 1-3 people per image; multi_scale: '
        '2-4 people of clearly different sizes per image, '
        'for bottom-up models (default: %(default)s)')
    parser.add_argument(
        '--unusual-pose',
        choices=UNUSUAL_POSES,
        default='any_angle',
        help='how the unusual_pose people are posed: '
        'any_angle (any tilt, any joint angle) or mild (tilt '
        'within +-90 degrees, joint angles 45 degrees beyond '
        'the usual ranges; the accuracy benchmark\'s sets) '
        '(default: %(default)s)')
    args = parser.parse_args()
    if args.poses:
        if args.layout != 'default' or args.unusual_pose != 'any_angle':
            parser.error('--layout and --unusual-pose do not apply to '
                         '--poses (the poses are the file\'s)')
        out = args.out or DEFAULT_OUT[args.kind] + '_real_pose'
        start = time.time()
        written = generate_from_poses(out, args.poses, args.kind,
                                      args.num_train, args.num_val, args.seed)
        print(f'wrote synthetic {args.kind} at the poses of {args.poses} to '
              f'{out} in {time.time() - start:.1f} s')
        for split, path in written.items():
            print(f'  {split}: {path}')
        return
    args.num_train = 200 if args.num_train is None else args.num_train
    # a non-default option never writes over make data's sets
    out = args.out or DEFAULT_OUT[args.kind] + (
        '' if args.layout == 'default' else f'_{args.layout}'
    ) + ('' if args.unusual_pose == 'any_angle' else f'_{args.unusual_pose}')
    start = time.time()
    written = generate_dataset(
        out,
        args.kind,
        args.num_train,
        args.num_val,
        args.seed,
        layout=args.layout,
        unusual_pose=args.unusual_pose)
    print(f'wrote {args.num_train} train + {args.num_val} val images of '
          f'synthetic {args.kind} ({args.layout} layout, '
          f'{args.unusual_pose} unusual poses) to {out} in '
          f'{time.time() - start:.1f} s')
    for split, path in written.items():
        print(f'  {split}: {path}')


if __name__ == '__main__':
    main()
