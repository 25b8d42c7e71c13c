"""What a short fine-tune from a converged MSE model does with each method,
on the synthetic COCO data (the measurements of docs/finetune.md).

    python benchmarks/finetune_start.py [--work-dir DIR] [--num-train N]
        [--base-epochs N] [--ft-epochs N] [--seed S]

1. Trains the CPU-sized baseline (ResNet-18, MSE) on a generated set for
   ``--base-epochs``: the stand-in for a zoo checkpoint.
2. For each method (MSE as the control, AFL, SAHR + WAHR, HSM with and
   without 10x lr on the head's final layer, and HSM from the checkpoint
   re-calibrated by ``tools/recalibrate_sigmoid_head.py``),
   evaluates the baseline checkpoint loaded into the method's model
   (``mim test``: what the method predicts at iteration 0), then
   fine-tunes it for ``--ft-epochs`` with the recipe of the ``*-ft-*``
   configs scaled to this schedule (lr / 10, a linear warm-up, a x0.1 step
   before the last epoch, fresh parts at 10x lr) and validates after every
   epoch.
3. Writes ``results.md`` (COCO AP per epoch, epoch 0 = the loaded
   checkpoint, and what AFL and HSM see at iteration 0, see
   :func:`start_stats`) in the work dir and prints it. Runs already in
   the work dir are read, not repeated.

Every run is a real ``mim train`` / ``mim test`` in one process with one
thread (``OMP_NUM_THREADS=1``), losses eager (``TORCH_COMPILE_DISABLE=1``
unless that variable is set).
"""
import argparse
import json
import os
import sys
from pathlib import Path
from typing import List

from mmpose_afl.utils.mim_run import (CommandError, data_options,
                                      last_checkpoint, loader_options,
                                      run_command, run_mim)

REPO = Path(__file__).resolve().parents[1]
# one thread, losses eager unless TORCH_COMPILE_DISABLE is set
ENV = dict(
    PYTHONPATH=str(REPO),
    OMP_NUM_THREADS='1',
    TORCH_COMPILE_DISABLE=os.environ.get('TORCH_COMPILE_DISABLE', '1'))

BASELINE = 'configs/baseline/td-hm_res18_1xb16-20e_synthetic-coco-128x96.py'
# name -> (method config, extra config text of its fine-tune)
METHODS = {
    'MSE (control)': (BASELINE, ''),
    'AFL (MSE)':
    ('configs/afl/td-hm_res18_afl-1xb16-20e_synthetic-coco-128x96.py', ''),
    'SAHR + WAHR': ('configs/sahr/'
                    'td-hm_res18_sahr-wahr-1xb16-20e_synthetic-coco-128x96.py',
                    "optim_wrapper = dict(paramwise_cfg=dict(custom_keys={"
                    "'head.scale_layers': dict(lr_mult=10.)}))\n"),
    'HSM, final layer 10x lr':
    ('configs/hsm/td-hm_res18_hsm-1xb16-20e_synthetic-coco-128x96.py',
     "optim_wrapper = dict(paramwise_cfg=dict(custom_keys={"
     "'head.final_layer': dict(lr_mult=10.)}))\n"),
    'HSM, one lr':
    ('configs/hsm/td-hm_res18_hsm-1xb16-20e_synthetic-coco-128x96.py', ''),
    'HSM, one lr, final layer re-calibrated':
    ('configs/hsm/td-hm_res18_hsm-1xb16-20e_synthetic-coco-128x96.py', ''),
}
# methods that start from the baseline checkpoint with the head's final
# conv re-calibrated (see recalibrated)
RECALIBRATED = ('HSM, one lr, final layer re-calibrated', )


def recalibrated(ckpt: Path, out: Path) -> Path:
    """``ckpt`` re-calibrated by ``tools/recalibrate_sigmoid_head.py``
    (prior 0.1), written to ``out``."""
    run([
        sys.executable, 'tools/recalibrate_sigmoid_head.py',
        str(ckpt),
        str(out)
    ], out.with_suffix('.log'))
    return out


def run(cmd: List[str], log: Path) -> None:
    """``cmd`` in the repo, its output to ``log``; exits on failure."""
    try:
        run_command(cmd, log, cwd=REPO, env=ENV)
    except CommandError as error:
        sys.exit(str(error))


def mim(action: str, config, work_dir: Path, log: Path, **kwargs) -> None:
    """:func:`run_mim` in the repo, its output to ``log``; exits on
    failure."""
    try:
        run_mim(action, config, work_dir, log=log, cwd=REPO, env=ENV, **kwargs)
    except CommandError as error:
        sys.exit(str(error))


def val_aps(work_dir: Path) -> List[float]:
    """COCO AP of every validation of a training work dir, in order."""
    logs = sorted(work_dir.glob('*/vis_data/scalars.json'))
    aps = []
    for line in logs[-1].read_text().splitlines():
        record = json.loads(line)
        if 'coco/AP' in record:
            aps.append(record['coco/AP'])
    return aps


def test_ap(work_dir: Path) -> float:
    runs = sorted(p for p in work_dir.iterdir() if p.is_dir())
    return json.loads(
        (runs[-1] / f'{runs[-1].name}.json').read_text())['coco/AP']


def ft_config(method_config: str, extra: str, epochs: int, ckpt: Path) -> str:
    """The fine-tune recipe of the ``*-ft-*`` configs on this schedule:
    the synthetic config's lr / 10, 20 iterations of linear warm-up from
    1e-3, x0.1 before the last epoch."""
    return (f"_base_ = ['{REPO / method_config}']\n"
            f"load_from = '{ckpt}'\n"
            f"train_cfg = dict(max_epochs={epochs}, val_interval=1)\n"
            "optim_wrapper = dict(optimizer=dict(lr=1e-4))\n"
            "param_scheduler = [\n"
            "    dict(type='LinearLR', begin=0, end=20, start_factor=1e-3,\n"
            "         by_epoch=False),\n"
            f"    dict(type='MultiStepLR', begin=0, end={epochs},\n"
            f"         milestones=[{epochs - 1}], gamma=0.1, by_epoch=True)]\n"
            "default_hooks = dict(checkpoint=dict(interval=-1))\n" + extra)


def start_stats(ckpt: Path, data: List[str], batches: int = 4) -> str:
    """What the methods see at iteration 0 with ``ckpt`` loaded, on the
    first ``batches`` training batches (16 persons each, the training
    pipeline): AFL's weights from its fresh critic, HSM's sigmoid on the
    background and at the target peaks, and the share of labelled
    keypoints whose stock heatmap maximum is <= 0 (where MMPose's decoder
    reports no location and the sigmoid head the argmax)."""
    import torch
    from mmengine.config import Config
    from mmengine.runner import Runner, load_checkpoint
    from mmpose.registry import MODELS
    from mmpose.utils import register_all_modules

    import mmpose_afl  # noqa: F401
    from mmpose_afl.models.losses.reweighted_loss import effective_sample_size
    register_all_modules()
    lines = []
    for name in ('AFL (MSE)', 'HSM, one lr'):
        cfg = Config.fromfile(str(REPO / METHODS[name][0]))
        cfg.merge_from_dict(dict(item.split('=', 1) for item in data[:5]))
        cfg.train_dataloader.update(num_workers=0, persistent_workers=False)
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        model.init_weights()
        load_checkpoint(model, str(ckpt), map_location='cpu')
        model.train()
        loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
        weights, background, peaks, nonpositive = [], [], [], []
        for i, batch in zip(range(batches), loader):
            batch = model.data_preprocessor(batch, True)
            samples = batch['data_samples']
            with torch.no_grad():
                if name.startswith('AFL'):
                    loss = model.head.loss_module
                    model(**batch, mode='loss')
                    weights.append(loss.last_samples['weight'])
                    # the critic stays fresh: drop the batch it would be
                    # trained on, as no AFLCriticHook runs here
                    loss.pop_critic_batch()
                    continue
                logits = model.head.forward(
                    model.extract_feat(batch['inputs']))
            gt = torch.stack([d.gt_fields.heatmaps for d in samples])
            kw = torch.cat(
                [d.gt_instance_labels.keypoint_weights for d in samples])
            labelled = kw > 0
            prob = logits.sigmoid()
            background.append(prob[(gt == 0) & labelled[..., None, None]])
            peaks.append(
                prob.flatten(2)[labelled].gather(
                    1,
                    gt.flatten(2)[labelled].argmax(1, keepdim=True)))
            nonpositive.append(logits.flatten(2).amax(2)[labelled] <= 0)
        if weights:
            w = torch.cat(weights)
            ess = sum(effective_sample_size(x).item()
                      for x in weights) / len(weights)
            lines.append(
                f'- AFL (fresh critic): weights {w.min():.3f}-{w.max():.3f}'
                f' (sd {w.std():.3f}), effective sample size {ess:.3f} of '
                f'the batch, over {len(w)} persons')
        else:
            bg, pk = torch.cat(background), torch.cat(peaks)
            npos = torch.cat(nonpositive).float().mean()
            lines.append(
                f'- HSM (stock head read as logits): sigmoid on the '
                f'background {bg.mean():.3f} (min {bg.min():.3f}), at the '
                f'target peaks {pk.mean():.3f}; stock maxima <= 0: '
                f'{npos:.1%} of the labelled keypoints')
    return '\n'.join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument(
        '--work-dir',
        default='work_dirs/finetune_start',
        help='where everything is written (default: '
        '%(default)s)')
    parser.add_argument(
        '--num-train',
        type=int,
        default=200,
        help='synthetic training images (default: '
        '%(default)s)')
    parser.add_argument(
        '--num-val',
        type=int,
        default=50,
        help='synthetic validation images (default: '
        '%(default)s)')
    parser.add_argument(
        '--base-epochs',
        type=int,
        default=20,
        help='epochs of the baseline that stands in for the '
        'zoo checkpoint (default: %(default)s)')
    parser.add_argument(
        '--ft-epochs',
        type=int,
        default=5,
        help='epochs of each fine-tune (default: '
        '%(default)s)')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the data and of training (default: '
        '%(default)s)')
    args = parser.parse_args(argv)
    work = (REPO / args.work_dir).resolve()
    work.mkdir(parents=True, exist_ok=True)
    root = work / 'data'
    if not (root / 'annotations').is_dir():
        run([
            sys.executable, 'tools/make_synthetic_data.py', '--kind', 'coco',
            '--out',
            str(root), '--num-train',
            str(args.num_train), '--num-val',
            str(args.num_val), '--seed',
            str(args.seed)
        ], work / 'data.log')
    data = data_options(root) + loader_options()
    base_dir = work / 'baseline'
    if not (base_dir / 'last_checkpoint').is_file():
        e = args.base_epochs
        mim('train',
            BASELINE,
            base_dir,
            work / 'baseline.log',
            cfg_options=data + [
                f'train_cfg.max_epochs={e}', f'train_cfg.val_interval={e}',
                f'param_scheduler.1.end={e}',
                f'param_scheduler.1.milestones=[{int(e * .75)},'
                f'{int(e * .9)}]', f'default_hooks.checkpoint.interval={e}',
                f'randomness.seed={args.seed}'
            ])
    ckpt = last_checkpoint(base_dir)
    rows = []
    for name, (config, extra) in METHODS.items():
        slug = ''.join(c if c.isalnum() else '_' for c in name).strip('_')
        cfg = work / f'{slug}_ft.py'
        start_ckpt = recalibrated(ckpt, work / 'recalibrated.pth') \
            if name in RECALIBRATED else ckpt
        cfg.write_text(ft_config(config, extra, args.ft_epochs, start_ckpt))
        if (work / slug / 'ft').is_dir():  # measured by an earlier call
            rows.append((name, [test_ap(work / slug / 'start')] +
                         val_aps(work / slug / 'ft')))
            continue
        mim('test',
            cfg,
            work / slug / 'start',
            work / f'{slug}_test.log',
            checkpoint=start_ckpt,
            cfg_options=data)
        start = test_ap(work / slug / 'start')
        mim('train',
            cfg,
            work / slug / 'ft',
            work / f'{slug}_train.log',
            cfg_options=data + [f'randomness.seed={args.seed}'])
        rows.append((name, [start] + val_aps(work / slug / 'ft')))
        print(name, rows[-1][1], flush=True)
    header = ' | '.join(f'epoch {i}' for i in range(args.ft_epochs + 1))
    lines = [
        f'| method | {header} |', '|---|' + '---:|' * (args.ft_epochs + 1)
    ]
    lines += [
        f'| {n} | ' + ' | '.join(f'{a:.3f}' for a in aps) + ' |'
        for n, aps in rows
    ]
    table = '\n'.join(lines) + '\n\nAt iteration 0:\n\n' + start_stats(
        ckpt, data)
    (work / 'results.md').write_text(
        f'COCO AP on the synthetic val set ({args.num_val} images); '
        f'baseline: {args.base_epochs} epochs on {args.num_train} images, '
        f'seed {args.seed}. Epoch 0: the baseline checkpoint in the '
        "method's model.\n\n" + table + '\n')
    print(table)


if __name__ == '__main__':
    main()
