"""The hook that owns the AFL critics: their training every iteration (Alg. 2
of the AFL paper), optimizer and schedulers, DDP consistency, checkpoint
state and logged scalars, for the AFL loss of any head family. See
``docs/afl.md``."""
from typing import List, Optional, Sequence, Union

from mmengine.dist import broadcast
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmpose.registry import HOOKS

from mmpose_afl.engine.afl_critic_trainer import AFLCriticTrainer
from mmpose_afl.models.losses.afl_loss import AdversarialFocalLoss
from .afl_difficulty_recorder import AFLDifficultyRecorder


@HOOKS.register_module()
class AFLCriticHook(Hook):
    """Train the critic of every AFL loss (``AFLHeatmapLoss``,
    ``AFLSimCCLoss``, ``AFLRegressionLoss``) in the model after each
    training iteration, as ``EMAHook`` owns its averaged model.

    The critic is deliberately not a submodule of the pose model: the pose
    optimizer never touches it and DDP does not wait for its gradients.
    This hook

    - ``before_run``: finds the AFL losses, binds each to its head (the
      head's family and K checked, e.g. no SimCC AFL loss under a heatmap
      head, an error naming both before any step; a regression head's input
      size read), moves the critics to the model's device and builds, per
      critic, an :class:`AFLCriticTrainer` (optimizer wrapper and
      schedulers);
    - ``before_train``: broadcasts the critic weights from rank 0 and
      aligns gradient accumulation with the run's iteration;
    - ``after_train_iter``: one critic step per loss; logs what it returns
      as ``train/afl_*`` scalars (critic loss, Wasserstein estimate,
      gradient penalty and ``afl_gp_grad_norm``, drift, the real and fake
      score ranges and ``afl_score_offset``, the difficulty mean / min /
      max, ``afl_ess``, ``afl_nonfinite_samples``,
      ``afl_skipped_critic_steps``, ``afl_nonfinite_steps``) and the
      critic's learning rate ``afl_critic_lr``; a second AFL loss logs as
      ``afl1_*``. Then steps the iteration-based critic schedulers;
    - ``before_save_checkpoint`` / ``after_load_checkpoint``: saves and
      restores each critic, its optimizer and schedulers under
      ``checkpoint['afl_critic']``, so ``--resume`` continues exactly. A
      checkpoint without them (a stock MMPose one as ``load_from``) leaves
      the critic fresh, with a warning.

    Per-sample diagnostics (:class:`AFLDifficultyRecorder`: the tracked
    samples' difficulty, error and OKS error for
    ``tools/draw_afl_difficulty.py`` and ``tools/afl_difficulty_report.py``)
    run only when ``num_tracked`` or ``tracked_ids`` is given.

    Args:
        optim_wrapper (dict, optional): Optimizer-wrapper config of the
            critics (e.g. ``dict(optimizer=dict(type='Adam', lr=1e-4),
            clip_grad=dict(max_norm=1.))``); without ``optimizer``, each
            loss's ``critic_optimizer``; without ``accumulative_counts``,
            the pose ``optim_wrapper``'s, so the critic updates when the
            pose model does. Defaults to ``None``
        param_scheduler (dict | Sequence[dict], optional): Scheduler(s) of
            the critics' learning rate. Defaults to ``None`` (constant)
        num_tracked (int): How many training samples to record without
            ``tracked_ids``; 0 records none. Defaults to 0
        tracked_ids (Sequence[int], optional): Sample ids to record.
            Defaults to ``None``
    """

    priority = 'NORMAL'  # before LoggerHook (BELOW_NORMAL) logs the iter

    def __init__(self,
                 optim_wrapper: Optional[dict] = None,
                 param_scheduler: Union[dict, Sequence[dict], None] = None,
                 num_tracked: int = 0,
                 tracked_ids: Optional[Sequence[int]] = None) -> None:
        if not (isinstance(num_tracked, int) and num_tracked >= 0):
            raise ValueError('AFLCriticHook: `num_tracked` must be an int '
                             f'>= 0, got {num_tracked!r}')
        if optim_wrapper is not None and not isinstance(optim_wrapper, dict):
            raise ValueError('AFLCriticHook: `optim_wrapper` must be an '
                             'optimizer-wrapper config, e.g. dict(optimizer='
                             "dict(type='Adam', lr=1e-4)), got "
                             f'{optim_wrapper!r}')
        self.optim_wrapper = optim_wrapper
        self.param_scheduler = param_scheduler
        self.recorder = AFLDifficultyRecorder(
            num_tracked, tracked_ids) if num_tracked or tracked_ids else None
        self.trainers: List[AFLCriticTrainer] = []

    @staticmethod
    def _bound_losses(runner) -> List[AdversarialFocalLoss]:
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
            family = loss.adapter.family
            if id(loss) not in bound and family != 'heatmap':
                raise ValueError(
                    f'{type(loss).__name__} must be the `loss` of a '
                    f'{family} head (its `loss_module`), where '
                    'AFLCriticHook can check the pairing and read the '
                    'input size; it is nested elsewhere in the model')
        return losses

    def before_run(self, runner) -> None:
        device = next(runner.model.parameters()).device
        wrapper = dict(self.optim_wrapper or {})
        pose = runner.cfg.get('optim_wrapper') or {}
        if 'accumulative_counts' in pose:
            wrapper.setdefault('accumulative_counts',
                               pose['accumulative_counts'])
        self.trainers = []
        for loss in self._bound_losses(runner):
            loss.critic.to(device)
            self.trainers.append(
                AFLCriticTrainer(loss, wrapper, self.param_scheduler))

    def before_train(self, runner) -> None:
        for trainer in self.trainers:
            for tensor in trainer.critic.state_dict().values():
                broadcast(tensor, src=0)
            steps = trainer.loss.n_critic
            trainer.optim_wrapper.initialize_count_status(
                trainer.critic, runner.iter * steps, runner.max_iters * steps)
        if self.recorder is not None:
            self.recorder.start(runner)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        for index, trainer in enumerate(self.trainers):
            if self.recorder is not None:
                self.recorder.record(runner, data_batch, trainer.loss)
            prefix = 'train/afl_' if index == 0 else f'train/afl{index}_'
            runner.message_hub.update_scalar(prefix + 'critic_lr', trainer.lr)
            stats = trainer.step()
            for name, value in (stats or {}).items():
                runner.message_hub.update_scalar(prefix + name, value)
            trainer.step_schedulers(by_epoch=False)

    def after_train_epoch(self, runner) -> None:
        for trainer in self.trainers:
            trainer.step_schedulers(by_epoch=True)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['afl_critic'] = [t.state_dict() for t in self.trainers]

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        saved = checkpoint.get('afl_critic')
        if not self.trainers:  # runner.load_checkpoint() before before_run
            return
        if saved is None:
            runner.logger.warning(
                'AFLCriticHook: the checkpoint has no critic state '
                "(`afl_critic`); the critic starts fresh, so AFL's first "
                'difficulties are uninformative')
            return
        if len(saved) != len(self.trainers):
            raise ValueError(
                f'the checkpoint holds {len(saved)} AFL critics, the model '
                f'has {len(self.trainers)} AFL losses')
        for trainer, state in zip(self.trainers, saved):
            trainer.load_state_dict(state)
