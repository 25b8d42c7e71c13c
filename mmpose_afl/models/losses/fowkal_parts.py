"""The body parts of :class:`FoWKALLoss`: which keypoints form a part, the
1/N_part shares and the initial keypoint-wise factors (docs/fowkal.md)."""
from collections import Counter
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmpose.datasets.datasets.utils import parse_pose_metainfo
from torch import Tensor

WHOLEBODY_METAINFO = 'configs/_base_/datasets/coco_wholebody.py'


def parts_from_metainfo(metainfo: str) -> Dict[str, List[int]]:
    """Body parts of a dataset from the keypoint names in its metainfo.

    Names as in MMPose's ``coco_wholebody.py`` are sorted into ``face``
    (``face-*``), ``left_hand`` / ``right_hand`` (``left_`` / ``right_``
    followed by ``hand_root``, ``thumb*`` or ``*finger*``), ``foot``
    (``*_toe``, ``*_heel``) and ``body`` (all others); parts no keypoint
    falls into are left out, so COCO's metainfo gives the single part
    ``body``. For COCO-WholeBody this gives body 0-16, foot 17-22, face
    23-90, left hand 91-111 and right hand 112-132.

    Args:
        metainfo (str): A dataset metainfo config file, looked up as MMPose's
            datasets do (a relative path that does not exist is taken from
            the MMPose package, e.g.
            ``'configs/_base_/datasets/coco_wholebody.py'``)

    Returns:
        Dict[str, List[int]]: part name -> keypoint indices.
    """
    names = parse_pose_metainfo(dict(from_file=metainfo))['keypoint_id2name']
    parts = dict(body=[], foot=[], face=[], left_hand=[], right_hand=[])
    for index, name in sorted(names.items()):
        if name.startswith('face-'):
            part = 'face'
        elif 'hand_root' in name or 'thumb' in name or 'finger' in name:
            side = name.split('_')[0]
            if side not in ('left', 'right'):
                raise ValueError(
                    f'FoWKALLoss: cannot tell the side of hand keypoint '
                    f'{name!r} in `metainfo` {metainfo!r}; give `parts`')
            part = f'{side}_hand'
        elif name.endswith(('_toe', '_heel')):
            part = 'foot'
        else:
            part = 'body'
        parts[part].append(index)
    return {name: ids for name, ids in parts.items() if ids}


def check_parts(parts: Dict[str, Sequence[int]],
                num_keypoints: Optional[int] = None,
                num_keypoints_field: str = '`num_keypoints`'
                ) -> Dict[str, List[int]]:
    """``parts`` as lists, after checking they cover every keypoint once.

    Args:
        parts (dict): Part name -> keypoint indices.
        num_keypoints (int, optional): The number of keypoints the parts
            must cover; ``None`` checks only that they cover 0..N-1.
            Defaults to ``None``
        num_keypoints_field (str): What ``num_keypoints`` is called in the
            error. Defaults to ``'`num_keypoints`'``

    Returns:
        Dict[str, List[int]]: The parts, each a list.
    """
    if not isinstance(parts, dict) or not parts:
        raise ValueError('FoWKALLoss: `parts` must be a non-empty dict of '
                         f'part name -> keypoint indices, got {parts!r}')
    parts = {name: list(ids) for name, ids in parts.items()}
    flat = [i for ids in parts.values() for i in ids]
    empty = [name for name, ids in parts.items() if not ids]
    not_int = [
        i for i in flat if isinstance(i, bool) or not isinstance(i, int)
    ]
    if empty or not_int:
        raise ValueError(f'FoWKALLoss: every part in `parts` needs integer '
                         f'keypoint indices; empty parts {empty}, '
                         f'non-integers {not_int}')
    if num_keypoints is not None and num_keypoints != len(flat):
        raise ValueError(
            f'FoWKALLoss: `parts` hold {len(flat)} keypoint indices but '
            f'{num_keypoints_field} is {num_keypoints}; they must cover '
            'every keypoint of the heatmaps exactly once (set `parts` or '
            '`metainfo` for this dataset)')
    repeated = sorted(i for i, n in Counter(flat).items() if n > 1)
    missing = sorted(set(range(len(flat))) - set(flat))
    if repeated or missing:
        raise ValueError(
            f'FoWKALLoss: `parts` must cover keypoints 0..{len(flat) - 1} '
            f'exactly once; repeated {repeated}, missing {missing}')
    return parts


class PartLayout:
    """Checked body parts and the tensors the loss needs from them.

    Args:
        parts (dict): Part name -> keypoint indices, covering keypoints
            0..K-1 exactly once.
        dense_parts (Sequence[str]): The parts with dense keypoints (face,
            hands); each must be in ``parts``.
        num_keypoints (int, optional): K, checked against the parts.
            Defaults to ``None`` (not checked)
    """

    def __init__(self,
                 parts: Dict[str, Sequence[int]],
                 dense_parts: Sequence[str],
                 num_keypoints: Optional[int] = None):
        self.parts = check_parts(parts, num_keypoints)
        unknown = sorted(set(dense_parts) - set(self.parts))
        if unknown:
            raise ValueError(
                f'FoWKALLoss: `dense_parts` {unknown} are not in `parts` '
                f'{list(self.parts)}')
        self.dense_parts = tuple(dense_parts)
        self.num_keypoints = sum(len(ids) for ids in self.parts.values())

    def onehot(self) -> Tensor:
        """[P, K]: 1 where keypoint k belongs to part p."""
        onehot = torch.zeros(len(self.parts), self.num_keypoints)
        for p, ids in enumerate(self.parts.values()):
            onehot[p, ids] = 1.
        return onehot

    def dense(self) -> Tensor:
        """[K]: 1 on the keypoints of the dense parts, 0 elsewhere (the
        heuristic's fixed factors)."""
        dense = torch.zeros(self.num_keypoints)
        for name in self.dense_parts:
            dense[self.parts[name]] = 1.
        return dense

    def part_share(self) -> Tensor:
        """[K]: 1 / N_part of each keypoint's part."""
        onehot = self.onehot()
        return onehot.t() @ (1 / onehot.sum(1))

    def initial_factors(self, lambda_init: Union[float,
                                                 Dict[str, float]]) -> Tensor:
        """The initial factors lambda_k [K] from ``lambda_init``: one value
        in (0, 1), or a dict with the keys ``'dense'`` and ``'coarse'``, or
        with every part name."""
        if isinstance(lambda_init, dict):
            keys = set(lambda_init)
            if keys == {'dense', 'coarse'}:
                values = {
                    name:
                    lambda_init['dense' if name in
                                self.dense_parts else 'coarse']
                    for name in self.parts
                }
            elif keys == set(self.parts):
                values = lambda_init
            else:
                raise ValueError(
                    'FoWKALLoss: `lambda_init` as a dict needs the keys '
                    f"('dense', 'coarse') or every part {list(self.parts)}, "
                    f'got {sorted(keys)}')
        else:
            values = {name: lambda_init for name in self.parts}
        bad = {
            n: v
            for n, v in values.items() if isinstance(v, bool)
            or not isinstance(v, (int, float)) or not 0 < v < 1
        }
        if bad:
            raise ValueError('FoWKALLoss: `lambda_init` values must lie in '
                             f'(0, 1) (exclusive), got {bad}')
        init = torch.empty(self.num_keypoints)
        for name, ids in self.parts.items():
            init[ids] = float(values[name])
        return init
