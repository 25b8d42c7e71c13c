"""Show what a trained SAHRHead's scale maps do: the effective Gaussian std
sigma_eff = sigma / sqrt(1 + s) of each keypoint, read at its predicted peak.

    python tools/vis_sahr_scales.py CONFIG CHECKPOINT [--num-images 32]
        [--out work_dirs/sahr_scales] [--cfg-options KEY=VALUE ...]

Runs the model on the first images of the config's val set (the test-time
pipeline, no flip) and writes to --out:

- ``sigma_eff.json``: per keypoint name, the mean and std of sigma_eff (in
  heatmap pixels) over the images, and the codec's sigma;
- ``sigma_eff.png``: that as a bar chart against the fixed sigma;
- ``image_<i>.png`` for the first --draw images: the input crop with a circle
  of radius sigma_eff (in input pixels) around each predicted keypoint.

Large sigma_eff: the model asks for a wider target there (scale ambiguity or
uncertainty, in the SWAHR paper's reading); small: a sharper one.
"""
import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import torch
from mmengine.config import DictAction
from mmengine.runner import Runner


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='config of the SAHR run')
    parser.add_argument('checkpoint', help='its trained checkpoint')
    parser.add_argument(
        '--num-images',
        type=int,
        default=32,
        help='val images to measure sigma_eff on '
        '(default: %(default)s)')
    parser.add_argument(
        '--draw',
        type=int,
        default=4,
        help='how many images to draw (default: %(default)s)')
    parser.add_argument(
        '--out',
        default='work_dirs/sahr_scales',
        help='output folder (default: %(default)s)')
    parser.add_argument(
        '--device',
        default='cpu',
        help='torch device to run the model on, e.g. cuda:0 '
        '(default: %(default)s)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        default={},
        help='override config settings')
    return parser.parse_args(argv)


@torch.no_grad()
def collect(model, loader, num_images):
    """Crops (HWC BGR uint8), predicted peaks (input pixels) and sigma_eff
    (heatmap pixels) of the first ``num_images`` images."""
    head = model.head
    crops, peaks, sigmas = [], [], []
    for batch in loader:
        data = model.data_preprocessor(batch, False)
        heatmaps, scales = head.forward_with_scales(
            model.extract_feat(data['inputs']))
        B, K, H, W = heatmaps.shape
        index = heatmaps.flatten(2).argmax(dim=2)  # [B, K]
        sigma = head.effective_sigma(scales).flatten(2).gather(
            2, index[..., None])[..., 0]
        stride = np.array(head.decoder.input_size) / (W, H)
        xy = torch.stack([index % W, index // W], dim=-1).cpu().numpy()
        for b in range(B):
            crops.append(batch['inputs'][b].permute(1, 2, 0).numpy().copy())
            peaks.append((xy[b] + 0.5) * stride)
            sigmas.append(sigma[b].cpu().numpy())
        if len(sigmas) >= num_images:
            break
    n = min(num_images, len(sigmas))
    return crops[:n], np.stack(peaks[:n]), np.stack(sigmas[:n]), stride


def draw(crop, peaks, sigmas, stride):
    image = np.ascontiguousarray(crop)
    for (x, y), sigma in zip(peaks, sigmas):
        radius = max(1, int(round(sigma * stride.mean())))
        cv2.circle(image, (int(x), int(y)), radius, (0, 255, 0), 1)
        cv2.circle(image, (int(x), int(y)), 1, (0, 0, 255), -1)
    return image


def main(argv=None):
    args = parse_args(argv)
    from mmpose.apis import init_model  # also sets the mmpose scope
    model = init_model(
        args.config,
        args.checkpoint,
        device=args.device,
        cfg_options=args.cfg_options or None)
    if not hasattr(model.head, 'forward_with_scales'):
        sys.exit(f'{args.config}: the head is {type(model.head).__name__}, '
                 'not a SAHRHead')
    loader_cfg = model.cfg.val_dataloader
    loader_cfg.update(num_workers=0, persistent_workers=False)
    loader = Runner.build_dataloader(loader_cfg)

    crops, peaks, sigmas, stride = collect(model, loader, args.num_images)
    names = [
        model.dataset_meta['keypoint_id2name'][k]
        for k in range(sigmas.shape[1])
    ]
    sigma0 = float(model.head.decoder.sigma)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = dict(
        sigma=sigma0,
        num_images=len(sigmas),
        keypoints={
            name:
            dict(
                mean=float(sigmas[:, k].mean()), std=float(sigmas[:, k].std()))
            for k, name in enumerate(names)
        })
    (out / 'sigma_eff.json').write_text(json.dumps(summary, indent=2))

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(max(6, 0.3 * len(names)), 4))
    ax.bar(range(len(names)), sigmas.mean(0), yerr=sigmas.std(0))
    ax.axhline(sigma0, color='k', linestyle='--', label='codec sigma')
    ax.set_xticks(range(len(names)))
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set_ylabel('sigma_eff (heatmap px)')
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / 'sigma_eff.png', dpi=120)

    for i in range(min(args.draw, len(crops))):
        cv2.imwrite(
            str(out / f'image_{i}.png'),
            draw(crops[i], peaks[i], sigmas[i], stride))
    print(f'{len(sigmas)} images, codec sigma {sigma0}; sigma_eff per '
          f'keypoint (mean +- std, heatmap px) in {out}/sigma_eff.json')
    for name in names:
        stats = summary['keypoints'][name]
        print(f'  {name:24s} {stats["mean"]:.3f} +- {stats["std"]:.3f}')


if __name__ == '__main__':
    main()
