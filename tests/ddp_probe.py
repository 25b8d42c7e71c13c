"""A test-only hook that writes what each DDP rank holds after training.

``RankStateDumpHook`` saves, per rank, the model's ``state_dict`` plus
everything the other hooks add to a checkpoint in ``before_save_checkpoint``
(so the AFL critic and its optimizer, or any other extra state a hook saves,
are included) to ``<work_dir>/rank_state_<rank>_{start,end}.pth``, at the
start of training (after a resume has loaded) and at its end, and whether
DDP was asked to find unused parameters. Tests compare the files of the two
ranks. It is added to a config by ``tests/e2e.py:with_probe``.
"""
import os.path as osp

import torch
from mmengine.dist import get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpose.registry import HOOKS


@HOOKS.register_module()
class RankStateDumpHook(Hook):
    """Dump each rank's model and hook state when training starts (after
    ``--resume`` has loaded its checkpoint) and when it ends.

    Args:
        filename (str): Name pattern, formatted with ``rank`` and ``when``
            (``'start'`` or ``'end'``).
            Defaults to ``'rank_state_{rank}_{when}.pth'``.
    """

    priority = 'LOWEST'

    def __init__(self, filename: str = 'rank_state_{rank}_{when}.pth') -> None:
        self.filename = filename

    def _dump(self, runner, when: str) -> None:
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        state = {
            'state_dict':
            model.state_dict(),
            'meta': {},
            'find_unused_parameters':
            getattr(runner.model, 'find_unused_parameters', None)
        }
        for hook in runner.hooks:
            if hook is not self:
                hook.before_save_checkpoint(runner, state)
        path = osp.join(runner.work_dir,
                        self.filename.format(rank=get_rank(), when=when))
        torch.save(state, path)

    def before_train(self, runner) -> None:
        self._dump(runner, 'start')

    def after_train(self, runner) -> None:
        self._dump(runner, 'end')
