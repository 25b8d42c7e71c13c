"""The AFL tools: complete ``--help`` for both, and the difficulty report's
statistics against hand-computed values on a hand-made work dir."""
import importlib.util
import json
import math
import subprocess
import sys

import pytest

from tests.e2e import REPO

TOOLS = ('draw_afl_difficulty', 'afl_difficulty_report')


def _tool(name):
    spec = importlib.util.spec_from_file_location(
        name, REPO / 'tools' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('name', TOOLS)
def test_help_documents_every_option(name):
    proc = subprocess.run([sys.executable, f'tools/{name}.py', '--help'],
                          cwd=REPO,
                          capture_output=True,
                          text=True)
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    module = _tool(name)
    # the whole description, to its last sentence
    for line in module.__doc__.strip().splitlines():
        assert line.strip() in text, line
    actions = [a for a in module.build_parser()._actions if a.dest != 'help']
    if name == 'draw_afl_difficulty':
        assert {'--num', '--out', '--device', '--config', '--checkpoint'
                } <= {s
                      for a in actions
                      for s in a.option_strings}
    for action in actions:
        assert action.help and len(action.help) > 10, action.dest
        for option in action.option_strings or [action.dest.upper()]:
            assert option in text, option


# ------------------------------------------------------------ the report
def test_rank_statistics_by_hand():
    report = _tool('afl_difficulty_report')
    x, y = [1, 2, 3, 4, 5], [1, 3, 2, 5, 4]
    z = [17, 17, 10, 10, 5]  # ranks 4.5 4.5 2.5 2.5 1
    # centred ranks: x (-2,-1,0,1,2), y (-2,0,-1,2,1), z (1.5,1.5,-.5,-.5,-2)
    r_xy, r_xz, r_yz = 8 / 10, -9 / math.sqrt(90), -5.5 / math.sqrt(90)
    assert report.spearman(x, y) == pytest.approx(r_xy)
    assert report.spearman(x, z) == pytest.approx(r_xz)
    # the textbook first-order partial correlation of the ranks
    partial = (r_xy - r_xz * r_yz) / math.sqrt((1 - r_xz**2) * (1 - r_yz**2))
    assert report.partial_spearman(x, y, z) == pytest.approx(partial)
    # a constant control changes nothing; undefined cases are None
    assert report.partial_spearman(x, y, [3] * 5) == pytest.approx(r_xy)
    assert report.spearman(x, [1] * 5) is None
    assert report.spearman([1, 2], [2, 1]) is None


def test_roc_auc_by_hand():
    auc = _tool('afl_difficulty_report').roc_auc
    # positives .2 .3 .5 vs negatives .1 .4: 4 of 6 pairs ordered
    assert auc([.1, .2, .3, .4, .5], [0, 1, 1, 0, 1]) == pytest.approx(4 / 6)
    assert auc([.5, .5, .1], [1, 0, 0]) == pytest.approx(0.75)  # tie: 1/2
    assert auc([.1, .2], [1, 1]) is None


def _hand_made_work_dir(root):
    """Five tracked samples (+ one without labels) whose last-epoch values
    are the hand examples above; epoch 1 says the opposite and must not
    count."""
    work_dir = root / 'work_dir'
    (root / 'annotations').mkdir(parents=True)
    work_dir.mkdir()
    flags = {
        1: [],
        2: ['occluded'],
        3: ['small'],
        4: [],
        5: ['occluded', 'truncated'],
        6: []
    }
    (root / 'annotations' / 'train.json').write_text(
        json.dumps(
            dict(annotations=[  # as the generator stores them
                dict(
                    id=i,
                    difficulty={
                        name: name in f
                        for name in ('occluded', 'truncated', 'unusual_pose',
                                     'small')
                    }) for i, f in flags.items()
            ])))
    (work_dir / 'config.py').write_text(
        f"train_dataloader = dict(dataset=dict(data_root='{root}/', "
        "ann_file='annotations/train.json'))\n")
    last = dict(
        zip(
            range(1, 6),
            zip([.1, .2, .3, .4, .5], [1, 3, 2, 5, 4], [17, 17, 10, 10, 5])))
    ranks = ([], [])
    for epoch in (1, 2):
        for sample_id, (difficulty, error, labels) in last.items():
            if epoch == 1:  # the reverse order
                difficulty, error = 1 - difficulty, -error
            record = dict(
                epoch=epoch,
                iter=epoch * 10 + sample_id,
                id=sample_id,
                difficulty=difficulty,
                error=error,
                labels=labels)
            ranks[sample_id % 2].append(record)
        ranks[0].append(
            dict(
                epoch=epoch,
                iter=epoch * 10,
                id=6,
                difficulty=.9,
                error=None,
                labels=0))
    for rank, records in enumerate(ranks):
        (work_dir / f'afl_difficulty_rank{rank}.jsonl').write_text(''.join(
            json.dumps(r) + '\n' for r in records))
    return work_dir


def test_report_on_a_hand_made_work_dir(tmp_path):
    work_dir = _hand_made_work_dir(tmp_path)
    proc = subprocess.run(
        [sys.executable, 'tools/afl_difficulty_report.py',
         str(work_dir)],
        cwd=REPO,
        capture_output=True,
        text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((work_dir / 'afl_difficulty_report.json').read_text())
    r_xy, r_xz, r_yz = 0.8, -9 / math.sqrt(90), -5.5 / math.sqrt(90)
    assert result['samples'] == 5  # sample 6 has no labels
    assert result['spearman_labels'] == pytest.approx(r_xz)
    assert result['spearman_error'] == pytest.approx(r_xy)
    assert result['partial_spearman_error'] == pytest.approx(
        (r_xy - r_xz * r_yz) / math.sqrt((1 - r_xz**2) * (1 - r_yz**2)))
    # clean: 1 (.1), 4 (.4); see test_roc_auc_by_hand
    auc = result['auc']
    assert auc['any'] == dict(
        auc=pytest.approx(4 / 6), positives=3, negatives=2)
    assert auc['occluded']['auc'] == pytest.approx(3 / 4)  # .2, .5
    assert auc['truncated']['auc'] == 1.0 and auc['small']['auc'] == 0.5
    assert auc['unusual_pose'] == dict(auc=None, positives=0, negatives=2)
    assert 'AUC any' in proc.stdout and 'n/a' in proc.stdout
    # both epochs: the means of opposite orders are constant -> undefined
    both = _tool('afl_difficulty_report').report(work_dir, last_epochs=2)
    assert both['spearman_error'] is None and both['auc'] is None
    assert both['samples'] == 5
