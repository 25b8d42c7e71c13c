"""The optional per-sample log of AFL's difficulty (paper Sec. 5, Fig. 3):
what ``tools/draw_afl_difficulty.py`` and ``tools/afl_difficulty_report.py``
read. Only a run that asks for it (``AFLCriticHook(num_tracked=...)`` or
``tracked_ids``) computes any of it."""
import json
import os.path as osp
from typing import Dict, Optional, Sequence

from mmengine.dist import get_rank

from mmpose_afl.evaluation.sample_oks import sample_diagnostics, sample_oracle


class AFLDifficultyRecorder:
    """Append the difficulty of tracked training samples to
    ``<work_dir>/afl_difficulty_rank<rank>.jsonl``, one JSON object per
    sample and iteration: ``epoch``, ``iter``, ``id``, ``img_id``,
    ``img_path``, ``difficulty``, the applied ``weight``, ``labels`` (the
    number of labelled keypoints), ``error`` (the prediction's mean keypoint
    distance over them: heatmap pixels for a heatmap head, input pixels for
    SimCC and regression heads; ``null`` without labels), ``base_loss`` and
    ``oks_error`` (1 - OKS of the prediction,
    ``mmpose_afl/evaluation/sample_oks.py``; ``null`` when the sample's
    ``input_scale``, annotation ``area`` or the dataset's ``sigmas`` are
    unknown).

    Tracked samples are ``num_tracked`` training samples spread evenly over
    the training set (fixed by the dataset order, so the same on every run),
    or exactly ``tracked_ids`` (the data samples' ``id``: the annotation id
    for top-down COCO).

    Args:
        num_tracked (int): How many samples to track without
            ``tracked_ids``.
        tracked_ids (Sequence[int], optional): Sample ids to track.
    """

    def __init__(self,
                 num_tracked: int,
                 tracked_ids: Optional[Sequence[int]] = None) -> None:
        self.num_tracked = num_tracked
        self.tracked_ids = set(tracked_ids) if tracked_ids else None

    def start(self, runner) -> None:
        """Choose the tracked samples (when no ids were given)."""
        if self.tracked_ids is None:
            dataset = runner.train_dataloader.dataset
            step = max(1, len(dataset) // self.num_tracked)
            ids = [
                dataset.get_data_info(i)['id']
                for i in range(0, len(dataset), step)
            ]
            self.tracked_ids = set(ids[:self.num_tracked])

    def record(self, runner, data_batch: Optional[dict], loss) -> None:
        """Write the records of the tracked samples of the loss's last
        training batch."""
        batch = loss.last_samples
        if not self.tracked_ids or not data_batch or batch is None:
            return
        samples = data_batch['data_samples']
        if not any(s.metainfo.get('id') in self.tracked_ids for s in samples):
            return
        values = dict(
            sample_diagnostics(loss.adapter, batch['context']),
            difficulty=batch['difficulty'],
            weight=batch['weight'],
            base_loss=batch['losses'])
        values = {k: v.tolist() for k, v in values.items()}
        sigmas = runner.train_dataloader.dataset.metainfo.get('sigmas')
        records = []
        for index, sample in enumerate(samples):
            meta: Dict = sample.metainfo
            if meta.get('id') not in self.tracked_ids:
                continue
            labels = values['labels'][index]
            records.append(
                dict(
                    epoch=runner.epoch + 1,
                    iter=runner.iter + 1,
                    id=int(meta['id']),
                    img_id=int(meta.get('img_id', -1)),
                    img_path=meta.get('img_path'),
                    difficulty=values['difficulty'][index],
                    weight=values['weight'][index],
                    labels=labels,
                    error=values['error'][index] if labels else None,
                    **sample_oracle(values['base_loss'][index],
                                    values['offsets'][index], meta, sigmas)))
        path = osp.join(runner.work_dir,
                        f'afl_difficulty_rank{get_rank()}.jsonl')
        with open(path, 'a') as f:
            f.writelines(json.dumps(r) + '\n' for r in records)
