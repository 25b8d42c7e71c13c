"""Multi-process data-parallel training on CPU (gloo) with MMPose's train.py.

MMEngine's ``pytorch`` launcher calls ``torch.cuda.set_device`` and so cannot
start on a machine without a GPU. This script initialises the gloo process
group itself (MMEngine then skips its own initialisation), wraps the model in
``MMDistributedDataParallel`` without device ids, and hands over to MMPose's
own ``tools/train.py``. It is how the tests check that the project's extra
state (AFL critic, KAL factors) stays identical across ranks.

Usage::

    python -m torch.distributed.run --nproc_per_node 2 \\
        tools/dist_train_cpu.py CONFIG --work-dir DIR [train.py options]
"""
import os
import os.path as osp
import runpy
import sys

import torch.distributed as dist


def main() -> None:
    if 'RANK' not in os.environ:
        sys.exit('dist_train_cpu.py must be started by torch.distributed.run '
                 '(python -m torch.distributed.run --nproc_per_node N ...)')
    dist.init_process_group('gloo')

    import mmpose
    train_script = osp.join(
        osp.dirname(mmpose.__file__), '.mim', 'tools', 'train.py')
    args = sys.argv[1:]
    cpu_ddp = [
        'model_wrapper_cfg.type=MMDistributedDataParallel',
        'model_wrapper_cfg.device_ids=None',
        'env_cfg.dist_cfg.backend=gloo',
    ]
    if '--cfg-options' in args:
        at = args.index('--cfg-options') + 1
        args[at:at] = cpu_ddp
    else:
        args += ['--cfg-options'] + cpu_ddp
    sys.argv = [train_script] + args + ['--launcher', 'pytorch']
    runpy.run_path(train_script, run_name='__main__')


if __name__ == '__main__':
    main()
