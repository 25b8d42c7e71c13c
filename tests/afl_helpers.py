"""What the AFL tests share: a fixed critic in place of a loss's own, and a
critic step as ``AFLCriticHook`` runs it (one ``AFLCriticTrainer`` per loss
and critic)."""
import weakref

from mmpose_afl.engine.afl_critic_trainer import AFLCriticTrainer

_TRAINERS = weakref.WeakKeyDictionary()


def set_critic(loss, critic) -> None:
    """Score with ``critic`` from now on (e.g. a fixed, hand-made one)."""
    loss.critic_ref.module = critic


def trainer_of(loss, **kwargs) -> AFLCriticTrainer:
    """The loss's trainer, built on first use (or for a new critic)."""
    trainer = _TRAINERS.get(loss)
    if trainer is None or trainer.critic is not loss.critic or kwargs:
        trainer = _TRAINERS[loss] = AFLCriticTrainer(loss, **kwargs)
    return trainer


def critic_step(loss):
    """One critic step on the loss's last training batch (``None``
    without one), as AFLCriticHook runs it after an iteration."""
    return trainer_of(loss).step()
