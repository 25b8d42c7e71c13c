"""Draw the AFL paper's difficulty figure (Fig. 3) from a training work dir.

``AFLCriticHook`` records the difficulty ``sigmoid(-d(t(y')))`` of a fixed
set of tracked training samples every time they are seen
(``<work_dir>/afl_difficulty_rank*.jsonl``). This tool ranks them by their
mean difficulty over the last recorded epoch and draws, for the easiest and
the hardest ones side by side: the input crop, the prediction of the
checkpoint, the ground truth, and the difficulty over epochs (raw curve
faint, Gaussian-smoothed curve on top)::

    python tools/draw_afl_difficulty.py WORK_DIR [--config CFG]
        [--checkpoint CKPT] [--num 3] [--out WORK_DIR/afl_difficulty.png]

By default the config is the one MMEngine dumped into the work dir and the
checkpoint is the last one saved.
"""
import argparse
import json
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.ndimage import gaussian_filter1d  # noqa: E402


def load_records(work_dir: Path) -> dict:
    """``{sample id: [(epoch, iter, difficulty), ...]}`` from all ranks."""
    files = sorted(work_dir.glob('afl_difficulty_rank*.jsonl'))
    if not files:
        raise SystemExit(f'no afl_difficulty_rank*.jsonl in {work_dir}: was '
                         'it trained with AFLCriticHook (num_tracked > 0)?')
    series = defaultdict(list)
    for path in files:
        for line in path.read_text().splitlines():
            r = json.loads(line)
            series[r['id']].append((r['epoch'], r['iter'], r['difficulty']))
    return {k: sorted(v) for k, v in series.items()}


def rank_samples(series: dict, num: int):
    """The ``num`` easiest and hardest ids by mean difficulty in the last
    epoch each was seen."""
    def last_epoch_mean(points):
        last = points[-1][0]
        return np.mean([d for e, _, d in points if e == last])

    order = sorted(series, key=lambda k: last_epoch_mean(series[k]))
    num = min(num, len(order) // 2) or 1
    return order[:num], order[::-1][:num]


def _draw_pose(ax, image, keypoints, visible, links, color):
    ax.imshow(image)
    for a, b in links:
        if visible[a] and visible[b]:
            ax.plot(keypoints[[a, b], 0], keypoints[[a, b], 1], '-',
                    color=color, lw=1.5)
    ax.scatter(keypoints[visible, 0], keypoints[visible, 1], s=8,
               color=color)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('work_dir', type=Path)
    parser.add_argument('--config', help='default: the config dumped in '
                        'WORK_DIR')
    parser.add_argument('--checkpoint', help='default: the last checkpoint')
    parser.add_argument('--num', type=int, default=3,
                        help='easy and hard samples to draw (each)')
    parser.add_argument('--out', type=Path)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args()

    import mmcv
    from mmengine.config import Config
    from mmpose.apis import inference_topdown, init_model
    from mmpose.registry import DATASETS
    from mmpose.utils import register_all_modules
    register_all_modules()

    work_dir = args.work_dir
    series = load_records(work_dir)
    config = args.config or next(iter(sorted(work_dir.glob('*.py'))), None)
    if config is None:
        raise SystemExit(f'no config in {work_dir}; pass --config')
    checkpoint = args.checkpoint or (work_dir /
                                     'last_checkpoint').read_text().strip()
    cfg = Config.fromfile(str(config))
    dataset = DATASETS.build(dict(cfg.train_dataloader.dataset, pipeline=[]))
    infos = {}
    for i in range(len(dataset)):
        info = dataset.get_data_info(i)
        if info['id'] in series:
            infos[info['id']] = info
    links = dataset.metainfo['skeleton_links']
    model = init_model(cfg, checkpoint, device=args.device)

    easy, hard = rank_samples(series, args.num)
    rows = max(len(easy), len(hard))
    fig, axes = plt.subplots(rows, 8, figsize=(20, 2.8 * rows),
                             squeeze=False)
    titles = ['input', 'prediction', 'ground truth', 'difficulty']
    for block, (label, ids) in enumerate((('easy', easy), ('hard', hard))):
        for row, sample_id in enumerate(ids):
            info = infos[sample_id]
            image = mmcv.imread(info['img_path'], channel_order='rgb')
            bbox = info['bbox'][0]
            pred = inference_topdown(model, info['img_path'],
                                     bboxes=bbox[None])[0].pred_instances
            x1, y1, x2, y2 = bbox
            pad = 0.15 * max(x2 - x1, y2 - y1)
            crop = (slice(max(int(y1 - pad), 0), int(y2 + pad)),
                    slice(max(int(x1 - pad), 0), int(x2 + pad)))
            shift = np.array([crop[1].start, crop[0].start])
            ax = axes[row, block * 4:block * 4 + 4]
            ax[0].imshow(image[crop])
            _draw_pose(ax[1], image[crop], pred.keypoints[0] - shift,
                       pred.keypoint_scores[0] > 0.3, links, 'yellow')
            _draw_pose(ax[2], image[crop], info['keypoints'][0] - shift,
                       info['keypoints_visible'][0] > 0, links, 'lime')
            epochs = np.array([e - 1 + 0.5 for e, _, _ in series[sample_id]])
            iters = np.array([i for _, i, _ in series[sample_id]], float)
            x = epochs if len(set(epochs)) > 1 else iters
            y = np.array([d for _, _, d in series[sample_id]])
            ax[3].plot(x, y, '.-', color='tab:blue', alpha=0.3)
            ax[3].plot(x, gaussian_filter1d(y, sigma=2), color='tab:blue')
            ax[3].set_ylim(0, 1)
            ax[3].set_xlabel('epoch' if x is epochs else 'iteration')
            for a, title in zip(ax, titles):
                a.set_title(f'{label}: {title}' if title != 'difficulty' else
                            f'{label}: difficulty (id {sample_id})',
                            fontsize=8)
                if title != 'difficulty':
                    a.axis('off')
    out = args.out or work_dir / 'afl_difficulty.png'
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
