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
import argparse
import os
import os.path as osp
import runpy
import sys


def parse_args(argv=None) -> argparse.Namespace:
    """Checks the command line (and answers ``--help``); everything after
    CONFIG goes to MMPose's ``tools/train.py`` unchanged."""
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        epilog=__doc__.split('\n\n', 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('config', help='the MMPose config to train')
    parser.add_argument(
        'train_args',
        nargs=argparse.REMAINDER,
        help="options of MMPose's tools/train.py, passed on as given "
        '(--work-dir DIR, --resume, --amp, --cfg-options KEY=VALUE ...); '
        '--launcher pytorch and the gloo/DDP settings are added')
    return parser.parse_args(argv)


def main() -> None:
    parse_args()
    if 'RANK' not in os.environ:
        sys.exit('dist_train_cpu.py must be started by torch.distributed.run '
                 '(python -m torch.distributed.run --nproc_per_node N ...)')
    import torch.distributed as dist
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
