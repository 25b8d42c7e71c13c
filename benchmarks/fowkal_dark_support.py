"""How much of a DARK target FoWKAL's (F)WAHR weights treat as foreground,
with the Gaussian support floor (the default, ``exp(-4.5)``) and without it
(``support_floor=0``, the old ``gt > 0``), on the targets that the FoWKAL
synthetic WholeBody demo's data pipeline produces.

    python benchmarks/fowkal_dark_support.py [--data-root DIR]
        [--samples 64] [--checkpoint CKPT]

Over the heatmaps of the labelled keypoints of ``--samples`` training
samples (the demo config's train pipeline, DARK targets, augmentation
included, seed 0) it prints, for each floor: the share of pixels whose
weight is foreground-like (``G^gamma >= 1/2``, where the WAHR weight is
nearer ``|1 - P^|`` than ``|P^|``) and the mean FWAHR weight on the
background (the pixels outside the Gaussian's 3-sigma disc, ``G <
exp(-4.5)``, where the standard encoder's target is 0 or below
``exp(-4.5)``) at a prediction of 0.02 everywhere and, with
``--checkpoint``, at that model's predictions.
"""
import argparse
from typing import Dict, Optional

import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from mmengine.runner import set_random_seed
from mmpose.registry import DATASETS, MODELS

import mmpose_afl  # noqa: F401
from mmpose_afl.models.losses import GAUSSIAN_SUPPORT_FLOOR

CONFIG = ('configs/fowkal/'
          'td-hm_res18_fowkal-1xb16-20e_synthetic-coco-wholebody-128x96.py')


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0].replace('\n', ' '))
    parser.add_argument(
        '--data-root',
        default='data/synthetic_coco_wholebody_128-24/',
        help='synthetic WholeBody data (default: '
        "%(default)s, the demo's quick data)")
    parser.add_argument(
        '--samples',
        type=int,
        default=64,
        help='training samples (default: %(default)s)')
    parser.add_argument(
        '--checkpoint',
        help='also weigh the predictions of this checkpoint '
        'of the config (default: none)')
    return parser.parse_args(argv)


def statistics(gt: torch.Tensor, pred: Dict[str, torch.Tensor],
               floor: float) -> Dict[str, float]:
    """Foreground-like share and background weights of ``gt`` [N, H, W]
    (one labelled keypoint each) under ``support_floor=floor``."""
    loss = MODELS.build(
        dict(type='FoWKALLoss', weighting='wahr', support_floor=floor))
    maps = gt[:, None]  # pixel_weights is element-wise: K=1 is enough
    g_pow = loss.pixel_weights(torch.zeros_like(maps), maps)  # G^gamma
    loss.weighting = 'fwahr'
    background = maps < GAUSSIAN_SUPPORT_FLOOR
    stats = {'foreground-like share': (g_pow >= 0.5).float().mean().item()}
    for name, p in pred.items():
        weight = loss.pixel_weights(p[:, None], maps)
        stats[f'background FWAHR weight, {name}'] = \
            weight[background].mean().item()
    return stats


def main(argv=None) -> None:
    args = parse_args(argv)
    init_default_scope('mmpose')
    set_random_seed(0)
    cfg = Config.fromfile(CONFIG)
    dataset = DATASETS.build(
        dict(cfg.train_dataloader.dataset, data_root=args.data_root))
    batch = pseudo_collate([dataset[i] for i in range(args.samples)])
    heatmaps = torch.stack(
        [s.gt_fields.heatmaps for s in batch['data_samples']])
    labelled = torch.cat([
        torch.as_tensor(s.gt_instance_labels.keypoint_weights)
        for s in batch['data_samples']
    ]) > 0
    gt = heatmaps[labelled]
    pred = {'P^ = 0.02': torch.full_like(gt, 0.02)}
    prediction = model_prediction(cfg, args.checkpoint, batch)
    if prediction is not None:
        pred['model'] = prediction[labelled]
    print(f'{len(gt)} labelled keypoint heatmaps of {args.samples} samples '
          f'({tuple(gt.shape[1:])}); share of pixels with gt > 0: '
          f'{(gt > 0).float().mean():.3f}, in the 3-sigma disc: '
          f'{(gt >= GAUSSIAN_SUPPORT_FLOOR).float().mean():.3f}')
    for floor in (0.0, GAUSSIAN_SUPPORT_FLOOR):
        stats = statistics(gt, pred, floor)
        print(f'support_floor={floor:.4f}: ' +
              ', '.join(f'{k} {v:.4f}' for k, v in stats.items()))


def model_prediction(cfg: Config, checkpoint: Optional[str],
                     batch: dict) -> Optional[torch.Tensor]:
    """The heatmaps [B, K, H, W] that ``checkpoint`` predicts for the
    batch, or ``None`` without a checkpoint."""
    if checkpoint is None:
        return None
    from mmpose.apis import init_model
    model = init_model(cfg, checkpoint, device='cpu')
    with torch.no_grad():
        data = model.data_preprocessor(batch, False)
        return model(data['inputs'], data['data_samples'], mode='tensor')


if __name__ == '__main__':
    main()
