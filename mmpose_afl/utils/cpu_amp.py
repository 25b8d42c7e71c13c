"""``mim train --amp`` without a GPU: MMEngine's ``AmpOptimWrapper`` in
bf16 on the CPU, so that the AMP code a GPU run takes has run before a GPU
is spent on it (``tools/gpu_check.py --dry-run`` and the AMP tests).

    python -m mmpose_afl.utils.cpu_amp CONFIG --amp [train.py's options]

runs MMPose's own ``train.py`` the way ``mim train`` does, with only the
GPU assert of ``AmpOptimWrapper`` lifted (:func:`allow_cpu_amp`).
"""
import contextlib
import os.path as osp
import runpy
import sys
from typing import Iterator, List, Optional

#: the hook MMPose's stock heads need under bf16 (docs/gpu.md)
HEAD_HOOK = dict(type='Float32HeadOutputsHook')


@contextlib.contextmanager
def allow_cpu_amp() -> Iterator[None]:
    """Let MMEngine's ``AmpOptimWrapper`` be built without a GPU.

    Lifts only its assert that CUDA (or an NPU / MLU) is there, by making
    the ``is_cuda_available`` its module imported answer ``True``; the
    rest is stock: autocast on the CPU (bf16 only: MMEngine's ``autocast``
    refuses any other CPU type), a ``GradScaler`` that disables itself
    without CUDA (``scale``, ``step``, ``update`` pass through), the
    wrapper's state dict. Nothing else asks that module, so nothing else
    believes there is a GPU.
    """
    from mmengine.optim.optimizer import amp_optimizer_wrapper as module
    saved = module.is_cuda_available
    module.is_cuda_available = lambda: True
    try:
        yield
    finally:
        module.is_cuda_available = saved


def amp_config(cfg, dtype: str = 'float16'):
    """``cfg`` as MMPose's ``train.py --amp`` makes it.

    Args:
        cfg (Config): The config, changed in place.
        dtype (str): The autocast type; for ``'bfloat16'``
            :data:`HEAD_HOOK` is added to ``custom_hooks``. Defaults to
            ``'float16'``.

    Returns:
        Config: ``cfg`` with ``AmpOptimWrapper`` and a dynamic loss scale.
    """
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    cfg.optim_wrapper.dtype = dtype
    hooks = list(cfg.get('custom_hooks', []))
    if dtype == 'bfloat16' and HEAD_HOOK['type'] not in [
            hook.get('type') for hook in hooks
    ]:
        cfg.custom_hooks = hooks + [dict(HEAD_HOOK)]
    return cfg


def main(argv: Optional[List[str]] = None) -> None:
    """MMPose's ``train.py CONFIG --launcher none [argv[1:]]`` inside
    :func:`allow_cpu_amp`."""
    import mmpose
    argv = sys.argv[1:] if argv is None else argv
    train = osp.join(osp.dirname(mmpose.__file__), '.mim', 'tools', 'train.py')
    sys.argv = [train, argv[0], '--launcher', 'none'] + argv[1:]
    with allow_cpu_amp():
        runpy.run_path(train, run_name='__main__')


if __name__ == '__main__':
    main()
