"""Checks of a finished training run: the losses its log shows and the
non-finite tensors of its checkpoints (``tools/gpu_check.py`` and the AMP
tests)."""
import re
from pathlib import Path
from typing import Dict, List, Tuple, Union

LOSS_LINE = re.compile(r'Epoch\(train\)\s+\[(\d+)\]\[\s*(\d+)/\d+\].*?'
                       r'\bloss: (\S+)')


def logged_losses(log: Union[str, Path]) -> Dict[Tuple[int, int], float]:
    """``(epoch, iteration) -> loss`` of every training line of a console
    log of ``mim train``."""
    return {
        (int(e), int(i)): float(v)
        for e, i, v in LOSS_LINE.findall(Path(log).read_text())
    }


def nonfinite_tensors(checkpoint: Union[str, Path]) -> List[str]:
    """The paths (``/key/0/...``) of the non-finite floating tensors
    anywhere in a checkpoint: state dict, optimizer, loss scaler, the AFL
    critic, FoWKAL's running means..."""
    import torch
    bad = []

    def visit(obj, path):
        if isinstance(obj, torch.Tensor):
            if obj.is_floating_point() and not torch.isfinite(obj).all():
                bad.append(path)
        elif isinstance(obj, dict):
            for key, value in obj.items():
                visit(value, f'{path}/{key}')
        elif isinstance(obj, (list, tuple)):
            for index, value in enumerate(obj):
                visit(value, f'{path}/{index}')

    visit(torch.load(checkpoint, map_location='cpu', weights_only=False), '')
    return bad
