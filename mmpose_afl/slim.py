"""Slim checkpoints: the weights a stock MMPose model needs for inference,
without this plugin.

Training with this plugin leaves state that inference does not use: the AFL
critic and its optimizer (``checkpoint['afl_critic']``), the optimizer,
message hub and parameter schedulers of the run, the KAL factors of the loss
(``head.loss_module.*``) and the SAHR scale branch (``head.scale_layers.*``).
:func:`stock_config` turns a config into the stock MMPose config of the same
model, and :func:`slim_checkpoint` keeps exactly the state-dict entries that
the stock model has (checked: none missing, same shapes), plus ``meta`` with
the stock config in ``meta['cfg']``.

How a module of this plugin becomes a stock one (found through the registry,
so modules added later are handled the same way):

* a loss (a config under a key ending in ``loss`` or a class named
  ``*Loss``) -> ``KeypointMSELoss(use_target_weight=True)``: losses only act
  in training, and MMPose's stock losses have no state;
* any other module -> its nearest stock base class registered in the same
  registry (``SAHRHead`` -> ``HeatmapHead``), with the arguments that class
  takes;
* a module with no stock base in a list (a hook in ``custom_hooks``) is
  removed; elsewhere it is an error.

A module whose stock replacement would predict differently (it overrides
``forward``, ``predict`` or ``decode`` of its stock base, as
``SigmoidHeatmapHead`` applies the sigmoid before decoding) makes
:func:`stock_config` raise :class:`SlimError` unless
``allow_inference_change=True``: the stock model would load the weights but
not give the same predictions. With it, an HSM model
(``SigmoidHeatmapHead`` -> ``HeatmapHead``) loads and runs in stock MMPose
but decodes the logits instead of their sigmoid: keypoint scores are the
logits (not in [0, 1], so score thresholds such as the COCO rescoring's 0.2
act differently; the plugin's scores are their sigmoid), locations are the
same only where the maximum logit is > 0 (MMPose's heatmap codecs mark a
keypoint whose maximum is <= 0 as not found) and, with DARK, the log-domain
refinement sees logits, so the sub-pixel offsets differ too.
"""
import copy
import inspect
from typing import Dict, List, Optional, Tuple

import torch
from mmengine.config import Config

PLUGIN = 'mmpose_afl'
STOCK_LOSS = dict(type='KeypointMSELoss', use_target_weight=True)
INFERENCE_METHODS = ('forward', 'predict', 'decode')


class SlimError(Exception):
    """A checkpoint or config that cannot be made stock; the message says
    which module or key and why."""


def _registries():
    from mmpose.registry import (DATASETS, HOOKS, KEYPOINT_CODECS, METRICS,
                                 MODELS, TRANSFORMS)
    return (MODELS, HOOKS, METRICS, TRANSFORMS, DATASETS, KEYPOINT_CODECS)


def _plugin_class(type_name) -> Tuple[Optional[type], Optional[object]]:
    """(class, registry) of a ``type`` that names a module of this plugin;
    (None, None) for a stock or unknown type."""
    if isinstance(type_name, str):
        for registry in _registries():
            cls = registry.get(type_name)
            if cls is not None and cls.__module__.startswith(PLUGIN):
                return cls, registry
    return None, None


def _stock_base(cls: type, registry) -> Optional[type]:
    for base in cls.__mro__[1:]:
        if base.__module__.startswith(PLUGIN):
            continue
        if registry.get(base.__name__) is base:
            return base
    return None


def _accepted(cls: type, kwargs: dict) -> dict:
    params = inspect.signature(cls.__init__).parameters
    if any(p.kind is p.VAR_KEYWORD for p in params.values()):
        return dict(kwargs)
    return {k: v for k, v in kwargs.items() if k in params}


def _changes_inference(cls: type, base: type) -> List[str]:
    return [
        name for name in INFERENCE_METHODS
        if getattr(cls, name, None) is not getattr(base, name, None)
    ]


class _Stocker:
    """Walks a config dict, replacing the plugin's modules (see the module
    docstring) and listing what it changed in ``changes``."""
    _DROP = object()

    def __init__(self, allow_inference_change: bool):
        self.allow_inference_change = allow_inference_change
        self.changes: List[str] = []

    def convert(self, node, path: str):
        if isinstance(node, dict):
            node = self._replace(node, path) if 'type' in node else node
            if node is self._DROP:
                return node
            return {k: self.convert(v, f'{path}.{k}') for k, v in node.items()}
        if isinstance(node, (list, tuple)):
            items = [
                self.convert(v, f'{path}[{i}]') for i, v in enumerate(node)
            ]
            return type(node)(v for v in items if v is not self._DROP)
        return node

    def _replace(self, node: dict, path: str):
        cls, registry = _plugin_class(node['type'])
        if cls is None:
            return node
        key = path.rsplit('.', 1)[-1]
        if key.endswith('loss') or cls.__name__.endswith('Loss'):
            self.changes.append(f'{path}: {cls.__name__} -> KeypointMSELoss')
            return dict(STOCK_LOSS)
        base = _stock_base(cls, registry)
        if base is None:
            if path.endswith(']'):
                self.changes.append(f'{path}: {cls.__name__} removed')
                return self._DROP
            raise SlimError(f'{path}: {cls.__name__} has no stock MMPose '
                            'equivalent (no registered stock base class)')
        differs = _changes_inference(cls, base)
        if differs and not self.allow_inference_change:
            raise SlimError(
                f'{path}: {cls.__name__} overrides {", ".join(differs)} of '
                f'{base.__name__}, so the stock {base.__name__} would not '
                'give the same predictions with these weights (pass '
                'allow_inference_change / --allow-inference-change to write '
                'the slim checkpoint anyway)')
        kwargs = {k: v for k, v in node.items() if k != 'type'}
        accepted = _accepted(base, kwargs)
        dropped = sorted(set(kwargs) - set(accepted))
        self.changes.append(f'{path}: {cls.__name__} -> {base.__name__}' + (
            f' (without {", ".join(dropped)})' if dropped else '') +
                            (f'; predictions differ: overrides '
                             f'{", ".join(differs)}' if differs else ''))
        return dict(type=base.__name__, **accepted)


def stock_config(cfg: Config,
                 allow_inference_change: bool = False
                 ) -> Tuple[Config, List[str]]:
    """The stock MMPose config of the model ``cfg`` trains, and a list of
    what was changed (see the module docstring)."""
    import mmpose_afl  # noqa: F401  (registers the modules to recognise)
    stocker = _Stocker(allow_inference_change)
    data = stocker.convert(copy.deepcopy(cfg.to_dict()), 'cfg')
    imports = data.get('custom_imports', {}).get('imports', [])
    if isinstance(imports, str):
        imports = [imports]
    kept = [m for m in imports if m.split('.')[0] != PLUGIN]
    if 'custom_imports' in data and kept != list(imports):
        stocker.changes.append(f'cfg.custom_imports: {PLUGIN} removed')
        if kept:
            data['custom_imports']['imports'] = kept
        else:
            del data['custom_imports']
    return Config(data), stocker.changes


def stock_state_dict(state_dict: Dict[str, torch.Tensor],
                     stock_cfg: Config) -> Tuple[Dict, List[str]]:
    """The entries of ``state_dict`` that the model of ``stock_cfg`` has, in
    its order, and the names of the entries dropped. Raises
    :class:`SlimError` when the stock model needs an entry the checkpoint
    lacks or of another shape."""
    from mmengine.registry import init_default_scope
    from mmpose.registry import MODELS
    init_default_scope(stock_cfg.get('default_scope', 'mmpose'))
    model_cfg = copy.deepcopy(stock_cfg.model)
    model = MODELS.build(model_cfg)
    wanted = model.state_dict()
    missing = [k for k in wanted if k not in state_dict]
    if missing:
        raise SlimError(f'the checkpoint lacks {len(missing)} entries that '
                        f'the stock model has, e.g. {missing[:5]}')
    wrong = [(k, tuple(state_dict[k].shape), tuple(v.shape))
             for k, v in wanted.items()
             if tuple(state_dict[k].shape) != tuple(v.shape)]
    if wrong:
        raise SlimError('entries with another shape in the stock model '
                        f'(name, checkpoint, stock): {wrong[:5]}')
    dropped = [k for k in state_dict if k not in wanted]
    return {k: state_dict[k] for k in wanted}, dropped


def slim_checkpoint(checkpoint: dict,
                    cfg: Optional[Config] = None,
                    allow_inference_change: bool = False) -> Tuple[dict, Dict]:
    """A slim copy of an MMEngine checkpoint: ``{'meta', 'state_dict'}``
    loadable with ``strict=True`` into the stock model.

    Args:
        checkpoint (dict): As ``torch.load`` returns it
        cfg (Config, optional): The training config; defaults to the one
            MMEngine stores in ``checkpoint['meta']['cfg']``
        allow_inference_change (bool): Write it even when the stock model
            predicts differently (see the module docstring). Defaults to
            ``False``

    Returns:
        tuple: the slim checkpoint and a report ``dict(changes=[...],
        dropped_keys=[...], dropped_entries=[...])``.
    """
    if 'state_dict' not in checkpoint:
        raise SlimError('not an MMEngine checkpoint: no "state_dict" key '
                        f'(keys: {sorted(checkpoint)})')
    meta = dict(checkpoint.get('meta') or {})
    if cfg is None:
        if 'cfg' not in meta:
            raise SlimError('the checkpoint stores no config '
                            "(meta['cfg']): give the training config")
        cfg = Config.fromstring(meta['cfg'], file_format='.py')
    stock_cfg, changes = stock_config(cfg, allow_inference_change)
    state_dict, dropped = stock_state_dict(checkpoint['state_dict'], stock_cfg)
    meta['cfg'] = stock_cfg.pretty_text
    slim = dict(meta=meta, state_dict=state_dict)
    report = dict(
        changes=changes,
        dropped_keys=sorted(k for k in checkpoint if k not in slim),
        dropped_entries=dropped)
    return slim, report
