"""Short in-process training runs of the project's synthetic configs under
MMEngine's own ``AmpOptimWrapper(dtype='bfloat16')`` on the CPU, one per
method and test session, shared by the AMP, host-synchronisation and
deployment tests.

Only the wrapper's GPU assert is bypassed (``allow_cpu_amp`` of
mmpose_afl.utils.cpu_amp, which ``tools/gpu_check.py --dry-run`` uses):
the CPU autocast, the (self-disabling) ``GradScaler``, the wrapper's state
dict and MMEngine's train loop are the stock ones.
"""
import collections
import sys
from pathlib import Path
from typing import Dict, NamedTuple, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.runner import Runner
from torch.overrides import TorchFunctionMode

from mmpose_afl.utils.cpu_amp import allow_cpu_amp, amp_config

REPO = Path(__file__).resolve().parents[1]

# method -> (synthetic config, data fixture); every method of the project:
# AFL on the three head families and with the conditional critic,
# FoWKAL / KAL, SAHR + WAHR top-down and bottom-up, HSM
METHODS = {
    'afl': ('configs/afl/td-hm_res18_afl-1xb16-20e_synthetic-coco-128x96.py',
            'synthetic_coco'),
    'afl-simcc':
    ('configs/afl/rtmpose-t_afl-1xb16-20e_synthetic-coco-128x96.py',
     'synthetic_coco'),
    'afl-rle':
    ('configs/afl/td-reg_res18_rle-afl-1xb16-20e_synthetic-coco-128x96.py',
     'synthetic_coco'),
    'afl-cond': ('configs/afl_cond/'
                 'td-hm_res18_afl-cond-1xb16-20e_synthetic-coco-128x96.py',
                 'synthetic_coco'),
    'fowkal': ('configs/fowkal/td-hm_res18_fowkal-1xb16-20e_'
               'synthetic-coco-wholebody-128x96.py', 'synthetic_wholebody'),
    'sahr-wahr':
    ('configs/sahr/td-hm_res18_sahr-wahr-1xb16-20e_synthetic-coco-128x96.py',
     'synthetic_coco'),
    'sahr-wahr-bottom-up':
    ('configs/sahr/'
     'ae_res18_sahr-wahr-1xb8-40e_synthetic-coco-multi-scale-256x256.py',
     'multi_scale_coco'),
    'hsm': ('configs/hsm/td-hm_res18_hsm-1xb16-20e_synthetic-coco-128x96.py',
            'synthetic_coco'),
}

# the Tensor methods that copy a value to the host: on a GPU each waits for
# the queued kernels (``.to('cpu')`` is not counted: on the CPU it cannot be
# told from the loader's host-to-device copies)
HOST_SYNCS = ('item', 'tolist', 'cpu', 'numpy', '__bool__', '__float__',
              '__int__', '__index__', '__format__', '__array__')
TORCH_DIR = str(Path(torch.__file__).parent)


class AmpRun(NamedTuple):
    runner: Runner
    work_dir: Path
    dtypes: set  # of the backbone's outputs
    syncs: collections.Counter  # host syncs of iteration 2, by call site


_RUNS: Dict[str, AmpRun] = {}


def _call_site() -> str:
    """``path:function`` of the innermost caller outside torch and this
    file (the path from the package root, ``mmengine/...``, or the repo),
    with ``via torch/...`` when torch itself made the call."""
    frame, via = sys._getframe(2), ''
    while frame is not None:
        path = frame.f_code.co_filename
        if not (path.startswith(TORCH_DIR) or path == __file__):
            break
        if path.startswith(TORCH_DIR) and not via and 'overrides' not in path:
            via = ' via torch/' + path[len(TORCH_DIR) + 1:]
        frame = frame.f_back
    if frame is None:
        return 'torch'
    path = path.split('site-packages/')[-1]
    if path.startswith(str(REPO)):
        path = str(Path(path).relative_to(REPO))
    return f'{path}:{frame.f_code.co_name}{via}'


class HostSyncCounter(TorchFunctionMode):
    """Counts the calls of :data:`HOST_SYNCS` while active, by call site
    and method."""

    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, '__name__', '')
        if name in HOST_SYNCS:
            self.counts[f'{_call_site()} ({name})'] += 1
        return func(*args, **kwargs)


class _CountIteration(Hook):
    """Starts (``start=True``, first hook of the iteration) or stops (last
    hook) ``counter`` around training iteration ``index`` (0-based)."""

    def __init__(self, counter: HostSyncCounter, index: int, start: bool):
        self.counter, self.index, self.start = counter, index, start

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if self.start and runner.iter == self.index:
            self.counter.__enter__()

    def after_train_iter(self,
                         runner,
                         batch_idx,
                         data_batch=None,
                         outputs=None):
        if not self.start and runner.iter == self.index:
            self.counter.__exit__(None, None, None)


def _backbone_dtypes(runner: Runner) -> set:
    """The dtypes of the backbone's outputs in every forward of ``runner``
    from now on (bf16 while autocast is on)."""
    seen = set()

    def record(module, inputs, outputs):
        outputs = outputs if isinstance(outputs, (tuple, list)) else [outputs]
        seen.update(out.dtype for out in outputs)

    runner.model.backbone.register_forward_hook(record)
    return seen


def amp_run(name: str, request, tmp_path_factory) -> AmpRun:
    """The 2-iteration bf16 run of method ``name`` (:data:`METHODS`),
    trained the first time a test of the session asks for it, with the
    host synchronisations of its second iteration counted (from the first
    ``before_train_iter`` hook to the last ``after_train_iter`` one). Treat
    the work dir as read-only."""
    if name not in _RUNS:
        config, fixture = METHODS[name]
        data_root = request.getfixturevalue(fixture)
        work_dir = tmp_path_factory.mktemp(f'amp_{name}')
        with allow_cpu_amp():
            # bottom-up: 256x256 inputs, so one image a batch
            runner = bf16_runner(
                config,
                data_root,
                work_dir,
                batch_size=1 if 'bottom-up' in name else 2)
            dtypes = _backbone_dtypes(runner)
            counter = HostSyncCounter()
            runner.register_hook(_CountIteration(counter, 1, True), 'HIGHEST')
            runner.register_hook(_CountIteration(counter, 1, False), 'LOWEST')
            runner.train()
        _RUNS[name] = AmpRun(runner, work_dir, dtypes, counter.counts)
    return _RUNS[name]


def bf16_runner(config: str,
                data_root: Path,
                work_dir: Path,
                max_epochs: int = 1,
                resume_from: Optional[Path] = None,
                extra_hooks: Sequence = (),
                float32_head: bool = True,
                batch_size: int = 2) -> Runner:
    """A Runner of ``config`` on ``data_root`` with ``--amp``'s optimizer
    wrapper in bf16 (:func:`~mmpose_afl.utils.cpu_amp.amp_config`): 2
    iterations of ``batch_size`` an epoch, no loader workers, no validation, a
    checkpoint every epoch and a log line every iteration, written to
    TensorBoard too; resumed from
    ``resume_from`` if given;
    ``float32_head=False`` leaves out ``Float32HeadOutputsHook``. Build and
    train it inside :func:`~mmpose_afl.utils.cpu_amp.allow_cpu_amp`."""
    cfg = amp_config(Config.fromfile(str(REPO / config)), 'bfloat16')
    if not float32_head:
        cfg.custom_hooks = [
            hook for hook in cfg.custom_hooks
            if hook['type'] != 'Float32HeadOutputsHook'
        ]
    root = f'{data_root}/'
    loader = cfg.train_dataloader
    loader.dataset.data_root = root
    loader.batch_size = batch_size
    loader.num_workers = 0
    loader.persistent_workers = False
    # 2 iterations an epoch: the first 2 batches of samples (people)
    cfg.train_dataloader.dataset.indices = 2 * batch_size
    cfg.train_cfg.max_epochs = max_epochs
    # no validation
    cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    cfg.test_cfg = cfg.test_dataloader = cfg.test_evaluator = None
    cfg.default_hooks.checkpoint.save_best = None
    cfg.default_hooks.logger.interval = 1
    cfg.default_hooks.checkpoint.interval = 1
    cfg.custom_hooks = list(cfg.get('custom_hooks', [])) + list(extra_hooks)
    cfg.work_dir = str(work_dir)
    cfg.experiment_name = f'{Path(work_dir).name}-{max_epochs}'
    cfg.visualizer.name = cfg.experiment_name  # one per run, not shared
    # the scalars in TensorBoard too (read by
    # tests/test_e2e/test_tensorboard.py)
    cfg.visualizer.vis_backends = [
        dict(type='LocalVisBackend'),
        dict(type='TensorboardVisBackend')
    ]
    cfg.randomness = dict(seed=0)
    if resume_from is not None:
        cfg.resume = True
        cfg.load_from = str(resume_from)
    return Runner.from_cfg(cfg)


def train_scalars(runner: Runner) -> Dict[str, list]:
    """Every ``train/*`` scalar of the run's message hub: name -> the values
    of each iteration."""
    return {
        name: list(buffer.data[0])
        for name, buffer in runner.message_hub.log_scalars.items()
        if name.startswith('train/')
    }


__all__ = [
    'METHODS', 'AmpRun', 'HostSyncCounter', 'allow_cpu_amp', 'amp_run',
    'bf16_runner', 'train_scalars'
]
