"""Reseed every random generator just before the runner initialises the
weights, so that methods built from different modules start alike."""
from mmengine.hooks import Hook
from mmengine.runner import set_random_seed
from mmpose.registry import HOOKS


@HOOKS.register_module()
class ReseedBeforeInitHook(Hook):
    """Set Python's, NumPy's and torch's seeds to the runner's seed again in
    ``before_run``, which MMEngine's ``Runner.train`` calls right before
    ``init_weights()``.

    ``randomness.seed`` seeds the generators before the model is built, so
    any module a method adds (a SAHR branch) draws random numbers during
    construction and shifts the stream from
    which the shared layers (the head's deconvolutions, initialised by
    ``init_weights``) and the data augmentation (NumPy's global generator
    with ``num_workers=0``) then draw: with the same seed, MSE and AFL
    started from different head weights and saw different augmentations.
    Reseeding here gives them the same; a method's own initialisation
    (e.g. SigmoidHeatmapHead's prior bias) is still applied by its
    ``init_weights``. The sampler's order depends on the seed only
    (MMEngine's ``DefaultSampler``), and loader workers are seeded from it.
    The lowest priority runs it after every other hook's ``before_run``.

    Args:
        priority (str): Hook priority. Defaults to ``'LOWEST'``.
    """

    def __init__(self, priority: str = 'LOWEST') -> None:
        self.priority = priority

    def before_run(self, runner) -> None:
        if runner.seed is None:
            raise ValueError('ReseedBeforeInitHook needs randomness.seed in '
                             'the config, got None')
        set_random_seed(runner.seed, deterministic=runner.deterministic)
