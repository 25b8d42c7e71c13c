"""The project's scalars reach TensorBoard: the short AFL and FoWKAL runs
of tests/amp_runs.py log through MMEngine's ``TensorboardVisBackend``, and
the event file, read back with TensorBoard's own reader, holds the AFL
difficulty, weight and critic scalars, the critic's learning rate and the
KAL factors of every part, one finite value per iteration."""
import math
from pathlib import Path

import pytest

from tests.amp_runs import amp_run

event_accumulator = pytest.importorskip(
    'tensorboard.backend.event_processing.event_accumulator')

AFL_SCALARS = {
    'afl_difficulty_mean', 'afl_difficulty_min', 'afl_difficulty_max',
    'afl_ess', 'afl_critic_loss', 'afl_wasserstein', 'afl_gradient_penalty',
    'afl_score_real_mean', 'afl_score_fake_mean', 'afl_critic_lr'
}
KAL_SCALARS = {
    'kaf_body', 'kaf_foot', 'kaf_face', 'kaf_left_hand', 'kaf_right_hand'
}


def _tensorboard_scalars(work_dir: Path) -> dict:
    """name -> the values of every scalar in the run's event file."""
    (events, ) = Path(work_dir).glob('*/vis_data/events.out.tfevents.*')
    reader = event_accumulator.EventAccumulator(str(events.parent))
    reader.Reload()
    return {
        tag: [event.value for event in reader.Scalars(tag)]
        for tag in reader.Tags()['scalars']
    }


@pytest.mark.parametrize('name,expected', [('afl', AFL_SCALARS),
                                           ('fowkal', KAL_SCALARS)])
def test_method_scalars_are_in_the_tensorboard_events(name, expected, request,
                                                      tmp_path_factory):
    scalars = _tensorboard_scalars(
        amp_run(name, request, tmp_path_factory).work_dir)
    assert expected - set(scalars) == set(), sorted(scalars)
    for tag in expected | {'loss', 'lr'}:
        assert len(scalars[tag]) == 2  # one per iteration
        assert all(map(math.isfinite, scalars[tag])), (tag, scalars[tag])
    if name == 'afl':
        assert scalars['afl_critic_lr'] == pytest.approx([1e-4] * 2)
        assert all(0 < ess <= 1 for ess in scalars['afl_ess'])
    else:
        assert all(0 < f < 1 for tag in KAL_SCALARS for f in scalars[tag])
