"""Re-calibrate the final conv of a stock heatmap checkpoint for a head
that reads its output as logits (SigmoidHeatmapHead, HSM).

    python tools/recalibrate_sigmoid_head.py CHECKPOINT OUT [--prior P]

CHECKPOINT is a file or URL (a zoo checkpoint); OUT gets the same
checkpoint with ``head.final_layer`` mapped affinely, ``logit = a y + b``
with ``b = log(P / (1 - P))`` and ``a = -2 b``: the MSE heatmap range
[0, 1] becomes [P, 1 - P] under the sigmoid, and the argmax of every
heatmap (every keypoint found) stays the same. Without it, HSM fine-tuned
from a stock checkpoint starts at sigmoid 0.5 on the whole background and
collapsed on the synthetic data (docs/finetune.md). An MMPose 0.x
checkpoint (``keypoint_head.final_layer``) is handled too. The HSM
fine-tune config does the same on loading (``SigmoidHeadCalibrationHook``,
one shared function); this tool writes the re-calibrated checkpoint for a
config without that hook, or to inspect it.
"""
import argparse
import sys
from pathlib import Path


def recalibrate(checkpoint: dict, prior: float = 0.1) -> dict:
    """``checkpoint`` (a dict with ``state_dict``), its heatmap head's
    final conv re-calibrated in place by mmpose_afl's
    ``recalibrate_final_conv`` (see the module docstring).

    Args:
        checkpoint (dict): A loaded MMPose checkpoint
        prior (float): The sigmoid the background (MSE output 0) gets, in
            (0, 0.5). Defaults to 0.1, SigmoidHeatmapHead's prior

    Returns:
        dict: ``checkpoint``.
    """
    from mmpose_afl.models.heads.sigmoid_calibration import \
        recalibrate_final_conv
    recalibrate_final_conv(checkpoint, prior)
    return checkpoint


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('checkpoint', help='stock checkpoint, file or URL')
    parser.add_argument('out', help='where the re-calibrated one is written')
    parser.add_argument(
        '--prior',
        type=float,
        default=0.1,
        help='sigmoid of the background after re-calibration (default: '
        '%(default)s)')
    args = parser.parse_args(argv)
    import torch
    from mmengine.runner.checkpoint import _load_checkpoint
    checkpoint = _load_checkpoint(args.checkpoint, map_location='cpu')
    try:
        recalibrate(checkpoint, args.prior)
    except ValueError as err:
        print(f'recalibrate_sigmoid_head: {err}', file=sys.stderr)
        return 2
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, args.out)
    print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
