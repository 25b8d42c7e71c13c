"""The data sets and the config of one run of
``benchmarks/bench_accuracy.py``: the method's config with the preset's
budget, data, input size, the stratified metric and
``ReseedBeforeInitHook`` merged in (the script's docstring says why)."""
import argparse
import json
import re
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from mmpose_afl.utils.mim_run import loader_options
from .accuracy_methods import (DATA, EVALUATOR, MAKE_DATA_SIZES, METHODS,
                               PREDS, REPO)


def slug(method: str) -> str:
    """``method`` as a folder name."""
    return re.sub(r'\W+', '_', method)


def run_dir(out_dir: Path, dataset: str, method: str, seed: int) -> Path:
    """The work dir of one run under the benchmark's ``out_dir``."""
    return Path(out_dir) / dataset / slug(method) / f'seed{seed}'


def data_root(dataset: str,
              num_train: int,
              num_val: int,
              out_dir: Path,
              data_seed: int = 0,
              unusual_pose: str = 'any_angle',
              poses: Optional[Path] = None) -> Path:
    """Root of the synthetic set with these sizes drawn with generator seed
    ``data_seed`` and the generator's ``unusual_pose`` option: ``make
    data``'s for its sizes, seed 0 and ``'any_angle'``, else
    ``<out_dir>/data/<dataset>_<train>_<val>_seed<data_seed>`` (with
    ``_<unusual_pose>`` appended unless ``'any_angle'``); with ``poses`` (a
    COCO keypoint file) the people at its poses, under that name with
    ``_real_pose`` appended; generated when missing."""
    if poses is not None:
        from mmpose_afl.datasets.real_pose import generate_from_poses
        root = (
            out_dir / 'data' /
            f'{dataset}_{num_train}_{num_val}_seed{data_seed}_real_pose')
        if not (root / 'annotations' / DATA[dataset][1].format('val')
                ).is_file():  # (val is written last)
            generate_from_poses(root, poses, dataset, num_train, num_val,
                                data_seed)
        return root
    if (num_train, num_val, data_seed, unusual_pose) == (*MAKE_DATA_SIZES, 0,
                                                         'any_angle'):
        root = REPO / DATA[dataset][0]
    else:
        poses = '' if unusual_pose == 'any_angle' else f'_{unusual_pose}'
        root = (
            out_dir / 'data' /
            f'{dataset}_{num_train}_{num_val}_seed{data_seed}{poses}')
    if not (root / 'annotations').is_dir():
        from mmpose_afl.datasets.synthetic import generate_dataset
        generate_dataset(
            root,
            dataset,
            num_train,
            num_val,
            data_seed,
            unusual_pose=unusual_pose)
    return root


def data_sizes(dataset: str, root: Path) -> Tuple[int, int]:
    """(train, val) images of the set under ``root``."""
    return tuple(
        len(
            json.loads((root / 'annotations' /
                        DATA[dataset][1].format(split)).read_text())['images'])
        for split in ('train', 'val'))


def budget_options(epochs: int,
                   seed: int,
                   batch_size: int = 16,
                   workers: int = 0) -> List[str]:
    """The common budget: ``epochs`` epochs, lr x0.1 at ~75 % and ~90 %,
    one validation at the end, the seed, no checkpoints, the batch and
    ``workers`` loader workers per run (0: each run keeps to its core)."""
    milestones = sorted(
        {max(1, round(epochs * 0.75)),
         max(1, round(epochs * 0.9))})
    options = [
        f'train_cfg.max_epochs={epochs}',
        f'train_cfg.val_interval={epochs}',
        f'param_scheduler.1.end={epochs}',
        'param_scheduler.1.milestones=[{}]'.format(','.join(
            map(str, milestones))),
        f'randomness.seed={seed}',
        'default_hooks.checkpoint.interval=-1',
        'default_hooks.checkpoint.save_last=False',
        'default_hooks.checkpoint.save_best=None',
        f'train_dataloader.batch_size={batch_size}',
    ]
    return options + loader_options(workers)


def check_input_size(input_size: Optional[Sequence[int]]) -> None:
    """ResNet's stride-32 features and the head's three x2 deconvolutions
    give heatmaps of a quarter of the input only when both sides are
    multiples of 32 (192x144 trains until the loss, then fails on a heatmap
    4 px wider than the codec's): a ValueError names ``input_size``."""
    if input_size is not None and (len(input_size) != 2 or any(
            int(v) != v or v <= 0 or v % 32 for v in input_size)):
        raise ValueError(f'input_size must be (width, height), both positive '
                         f'multiples of 32, got {input_size}')


def resize_input(node, input_size: Tuple[int, int]) -> None:
    """Set every ``input_size`` in a config to ``input_size`` and every
    ``heatmap_size`` to a quarter of it (codec, head decoder, pipelines).
    A SimCC codec's ``sigma`` is in input pixels, so it scales with the
    input (the stock 256x192 sigma at half the input is halved); a heatmap
    sigma is in heatmap pixels and stays, as in MMPose's configs."""
    check_input_size(input_size)
    if (isinstance(node, dict) and node.get('type') == 'SimCCLabel'
            and 'input_size' in node):
        node['sigma'] = tuple(sigma * new / old for sigma, new, old in zip(
            node['sigma'], input_size, node['input_size']))
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in list(items):
        if key == 'input_size':
            node[key] = tuple(input_size)
        elif key == 'in_featuremap_size':  # RTMCCHead: stride-32 features
            node[key] = (input_size[0] // 32, input_size[1] // 32)
        elif key == 'heatmap_size':
            node[key] = (input_size[0] // 4, input_size[1] // 4)
        elif isinstance(value, (dict, list)):
            resize_input(value, input_size)


def run_config(dataset: str, method: str, seed: int, settings: dict,
               root: Path, out_dir: Path) -> Path:
    """Write the config one run trains: the method's config with the
    budget, the data under ``root``, the stratified metric,
    ``ReseedBeforeInitHook`` and the preset's input size merged in."""
    from mmengine.config import Config, DictAction
    config, options = METHODS[method][dataset]
    cfg = Config.fromfile(str(REPO / config))
    parser = argparse.ArgumentParser()
    parser.add_argument('--options', nargs='+', action=DictAction)
    cfg.merge_from_dict(
        parser.parse_args([
            '--options',
            *budget_options(settings['epochs'], seed, settings['batch_size'],
                            settings['workers']), *options
        ]).options)
    ann_file = f'{root}/annotations/{DATA[dataset][1].format("val")}'
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = f'{root}/'
    for evaluator in ('val_evaluator', 'test_evaluator'):
        cfg[evaluator] = dict(
            cfg[evaluator], type=EVALUATOR[dataset], ann_file=ann_file)
    if settings.get('dump_preds'):  # for benchmarks/left_right.py
        work_dir = run_dir(out_dir, dataset, method, seed)
        cfg.val_evaluator = [
            cfg.val_evaluator,
            dict(type='DumpResults', out_file_path=str(work_dir / PREDS))
        ]
    imports = list(cfg.get('custom_imports', {}).get('imports', []))
    cfg.custom_imports = dict(
        imports=imports + ['mmpose_afl.engine.hooks.reseed_hook'],
        allow_failed_imports=False)
    cfg.custom_hooks = list(cfg.get('custom_hooks',
                                    [])) + [dict(type='ReseedBeforeInitHook')]
    if settings['input_size'][dataset]:
        resize_input(cfg._cfg_dict, settings['input_size'][dataset])
    path = (
        out_dir / 'configs' / dataset / slug(method) / f'seed{seed}' /
        Path(config).name)
    path.parent.mkdir(parents=True, exist_ok=True)
    cfg.dump(str(path))
    return path


def finished(dataset: str, method: str, seed: int,
             out_dir: Path) -> Optional[Dict[str, float]]:
    """Metrics of a run whose work dir holds its evaluation, else None."""
    from mmpose_afl.zoo import ZooError, read_measured
    try:
        return read_measured(str(run_dir(out_dir, dataset, method,
                                         seed))).metrics
    except ZooError:
        return None
