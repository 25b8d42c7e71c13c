"""Speed and peak memory of each method against stock MMPose, side by side.

    python benchmarks/bench_speed.py [--device cpu|cuda] [--batch 64]
        [--step-batch N] [--repeats 7] [--threads 1] [--out FILE]

``make bench`` runs it on the CPU, and on the GPU too when there is one.
Four tables, written as markdown to ``benchmarks/results_<device>.md``
with the date and the machine:

1. **Losses**: forward + backward of each loss on the same
   ``[batch, K, 64, 48]`` heatmaps (HRNet 256x192 outputs), K = 17 and 133,
   ÷ ``KeypointMSELoss``. "SAHR" is the scale-adapted target ``gt^(1+s)`` +
   WAHR + the scale regulariser with learnable scale maps (the scale
   branch's convolutions are in table 3); "AFL (MSE)" includes the critic
   step that ``AFLCriticHook`` runs after every iteration. FoWKAL's parts at
   K = 17 are the body alone.
2. **AFL critic side**: the topology extractor on prediction + target, the
   critic's forward on both, and one critic step (WGAN-GP, Adam), ÷ the
   MSE forward + backward of table 1; the critic's parameters and FLOPs
   per sample (``torch.utils.flop_counter``, 1 MAC = 2 FLOPs).
3. **Training step**: one ``model.train_step`` (preprocessing, forward,
   loss, backward, optimizer step) of HRNet-w32 256x192 with each method's
   config ÷ the stock MMPose config of the same dataset; AFL includes its
   critic step. Randomly initialised weights, random images.
4. **FoWKAL per pixel**: each piece of FoWKAL's per-pixel maths (squared
   error, MMPose's AWing criterion, the WAHR and FWAHR weights) compiled
   alone, forward + backward ÷ ``KeypointMSELoss``: where its time goes.

Protocol: in every repetition each candidate of a table runs once, in an
order that rotates between repetitions, on the same tensors; a ratio is
the median over repetitions of the per-repetition ratio, so load from other
processes hits method and reference alike; times are medians. On a CPU the
default is one intra-op thread (``--threads``): on a shared CPU PyTorch's
threads wait for each other whenever one is descheduled.

Peak memory is what one call allocates beyond what was allocated before it:
``torch.cuda.max_memory_allocated`` on a GPU; on a CPU the peak of the
PyTorch profiler's tensor-allocation timeline (``profile_memory=True``,
read through its private ``_memory_profile()``; memory that oneDNN or
other libraries allocate outside PyTorch's allocator is not seen).
"""
import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import torch

from mmpose_afl.benchmark.machine import machine

REPO = Path(__file__).resolve().parents[1]
HEATMAP_SIZE = (64, 48)
MSE = dict(type='KeypointMSELoss', use_target_weight=True)
COCO_HRNET = ('mmpose::body_2d_keypoint/topdown_heatmap/coco/'
              'td-hm_hrnet-w32_8xb64-210e_coco-256x192.py')
WHOLEBODY_HRNET = ('mmpose::wholebody_2d_keypoint/topdown_heatmap/'
                   'coco-wholebody/'
                   'td-hm_hrnet-w32_dark-8xb64-210e_coco-wholebody-256x192.py')
# table 3: (reference, {method: config})
STEP_GROUPS = [
    (COCO_HRNET, {
        'AFL (MSE)':
        'configs/afl/td-hm_hrnet-w32_afl-8xb64-210e_coco-256x192.py',
        'SAHR + WAHR':
        'configs/sahr/td-hm_hrnet-w32_sahr-wahr-8xb64-210e_coco-256x192.py',
        'HSM': 'configs/hsm/td-hm_hrnet-w32_hsm-8xb64-210e_coco-256x192.py',
    }),
    (WHOLEBODY_HRNET, {
        'FoWKAL':
        'configs/fowkal/'
        'td-hm_hrnet-w32_dark-fowkal-8xb64-210e_coco-wholebody-256x192.py',
    }),
]

Fn = Callable[[], None]
# the project's speed targets on the CPU, ÷ KeypointMSELoss (table 1: time;
# every loss: peak memory) and ÷ the stock step (table 3)
TIME_TARGETS = {
    'WAHRLoss': 2,
    'HSMLoss': 2,
    'SAHR (target + WAHR + scale loss)': 3,
    'heuristic (FoWKALLoss)': 4,
    'KAL (FoWKALLoss)': 4,
    'FoWKAL (FoWKALLoss)': 4
}
MEMORY_TARGET = 2
TOPOLOGY_TARGET = 0.5
STEP_TARGET = 1.03


def against(value: float, target: float) -> str:
    """``value`` with a mark: within ``target`` or not."""
    return f'{value:.2f} {"✓" if value <= target else "✗"} (≤ {target:g})'


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def side_by_side(fns: Dict[str, Fn],
                 device: torch.device,
                 repeats: int,
                 warmup: int = 1) -> Dict[str, List[float]]:
    """Seconds per call of each function, one sample per repetition, the
    functions of a repetition run in rotating order."""
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times = {name: [] for name in names}
    for rep in range(repeats):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            sync(device)
            start = time.perf_counter()
            fns[name]()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def ratio(times: Dict[str, List[float]], name: str, ref: str) -> float:
    return statistics.median(a / b for a, b in zip(times[name], times[ref]))


def peak_mib(fn: Fn, device: torch.device) -> float:
    """Extra memory (MiB) one call of ``fn`` holds at its peak."""
    if device.type == 'cuda':
        sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        fn()
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import Action
    with profile(
            activities=[ProfilerActivity.CPU],
            profile_memory=True,
            record_shapes=True,
            with_stack=True) as prof:
        fn()
    current = peak = 0
    for _, action, (key, _), size in prof._memory_profile().timeline:
        if key.device.type == 'cpu' and action == Action.CREATE:
            current += size
        elif key.device.type == 'cpu' and action == Action.DESTROY:
            current -= size
        peak = max(peak, current)
    return peak / 2**20


def heatmaps(batch: int, k: int, device: torch.device, seed: int = 0):
    """Gaussian targets (sigma 2, peak 1) at random centres, keypoint
    weights with ~20 % zeros (their targets all 0), and predictions =
    targets + noise."""
    gen = torch.Generator().manual_seed(seed)
    h, w = HEATMAP_SIZE
    cy = torch.rand(batch, k, 1, 1, generator=gen) * h
    cx = torch.rand(batch, k, 1, 1, generator=gen) * w
    ys = torch.arange(h).view(1, 1, h, 1)
    xs = torch.arange(w).view(1, 1, 1, w)
    weights = (torch.rand(batch, k, generator=gen) > 0.2).float()
    gaussians = torch.exp(-((ys - cy)**2 + (xs - cx)**2) / 8)
    gt = gaussians * weights[..., None, None]
    pred = gt + 0.1 * torch.randn(gt.shape, generator=gen)
    return pred.to(device), gt.to(device), weights.to(device)


def loss_configs(k: int) -> Dict[str, dict]:
    parts = {} if k == 133 else dict(
        parts=dict(body=list(range(k))), dense_parts=())
    afl = dict(
        type='AFLHeatmapLoss',
        base_loss=MSE,
        critic=dict(type='AFLCritic', num_keypoints=k))
    return {
        'KeypointMSELoss':
        MSE,
        'AdaptiveWingLoss':
        dict(type='AdaptiveWingLoss', use_target_weight=True),
        'WAHRLoss':
        dict(type='WAHRLoss', use_target_weight=True),
        'SAHR (target + WAHR + scale loss)':
        None,  # see sahr_step
        'HSMLoss':
        dict(type='HSMLoss', use_target_weight=True),
        'heuristic (FoWKALLoss)':
        dict(type='FoWKALLoss', kaf='heuristic', weighting=None, **parts),
        'KAL (FoWKALLoss)':
        dict(type='FoWKALLoss', kaf='learned', weighting=None, **parts),
        'FoWKAL (FoWKALLoss)':
        dict(type='FoWKALLoss', **parts),
        'AFL (MSE) + critic step':
        afl,
    }


def critic_trainer(loss: torch.nn.Module, device: torch.device):
    """What ``AFLCriticHook`` sets up before training for an AFL loss (its
    critic on ``device``, an ``AFLCriticTrainer`` with the loss's
    ``critic_optimizer``); ``None`` for any other loss."""
    from mmpose_afl.engine.afl_critic_trainer import AFLCriticTrainer
    from mmpose_afl.models.losses.afl_loss import AdversarialFocalLoss
    if not isinstance(loss, AdversarialFocalLoss):
        return None
    loss.critic.to(device)
    return AFLCriticTrainer(loss)


def loss_step(cfg: dict, pred, gt, weights, device) -> Fn:
    """Forward + backward (to the prediction and the loss's own
    parameters) of a built loss; AFL also runs its critic step."""
    from mmpose.registry import MODELS
    loss = MODELS.build(cfg).to(device).train()
    leaf = pred.detach().clone().requires_grad_(True)
    inputs = [leaf] + [p for p in loss.parameters() if p.requires_grad]
    trainer = critic_trainer(loss, device)

    def step():
        torch.autograd.grad(loss(leaf, gt, weights), inputs)
        if trainer is not None:
            trainer.step()

    return step


def sahr_step(pred, gt, weights, device) -> Fn:
    """What ``SAHRHead.loss`` computes after its forward
    (``sahr_losses``: the WAHR loss against ``gt^(1+s)``, weight from the
    original ``gt``, plus the scale regulariser), differentiated to the
    heatmaps and the scale maps."""
    from mmpose.registry import MODELS
    head = MODELS.build(
        dict(
            type='SAHRHead',
            in_channels=8,
            out_channels=gt.shape[1],
            deconv_out_channels=None)).to(device)
    leaf = pred.detach().clone().requires_grad_(True)
    scales = torch.zeros_like(gt, requires_grad=True)

    def step():
        losses = head.sahr_losses(head.loss_module, leaf, scales, gt, weights)
        torch.autograd.grad(sum(losses.values()), [leaf, scales])

    return step


def bench_losses(batch: int, device, repeats: int) -> List[str]:
    lines = [
        f'### 1. Losses: forward + backward on [{batch}, K, 64, 48] '
        '÷ KeypointMSELoss', '',
        '✓ / ✗: within the project\'s target or not (time: WAHR, HSM ≤ 2, '
        f'SAHR ≤ 3, FoWKAL ≤ 4; peak memory ≤ {MEMORY_TARGET} for every '
        'loss).', '',
        '| loss | K | time (ms) | time ÷ MSE | peak memory (MiB) | '
        'memory ÷ MSE |', '|---|---:|---:|---:|---:|---:|'
    ]
    for k in (17, 133):
        pred, gt, weights = heatmaps(batch, k, device)
        fns = {
            name: (sahr_step(pred, gt, weights, device) if cfg is None else
                   loss_step(cfg, pred, gt, weights, device))
            for name, cfg in loss_configs(k).items()
        }
        times = side_by_side(fns, device, repeats)
        peaks = {name: peak_mib(fn, device) for name, fn in fns.items()}
        for name in fns:
            time_ratio = ratio(times, name, 'KeypointMSELoss')
            memory_ratio = peaks[name] / peaks['KeypointMSELoss']
            reference = name in ('KeypointMSELoss', 'AdaptiveWingLoss')
            lines.append(
                f'| {name} | {k} | {statistics.median(times[name]) * 1e3:.1f}'
                ' | ' +
                (f'{time_ratio:.2f}' if name not in
                 TIME_TARGETS else against(time_ratio, TIME_TARGETS[name])) +
                f' | {peaks[name]:.0f} | ' +
                (f'{memory_ratio:.2f}' if reference else against(
                    memory_ratio, MEMORY_TARGET)) + ' |')
    return lines


def bench_breakdown(batch: int, device, repeats: int) -> List[str]:
    """Table 4: where FoWKAL's time goes, per pixel. Each piece of its
    per-pixel maths compiled alone (as the loss compiles it all together),
    forward + backward of its mean, ÷ KeypointMSELoss."""
    from mmpose.models.losses import AdaptiveWingLoss
    from mmpose.registry import MODELS

    from mmpose_afl.models.compiled import one_pass
    from mmpose_afl.models.losses.wahr_loss import wahr_weight
    awing = AdaptiveWingLoss()
    fowkal = MODELS.build(dict(type='FoWKALLoss'))
    pieces = {
        'squared error (P^ - P)^2':
        lambda p, t: (p - t).pow(2),
        'AWing, MMPose criterion via vmap (3 pow, 2 log, 1 where)':
        lambda p, t: torch.func.vmap(awing.criterion)
        (p.reshape(-1, 1, 1, 1, 1), t.reshape(-1, 1, 1, 1, 1)),
        "AWing, FoWKAL's awing_map (1 exp, 1 pow, 2 log1p, 1 where)":
        fowkal.awing_map,
        'WAHR weight (1 pow)':
        lambda p, t: wahr_weight(p, t, 0.01, fowkal.support_floor),
        'FWAHR weight (WAHR weight + threshold, tau P)':
        lambda p, t: fowkal.pixel_weights(p, t),
    }
    lines = [
        f'### 4. FoWKAL per pixel: each piece alone on [{batch}, 133, 64, '
        '48], compiled, forward + backward ÷ KeypointMSELoss', '',
        '| piece | time (ms) | ÷ MSE |', '|---|---:|---:|'
    ]
    pred, gt, weights = heatmaps(batch, 133, device)
    fns = {'KeypointMSELoss': loss_step(MSE, pred, gt, weights, device)}
    for name, piece in pieces.items():
        fn = one_pass(lambda p, t, piece=piece: piece(p, t).mean())
        leaf = pred.detach().clone().requires_grad_(True)
        fns[name] = (
            lambda fn=fn, leaf=leaf: torch.autograd.grad(fn(leaf, gt), [leaf]))
    times = side_by_side(fns, device, repeats)
    for name in pieces:
        lines.append(f'| {name} | {statistics.median(times[name]) * 1e3:.1f}'
                     f' | {ratio(times, name, "KeypointMSELoss"):.2f} |')
    return lines


def critic_flops(critic, k: int, device) -> int:
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        critic(torch.zeros(1, 2, k, k, device=device))
    return counter.get_total_flops()


def bench_afl(batch: int, device, repeats: int) -> List[str]:
    from mmpose.registry import MODELS

    from mmpose_afl.models.afl_critic import heatmap_topology
    lines = [
        f'### 2. AFL critic side on [{batch}, K, 64, 48] heatmaps '
        '÷ MSE forward + backward', '',
        '| part | K | time (ms) | ÷ MSE | peak memory (MiB) |',
        '|---|---:|---:|---:|---:|'
    ]
    sizes = []
    for k in (17, 133):
        pred, gt, weights = heatmaps(batch, k, device)
        loss = MODELS.build(
            dict(
                type='AFLHeatmapLoss',
                base_loss=MSE,
                critic=dict(type='AFLCritic', num_keypoints=k))).to(device)
        trainer = critic_trainer(loss, device)
        fake = heatmap_topology(pred, 0.1, weights)
        real = heatmap_topology(gt, 0.1, weights)

        def score_both():
            with torch.no_grad():
                loss.critic(fake), loss.critic(real)

        def forward_and_critic_step():
            with torch.no_grad():
                loss(pred, gt, weights)  # keeps the batch for the step
            trainer.step()

        fns = {
            'MSE forward + backward':
            loss_step(MSE, pred, gt, weights, device),
            'topology of prediction + target':
            lambda: (heatmap_topology(pred, 0.1, weights),
                     heatmap_topology(gt, 0.1, weights)),
            'critic scores of both (no grad)':
            score_both,
            'AFL forward (no grad) + critic step':
            forward_and_critic_step,
        }
        times = side_by_side(fns, device, repeats)
        for name, fn in fns.items():
            value = ratio(times, name, 'MSE forward + backward')
            lines.append(
                f'| {name} | {k} | {statistics.median(times[name]) * 1e3:.2f}'
                ' | ' +
                (against(value, TOPOLOGY_TARGET) if name.startswith('topology')
                 and k == 133 else f'{value:.3f}') +
                f' | {peak_mib(fn, device):.1f} |')
        params = sum(p.numel() for p in loss.critic.parameters())
        sizes.append(f'K = {k}: {params:,} parameters, '
                     f'{critic_flops(loss.critic, k, device) / 1e9:.5f} '
                     'GFLOPs per sample')
    return lines + [
        '', 'Critic (`AFLCritic`, default widths): ' + '; '.join(sizes) + '.'
    ]


def train_step(config: str, batch: int, device) -> Tuple[Fn, int]:
    """One ``model.train_step`` (+ the AFL critic step) on a fixed random
    batch, and the number of keypoints."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper
    from mmpose.registry import MODELS

    from mmpose_afl.zoo import mmpose_config_root
    path = (
        mmpose_config_root() /
        config.split('::', 1)[1] if config.startswith('mmpose::') else REPO /
        config)
    cfg = Config.fromfile(str(path))
    cfg.model.backbone.init_cfg = None  # no download: random weights
    model = MODELS.build(cfg.model).to(device).train()
    optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    trainers = [critic_trainer(m, device) for m in model.modules()]
    trainers = [t for t in trainers if t is not None]
    if trainers:  # as AFLCriticHook does before training
        model.head.loss_module.bind_head(model.head)
    k = cfg.model.head.out_channels
    _, gt, weights = heatmaps(batch, k, device)
    width, height = cfg.codec.input_size
    gen = torch.Generator().manual_seed(0)
    data = dict(
        inputs=[
            torch.randint(
                0, 256, (3, height, width), generator=gen, dtype=torch.uint8)
            for _ in range(batch)
        ],
        data_samples=data_samples(gt, weights))

    def step():
        model.train_step(data, optim_wrapper)
        for trainer in trainers:
            trainer.step()

    return step, k


def data_samples(gt, weights) -> list:
    from mmengine.structures import InstanceData, PixelData
    from mmpose.structures import PoseDataSample
    samples = []
    for heatmap, keypoint_weights in zip(gt, weights):
        sample = PoseDataSample()
        sample.gt_fields = PixelData(heatmaps=heatmap)
        sample.gt_instance_labels = InstanceData(
            keypoint_weights=keypoint_weights[None])
        samples.append(sample)
    return samples


def bench_steps(batch: int, device, repeats: int) -> List[str]:
    lines = [
        f'### 3. Training step: HRNet-w32 256x192, batch {batch}, '
        '÷ the stock MMPose config of the same dataset', '',
        '| method | config | K | time (s) | ÷ stock | peak memory (MiB) |',
        '|---|---|---:|---:|---:|---:|'
    ]
    for reference, methods in STEP_GROUPS:
        configs = {'stock (MSE)': reference, **methods}
        fns, ks = {}, {}
        for name, config in configs.items():
            fns[name], ks[name] = train_step(config, batch, device)
        times = side_by_side(fns, device, repeats)
        for name, config in configs.items():
            value = ratio(times, name, 'stock (MSE)')
            lines.append(
                f'| {name} | `{Path(config.split("::")[-1]).name}` | '
                f'{ks[name]} | {statistics.median(times[name]):.3f} | ' +
                (f'{value:.2f}' if name ==
                 'stock (MSE)' else against(value, STEP_TARGET)) +
                f' | {peak_mib(fns[name], device):.0f} |')
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument(
        '--device',
        default='cpu',
        choices=['cpu', 'cuda'],
        help='where to measure (default: %(default)s)')
    parser.add_argument(
        '--batch',
        type=int,
        default=64,
        help='batch of tables 1 and 2 (default: %(default)s)')
    parser.add_argument(
        '--step-batch',
        type=int,
        nargs='+',
        help='batch(es) of table 3 (default: 32 on a GPU, 2 and 16 on a '
        'CPU)')
    parser.add_argument(
        '--repeats',
        type=int,
        default=7,
        help='timed repetitions, in rotating order; the '
        'median ratio is reported (default: %(default)s)')
    parser.add_argument(
        '--threads',
        type=int,
        default=1,
        help='CPU intra-op threads (default: %(default)s)')
    parser.add_argument(
        '--tables',
        nargs='+',
        default=['1', '2', '3', '4'],
        choices=['1', '2', '3', '4'],
        help='which tables to measure: 1 losses, 2 AFL '
        'critic side, 3 training steps, 4 FoWKAL\'s cost per '
        'pixel (default: all)')
    parser.add_argument(
        '--out',
        help='markdown file to write (default: '
        'benchmarks/results_<device>.md)')
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        parser.error('--device cuda, but torch sees no GPU')
    if device.type == 'cpu':
        torch.set_num_threads(args.threads)
    step_batches = args.step_batch or ([32]
                                       if device.type == 'cuda' else [2, 16])
    out = Path(args.out or REPO / 'benchmarks' / f'results_{device.type}.md')

    from mmengine.registry import init_default_scope

    import mmpose_afl  # noqa: F401  (registers the modules)
    init_default_scope('mmpose')
    torch.manual_seed(0)
    tables = {
        '1':
        lambda: bench_losses(args.batch, device, args.repeats),
        '2':
        lambda: bench_afl(args.batch, device, args.repeats),
        '3':
        lambda: sum((bench_steps(batch, device, args.repeats) + ['']
                     for batch in step_batches), [])[:-1],
        '4':
        lambda: bench_breakdown(args.batch, device, args.repeats),
    }
    lines = [
        f'# Speed and memory on {device.type.upper()}', '',
        'Written by `make bench` (`python benchmarks/bench_speed.py '
        f'{" ".join(sys.argv[1:] if argv is None else argv)}`); the '
        'protocol is in the script\'s docstring. Ratios are medians of '
        f'per-repetition ratios over {args.repeats} repetitions measured '
        'side by side; times are medians.', ''
    ] + machine() + [
        f'- {device.type.upper()} run: torch intra-op threads '
        f'{torch.get_num_threads()}' +
        (f', GPU {torch.cuda.get_device_name(device)}'
         if device.type == 'cuda' else ''), ''
    ]
    for name in args.tables:
        print(f'bench_speed: table {name} ...', flush=True)
        lines += tables[name]() + ['']
    out.write_text('\n'.join(lines))
    print('\n'.join(lines))
    print(f'bench_speed: wrote {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
