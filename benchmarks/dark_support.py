"""What the Gaussian support floor changes on a config's real training
targets: the share of heatmap pixels that WAHR and SAHR count as foreground
and the mean WAHR weight on the background, before (``support_floor=0``,
i.e. ``gt > 0``) and after (the default ``exp(-4.5)``).

    python benchmarks/dark_support.py CONFIG [--num-images 32]
        [--pred 0.02] [--checkpoint NAME=CKPT ...] [--cfg-options ...]

The targets come from the config's training pipeline (its codec: DARK for
the WholeBody configs), over the labelled keypoints' heatmaps. Background
means outside the 3-sigma disc of every keypoint (``gt < exp(-4.5)``), the
same pixels under every floor. The background weight is taken at a
constant prediction ``--pred`` and, per ``--checkpoint``, at that model's
own predictions on the same inputs.
"""
import argparse
import sys
from pathlib import Path
from typing import Dict, Optional

import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mmpose_afl.models.losses import GAUSSIAN_SUPPORT_FLOOR  # noqa: E402
from mmpose_afl.models.losses import WAHRLoss, gaussian_support

FLOORS = {
    'before (gt > 0)': 0.,
    'after (gt >= exp(-4.5))': GAUSSIAN_SUPPORT_FLOOR
}


def support_stats(heatmaps: Tensor, keypoint_weights: Tensor,
                  predictions: Dict[str,
                                    Tensor], floor: float) -> Dict[str, float]:
    """For one support floor: ``foreground`` (share of the labelled
    keypoints' pixels inside the support, where SAHR's regulariser acts)
    and ``bg_weight <name>`` (mean WAHR weight on the background pixels,
    those outside the 3-sigma disc) per prediction of ``predictions``.

    Args:
        heatmaps (Tensor): Targets [B, K, H, W]
        keypoint_weights (Tensor): [B, K]; channels with weight 0 are left
            out
        predictions (dict): Name -> predicted heatmaps [B, K, H, W]
        floor (float): The support floor
    """
    labelled = keypoint_weights > 0
    gt = heatmaps[labelled]
    background = ~gaussian_support(gt)
    loss = WAHRLoss(support_floor=floor)
    stats = {'foreground': gaussian_support(gt, floor).double().mean().item()}
    for name, pred in predictions.items():
        weight = loss.weight(pred[labelled], gt)
        stats[f'bg_weight {name}'] = weight[background].double().mean().item()
    return stats


def load_batch(cfg: Config, num_images: int) -> dict:
    """The first ``num_images`` samples of the training set, through the
    training pipeline, collated."""
    from mmpose.registry import DATASETS
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    return pseudo_collate([dataset[i] for i in range(num_images)])


@torch.no_grad()
def predict(cfg: Config, checkpoint: str, batch: dict) -> Tensor:
    """The heatmaps of the config's model with ``checkpoint`` on ``batch``."""
    from mmpose.registry import MODELS
    model = MODELS.build(cfg.model)
    load_checkpoint(model, checkpoint, map_location='cpu')
    model.eval()
    data = model.data_preprocessor(batch, False)
    return model(data['inputs'], None, mode='tensor')


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config whose training targets to use')
    parser.add_argument(
        '--num-images',
        type=int,
        default=32,
        help='training samples (default: %(default)s)')
    parser.add_argument(
        '--pred',
        type=float,
        default=0.02,
        help='constant prediction for the background weight '
        '(default: %(default)s)')
    parser.add_argument(
        '--checkpoint',
        nargs='*',
        default=[],
        metavar='NAME=CKPT',
        help="checkpoints whose predictions to weight too")
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='override config settings')
    args = parser.parse_args(argv)

    cfg = Config.fromfile(args.config)
    cfg.merge_from_dict(args.cfg_options)
    init_default_scope('mmpose')
    import mmpose_afl  # noqa: F401  (registers the project's modules)
    torch.manual_seed(0)
    batch = load_batch(cfg, args.num_images)
    heatmaps = torch.stack(
        [s.gt_fields.heatmaps for s in batch['data_samples']])
    weights = torch.cat(
        [s.gt_instance_labels.keypoint_weights for s in batch['data_samples']])
    predictions = {f'P={args.pred:g}': torch.full_like(heatmaps, args.pred)}
    for item in args.checkpoint:
        name, path = item.split('=', 1)
        predictions[name] = predict(cfg, path, batch)

    rows = {
        label: support_stats(heatmaps, weights, predictions, floor)
        for label, floor in FLOORS.items()
    }
    columns = list(next(iter(rows.values())))
    print(f'{args.num_images} training samples of {args.config}, '
          f'{int((weights > 0).sum())} labelled keypoint heatmaps of '
          f'{heatmaps.shape[-2]}x{heatmaps.shape[-1]}\n')
    print('| support | ' + ' | '.join(columns) + ' |')
    print('|---|' + '---:|' * len(columns))
    for label, stats in rows.items():
        print(f'| {label} | ' + ' | '.join(f'{stats[c]:.4f}'
                                           for c in columns) + ' |')


if __name__ == '__main__':
    main()
