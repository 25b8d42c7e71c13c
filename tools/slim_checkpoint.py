"""Strip training-only state from a checkpoint so that it loads into the
stock MMPose model for inference, without this plugin.

    python tools/slim_checkpoint.py IN.pth OUT.pth [--config CONFIG]
        [--out-config STOCK.py] [--allow-inference-change]

Keeps ``meta`` and the state-dict entries the stock model has; drops the AFL
critic and its optimizer, the optimizer, message hub and schedulers, the KAL
factors of the loss and the SAHR scale branch (see ``mmpose_afl/slim.py``).
Writes the stock config next to OUT (``OUT`` with ``.py`` in place of its
suffix, or ``--out-config``) and stores it in ``meta['cfg']``; then

    mim test mmpose STOCK.py --checkpoint OUT.pth

runs without ``mmpose_afl``. Exit status 2, with the reason, when the
checkpoint cannot be made stock.
"""
import argparse
import sys
from pathlib import Path

import torch

from mmpose_afl.slim import SlimError, slim_checkpoint


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('checkpoint', help='checkpoint written by training')
    parser.add_argument('out', help='slim checkpoint to write')
    parser.add_argument(
        '--config',
        help='training config (default: the one stored in the checkpoint)')
    parser.add_argument(
        '--out-config',
        help='where to write the stock config (default: OUT with .py)')
    parser.add_argument(
        '--allow-inference-change',
        action='store_true',
        help='write it even if the stock model predicts differently '
        '(e.g. a head that applies a sigmoid before decoding)')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmengine.config import Config
    out = Path(args.out)
    out_config = Path(args.out_config or out.with_suffix('.py'))
    if out_config.resolve() == out.resolve():
        print(
            'slim_checkpoint: OUT must not end in .py (the stock config '
            'is written to OUT with .py)',
            file=sys.stderr)
        return 2
    try:
        checkpoint = torch.load(
            args.checkpoint, map_location='cpu', weights_only=False)
        cfg = Config.fromfile(args.config) if args.config else None
        slim, report = slim_checkpoint(checkpoint, cfg,
                                       args.allow_inference_change)
    except (SlimError, OSError) as err:
        print(f'slim_checkpoint: {err}', file=sys.stderr)
        return 2
    torch.save(slim, out)
    out_config.write_text(slim['meta']['cfg'])
    for change in report['changes']:
        print(f'config  {change}')
    for key in report['dropped_keys']:
        print(f'removed checkpoint[{key!r}]')
    for name in report['dropped_entries']:
        print(f'removed state_dict[{name!r}]')
    print(f'wrote {out} ({out.stat().st_size / 2**20:.1f} MiB, '
          f'{len(slim["state_dict"])} tensors) and {out_config}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
