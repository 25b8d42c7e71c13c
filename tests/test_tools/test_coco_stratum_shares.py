"""tools/coco_stratum_shares.py: people per stratum, counted by hand, on a
tiny hand-written annotation file (crowd, no keypoints, edges exactly on
the thresholds) and on the vendored real COCO annotations."""
import importlib.util
import json
import subprocess
import sys

import pytest

from tests.e2e import REPO


def _tool():
    spec = importlib.util.spec_from_file_location(
        'coco_stratum_shares', REPO / 'tools' / 'coco_stratum_shares.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _person(ann_id,
            image,
            labelled,
            hidden,
            area,
            source='coco_gt',
            iscrowd=0):
    """``labelled`` keypoints, the first ``hidden`` of them ``v = 1``."""
    keypoints = []
    for k in range(17):
        v = 0 if k >= labelled else (1 if k < hidden else 2)
        keypoints += [10. + 5 * k, 20. + 3 * k, v] if v else [0, 0, 0]
    return dict(
        id=ann_id,
        image_id=image,
        category_id=1,
        iscrowd=iscrowd,
        bbox=[5., 5., 100., 100.],
        area=area,
        keypoints=keypoints,
        num_keypoints=labelled,
        area_source=source)


# name: (labelled, v = 1, area, area_source); counted by hand below
PEOPLE = {
    'A': (17, 0, 500., 'coco_gt'),  # none, many, S
    'B': (5, 2, 1024., 'coco_gt'),  # 2/5 heavy, few, S and M (edge)
    'C': (8, 2, 5000., 'estimate'),  # 2/8 = 0.25 some (edge), mid, M
    'D': (11, 0, 9216.5, 'estimate'),  # none, mid (edge 11), L
    'E': (12, 1, 20000., 'estimate'),  # 1/12 some, many, L
    'I': (1, 1, 1e5, 'estimate'),  # 1/1 heavy, few, L
}


@pytest.fixture
def hand_file(tmp_path):
    anns = [
        _person(n + 1, 1 if name != 'I' else 2, *values)
        for n, (name, values) in enumerate(PEOPLE.items())
    ]
    anns.append(_person(20, 1, 0, 0, 300.))  # no labelled keypoint
    anns.append(_person(21, 2, 0, 0, 40000., iscrowd=1))  # crowd region
    images = [
        dict(id=i, file_name=f'{i}.jpg', width=640, height=480) for i in (1, 2)
    ]
    path = tmp_path / 'hand.json'
    path.write_text(
        json.dumps(
            dict(
                images=images,
                annotations=anns,
                categories=[
                    dict(
                        id=1,
                        name='person',
                        supercategory='person',
                        keypoints=[],
                        skeleton=[])
                ])))
    return str(path)


def test_hand_counted_strata(hand_file):
    counts = _tool().stratum_counts(hand_file)
    assert counts['annotations'] == 8
    assert counts['evaluated'] == 6  # not the crowd, not the keypoint-less
    assert counts['strata'] == dict(
        occl_none=2,
        occl_some=2,
        occl_heavy=2,  # A D / C E / B I
        kpts_few=2,
        kpts_mid=2,
        kpts_many=2,  # B I / C D / A E
        # COCO's area ranges include both ends: B (exactly 32^2) is in S
        # and M; D (just above 96^2) in L
        area_S=2,
        area_M=2,
        area_L=3)
    assert counts['by_source']['area_M'] == {'coco_gt': 1, 'estimate': 1}
    assert counts['by_source']['area_L'] == {'estimate': 3}


def test_edges_come_from_the_arguments(hand_file):
    counts = _tool().stratum_counts(
        hand_file,
        heavy_occlusion=0.5,
        keypoint_edges=(4, 8),
        area_edges=(400, 6000))
    strata = counts['strata']
    # B's 0.4 is now "some"; only I (1.0) is heavy
    assert (strata['occl_some'], strata['occl_heavy']) == (3, 1)
    # few: I; mid: B (5), C (8); many: A, D, E
    assert (strata['kpts_few'], strata['kpts_mid'],
            strata['kpts_many']) == (1, 2, 3)
    # S: nobody (A is 500); M: A, B, C; L: D, E, I
    assert (strata['area_S'], strata['area_M'], strata['area_L']) == (0, 3, 3)


def test_real_annotations_vendored_in_the_tests():
    """tests/data/coco/test_coco.json, counted by hand from the file: of 14
    people 12 have keypoints (v = 1 shares 3/14, 4/15, 7/16, 2/15, 1/16,
    the rest 0; 12-17 labelled each; mask areas 1870-27789, the two
    keypoint-less people's 286 and 491 are not counted)."""
    counts = _tool().stratum_counts(
        str(REPO / 'tests' / 'data' / 'coco' / 'test_coco.json'))
    assert counts['evaluated'] == 12
    assert counts['strata'] == dict(
        occl_none=7,
        occl_some=3,
        occl_heavy=2,
        kpts_few=0,
        kpts_mid=0,
        kpts_many=12,
        area_S=0,
        area_M=5,
        area_L=7)
    assert counts['by_source'] == {}


def test_command_line_prints_the_table(hand_file):
    out = subprocess.run([
        sys.executable, 'tools/coco_stratum_shares.py', hand_file, '--markdown'
    ],
                         cwd=REPO,
                         capture_output=True,
                         text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert '6 evaluated by COCO' in out.stdout
    assert '| stratum | people | share | coco_gt | estimate |' in out.stdout
    # 2 of 6 people: 33.3 %; area_L: 3 of 6, all estimates
    assert '| occl_heavy | 2 | 33.3 % | 1 | 1 |' in out.stdout
    assert '| area_L | 3 | 50.0 % | 0 | 3 |' in out.stdout
