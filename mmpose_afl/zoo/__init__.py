"""Compare measured metrics with the MMPose model zoo.

Three parts, one module each:

* :mod:`.metafiles`: the published numbers (model-index metafiles) and the
  baseline entry of a config (its ``_base_`` chain).
* :mod:`.measured`: the metrics a ``mim train`` / ``mim test`` work dir
  holds, matched with the metric names the metafiles publish.
* :mod:`.like_for_like`: whether the run was evaluated on the entry's data
  and started from the entry's backbone weights.

``tools/compare_with_zoo.py`` puts them together.
"""
from .like_for_like import (EvalData, backbone_init, data_mismatches,
                            describe_init, eval_data, run_config,
                            start_mismatches)
from .measured import Measured, match_metrics, read_measured
from .metafiles import (MMPOSE_PREFIX, ZooEntry, ZooError, base_chain,
                        config_key, default_metafiles, find_baseline,
                        load_entries, mmpose_config_root)

__all__ = [
    'MMPOSE_PREFIX', 'ZooError', 'ZooEntry', 'EvalData', 'Measured',
    'mmpose_config_root', 'config_key', 'base_chain', 'default_metafiles',
    'load_entries', 'find_baseline', 'read_measured', 'match_metrics',
    'eval_data', 'run_config', 'data_mismatches', 'backbone_init',
    'describe_init', 'start_mismatches'
]
