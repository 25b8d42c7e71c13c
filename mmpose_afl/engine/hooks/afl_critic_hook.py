"""The hook that trains the AFL critic every iteration (Alg. 2 of the AFL
paper) and keeps it consistent across DDP ranks and checkpoints, for the
AFL loss of any head family. See ``docs/afl.md``."""
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence

from mmengine.dist import broadcast, get_rank
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpose.registry import HOOKS

from mmpose_afl.evaluation.sample_oks import sample_oracle
from mmpose_afl.models.losses.afl_loss import AdversarialFocalLoss


@HOOKS.register_module()
class AFLCriticHook(Hook):
    """Update the critic of every AFL loss (:class:`AdversarialFocalLoss`:
    ``AFLHeatmapLoss``, ``AFLSimCCLoss``, ``AFLRegressionLoss``) in the
    model after each training iteration, and own everything about the
    critic that is not a forward pass.

    The critic is deliberately not a submodule of the pose model: the pose
    optimizer must never touch it and DDP (``find_unused_parameters=False``)
    must not wait for gradients it never gets. This hook therefore

    - ``before_run``: finds the AFL losses and has each check its head
      (:meth:`~AdversarialFocalLoss.bind_head`: the head's family, e.g. no
      SimCC AFL loss under a heatmap head, and the critic's
      ``num_keypoints`` against the head's ``out_channels`` /
      ``num_joints``; an error naming both, before any step) and read what
      it needs from it (a regression head's input size), and moves the
      critic to the model's device (before a resumed optimizer state is
      loaded onto it);
    - ``before_train``: marks the losses as attached (an AFL loss refuses to
      train without this hook rather than run with a frozen critic) and
      broadcasts the critic weights from rank 0;
    - ``after_train_iter``: runs ``loss.critic_step()`` (``n_critic``
      WGAN-GP steps with gradients averaged over ranks), logs everything it
      returns as ``train/afl_*`` scalars (see
      :meth:`AdversarialFocalLoss.critic_step`): critic loss, Wasserstein
      estimate, gradient penalty and the mean gradient norm it penalises
      (``afl_gp_grad_norm``), drift penalty, the range and offset of the
      real and fake scores (``afl_score_{real,fake}_{mean,min,max}``,
      ``afl_score_offset``), the difficulty mean / min / max, the effective
      sample size of the applied weights as a fraction of the batch
      (``afl_ess``), critic steps skipped for non-finite gradients
      (``afl_nonfinite_steps``) or for any reason, a non-finite input
      or topology included (``afl_skipped_critic_steps``), and samples
      with a non-finite input or topology (``afl_nonfinite_samples``).
      One value per iteration; MMEngine's ``LogProcessor`` prints their mean over the logging window, so the
      printed min / max are window means of the per-batch min / max. It
      also records the tracked samples (paper Sec. 5, Fig. 3);
    - ``before_save_checkpoint`` / ``after_load_checkpoint``: saves and
      restores the critic weights and its optimizer state under
      ``checkpoint['afl_critic']``, so ``--resume`` continues exactly. A
      checkpoint without them (a stock MMPose one given as ``load_from``,
      or one saved without this hook) leaves the critic freshly initialised,
      with a warning: its first difficulties are uninformative.

    Tracked samples are ``num_tracked`` training samples spread evenly over
    the training set (fixed by the dataset order, so the same on every run),
    or exactly ``tracked_ids`` (the data samples' ``id``: the annotation id
    for top-down COCO). Each rank appends the scores of the tracked samples
    it sees to ``<work_dir>/afl_difficulty_rank<rank>.jsonl``, one JSON
    object per sample and iteration (``epoch``, ``iter``, ``id``,
    ``img_id``, ``img_path``, ``difficulty``, the applied ``weight``,
    ``labels``, the number of labelled keypoints, and ``error``, the mean
    keypoint distance of the prediction over them (heatmap pixels for a
    heatmap head, input pixels for SimCC and regression heads), ``null``
    without labels; ``base_loss``, the sample's base loss, and
    ``oks_error``, 1 - OKS of its prediction (the difficulty report's
    oracle, mmpose_afl/evaluation/sample_oks.py; ``null`` when the sample's
    ``input_scale`` or annotation ``area`` or the dataset's ``sigmas`` are
    not known)); ``tools/draw_afl_difficulty.py`` draws the paper's figure from
    them and ``tools/afl_difficulty_report.py`` says what the difficulty
    follows.

    Args:
        num_tracked (int): How many training samples to track when
            ``tracked_ids`` is not given; 0 disables tracking.
            Defaults to 16.
        tracked_ids (Sequence[int], optional): Sample ids to track.
            Defaults to ``None``.
    """

    priority = 'NORMAL'  # before LoggerHook (BELOW_NORMAL) logs the iter

    def __init__(self,
                 num_tracked: int = 16,
                 tracked_ids: Optional[Sequence[int]] = None) -> None:
        if num_tracked < 0:
            raise ValueError('AFLCriticHook: `num_tracked` must be >= 0, '
                             f'got {num_tracked}')
        self.num_tracked = num_tracked
        self.tracked_ids = set(tracked_ids) if tracked_ids else None
        self.losses: List[AdversarialFocalLoss] = []

    @staticmethod
    def _find_losses(runner) -> List[AdversarialFocalLoss]:
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        losses = [
            m for m in model.modules() if isinstance(m, AdversarialFocalLoss)
        ]
        if not losses:
            raise ValueError(
                'AFLCriticHook is in `custom_hooks` but the model has no '
                "AFL loss (set model.head.loss=dict(type='AFLHeatmapLoss', "
                "base_loss=...), or 'AFLSimCCLoss' / 'AFLRegressionLoss' "
                'for SimCC / regression heads) or remove the hook')
        bound = set()
        for head in model.modules():
            loss = getattr(head, 'loss_module', None)
            if isinstance(loss, AdversarialFocalLoss):
                loss.bind_head(head)
                bound.add(id(loss))
        for loss in losses:
            if id(loss) not in bound and loss.family != 'heatmap':
                raise ValueError(
                    f'{type(loss).__name__} must be the `loss` of a '
                    f'{loss.family} head (its `loss_module`), where '
                    'AFLCriticHook can check the pairing and read the '
                    'input size; it is nested elsewhere in the model')
        return losses

    def before_run(self, runner) -> None:
        self.losses = self._find_losses(runner)
        device = next(runner.model.parameters()).device
        for loss in self.losses:
            loss.critic.to(device)

    def before_train(self, runner) -> None:
        for loss in self.losses:
            for tensor in loss.critic.state_dict().values():
                broadcast(tensor, src=0)
            loss.attached = True
        if self.tracked_ids is None and self.num_tracked:
            dataset = runner.train_dataloader.dataset
            step = max(1, len(dataset) // self.num_tracked)
            ids = [
                dataset.get_data_info(i)['id']
                for i in range(0, len(dataset), step)
            ]
            self.tracked_ids = set(ids[:self.num_tracked])

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        for index, loss in enumerate(self.losses):
            samples = loss.last_samples
            if samples is None:
                continue
            self._record(runner, data_batch, samples)
            stats = loss.critic_step()
            prefix = 'train/afl_' if index == 0 else f'train/afl{index}_'
            for name, value in stats.items():
                runner.message_hub.update_scalar(prefix + name, value)

    def _record(self, runner, data_batch, samples: Dict) -> None:
        if not self.tracked_ids or not data_batch:
            return
        keys = ('difficulty', 'weight', 'error', 'labels', 'base_loss',
                'offsets')
        values = zip(*(samples[k].tolist() for k in keys))
        sigmas = runner.train_dataloader.dataset.metainfo.get('sigmas')
        records = []
        for sample, (difficulty, weight, error, labels, base_loss,
                     offsets) in zip(data_batch['data_samples'], values):
            meta: Dict = sample.metainfo
            if meta.get('id') in self.tracked_ids:
                records.append(
                    dict(
                        epoch=runner.epoch + 1,
                        iter=runner.iter + 1,
                        id=int(meta['id']),
                        img_id=int(meta.get('img_id', -1)),
                        img_path=meta.get('img_path'),
                        difficulty=difficulty,
                        weight=weight,
                        labels=labels,
                        error=error if labels else None,
                        **sample_oracle(base_loss, offsets, meta, sigmas)))
        if records:
            path = osp.join(runner.work_dir,
                            f'afl_difficulty_rank{get_rank()}.jsonl')
            with open(path, 'a') as f:
                f.writelines(json.dumps(r) + '\n' for r in records)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['afl_critic'] = [
            dict(
                critic=loss.critic.state_dict(),
                optimizer=loss.critic_optimizer.state_dict())
            for loss in self.losses
        ]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        saved = checkpoint.get('afl_critic')
        if not self.losses:  # runner.load_checkpoint() before before_run
            return
        if saved is None:
            runner.logger.warning(
                'AFLCriticHook: the checkpoint has no critic state '
                "(`afl_critic`); the critic starts fresh, so AFL's first "
                'difficulties are uninformative')
            return
        if len(saved) != len(self.losses):
            raise ValueError(
                f'the checkpoint holds {len(saved)} AFL critics, the model '
                f'has {len(self.losses)} AFL losses')
        for loss, state in zip(self.losses, saved):
            loss.critic.load_state_dict(state['critic'])
            loss.critic_optimizer.load_state_dict(state['optimizer'])
