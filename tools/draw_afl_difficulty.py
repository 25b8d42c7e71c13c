"""Draw the AFL paper's difficulty figure (Fig. 3) from a training work dir.

AFLCriticHook records the difficulty of a fixed set of tracked training
samples every time they are seen (WORK_DIR/afl_difficulty_rank*.jsonl).
This tool ranks them by their mean difficulty over the last recorded epoch
and draws, for the --num easiest and hardest ones side by side: the input
crop, the prediction of the checkpoint, the ground truth, and the difficulty
over epochs (raw curve faint, Gaussian-smoothed curve on top). A last row
draws the smoothed curves of all tracked samples. Where the training
annotations carry the synthetic generator's `difficulty` flags
(mmpose_afl/datasets/synthetic.py), every curve is coloured by them (clean,
or the sample's first flag) and the flags are named in the titles, so the
figure can be read as the paper does: hard samples should stay high while
easy ones fall.

    python tools/draw_afl_difficulty.py WORK_DIR [--config CFG]
        [--checkpoint CKPT] [--num 3] [--out WORK_DIR/afl_difficulty.png]
        [--device cpu]
"""
import argparse
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy.ndimage import gaussian_filter1d  # noqa: E402


def difficulty_series(records: list) -> dict:
    """``{sample id: [(epoch, iter, difficulty), ...]}``, in time order,
    from the hook's records (``afl_difficulty_report.load_records``)."""
    series = defaultdict(list)
    for r in records:
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
            ax.plot(
                keypoints[[a, b], 0],
                keypoints[[a, b], 1],
                '-',
                color=color,
                lw=1.5)
    ax.scatter(keypoints[visible, 0], keypoints[visible, 1], s=8, color=color)


# curve colours: clean samples, and flagged ones by their first flag
FLAG_COLORS = dict(
    clean='tab:green',
    occluded='tab:red',
    truncated='tab:orange',
    unusual_pose='tab:purple',
    small='tab:brown')


def flag_group(flags) -> str:
    """``'clean'`` or the first of a sample's difficulty flags."""
    return flags[0] if flags else 'clean'


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        'work_dir',
        type=Path,
        help='training work dir with afl_difficulty_rank*.jsonl')
    parser.add_argument(
        '--config',
        help='training config (default: the config MMEngine dumped in '
        'WORK_DIR)')
    parser.add_argument(
        '--checkpoint',
        help='checkpoint whose predictions are drawn (default: the one '
        'WORK_DIR/last_checkpoint names)')
    parser.add_argument(
        '--num',
        type=int,
        default=3,
        help='how many easiest and how many hardest samples to draw '
        '(default: 3 each)')
    parser.add_argument(
        '--out',
        type=Path,
        help='output image (default: WORK_DIR/afl_difficulty.png)')
    parser.add_argument(
        '--device',
        default='cpu',
        help="device to run the checkpoint on, e.g. 'cuda:0' "
        "(default: 'cpu')")
    return parser


def main() -> None:
    args = build_parser().parse_args()

    import mmcv
    # next to this script
    from afl_difficulty_report import load_flags, load_records
    from mmengine.config import Config
    from mmpose.apis import inference_topdown, init_model
    from mmpose.registry import DATASETS
    from mmpose.utils import register_all_modules
    register_all_modules()

    work_dir = args.work_dir
    series = difficulty_series(load_records(work_dir))
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
    flags = load_flags(cfg)
    model = init_model(cfg, checkpoint, device=args.device)

    easy, hard = rank_samples(series, args.num)
    rows = max(len(easy), len(hard))
    fig, axes = plt.subplots(
        rows + 1, 8, figsize=(20, 2.8 * (rows + 1)), squeeze=False)

    def curve(sample_id):
        points = series[sample_id]
        epochs = np.array([e - 1 + 0.5 for e, _, _ in points])
        iters = np.array([i for _, i, _ in points], float)
        x = epochs if len(set(epochs)) > 1 else iters
        y = np.array([d for _, _, d in points])
        group = flag_group(flags.get(sample_id, [])) if flags else None
        return x, y, x is epochs, group

    titles = ['input', 'prediction', 'ground truth', 'difficulty']
    for block, (label, ids) in enumerate((('easy', easy), ('hard', hard))):
        for row, sample_id in enumerate(ids):
            info = infos[sample_id]
            image = mmcv.imread(info['img_path'], channel_order='rgb')
            bbox = info['bbox'][0]
            pred = inference_topdown(
                model, info['img_path'], bboxes=bbox[None])[0].pred_instances
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
            x, y, by_epoch, group = curve(sample_id)
            color = FLAG_COLORS.get(group, 'tab:blue')
            ax[3].plot(x, y, '.-', color=color, alpha=0.3)
            ax[3].plot(x, gaussian_filter1d(y, sigma=2), color=color)
            ax[3].set_ylim(0, 1)
            ax[3].set_xlabel('epoch' if by_epoch else 'iteration')
            named = '' if group is None else ', ' + (
                '+'.join(flags.get(sample_id, [])) or 'clean')
            for a, title in zip(ax, titles):
                a.set_title(
                    f'{label}: {title}' if title != 'difficulty' else
                    f'{label}: difficulty (id {sample_id}{named})',
                    fontsize=8)
                if title != 'difficulty':
                    a.axis('off')
    # all tracked samples, coloured by their flags where there are any
    gs = axes[rows, 0].get_gridspec()
    for a in axes[rows]:
        a.remove()
    overview = fig.add_subplot(gs[rows, :])
    drawn = set()
    for sample_id in series:
        x, y, by_epoch, group = curve(sample_id)
        overview.plot(
            x,
            gaussian_filter1d(y, sigma=2),
            '.-',
            markersize=2,
            color=FLAG_COLORS.get(group, 'tab:blue'),
            alpha=0.6,
            label=None if group in drawn else group)
        drawn.add(group)
    overview.set_ylim(0, 1)
    overview.set_xlabel('epoch' if by_epoch else 'iteration')
    overview.set_title(
        f'difficulty of all {len(series)} tracked samples' +
        (' by difficulty flag' if flags else ''),
        fontsize=8)
    if flags:
        overview.legend(fontsize=7, loc='upper right')
    out = args.out or work_dir / 'afl_difficulty.png'
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    print(f'wrote {out}')


if __name__ == '__main__':
    main()
