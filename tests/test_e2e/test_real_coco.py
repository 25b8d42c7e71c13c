"""Real COCO photographs and annotations (tests/data/coco: MMPose's own
four COCO val2017 test images, Apache-2.0) through every method:

- every method's synthetic config trains one short ``mim train`` epoch on
  the photographs and validates with the stratified metric;
- the stratified metric's overall values equal stock ``CocoMetric``'s on
  one set of predictions of the real images;
- each trained model, and its slim checkpoint in stock MMPose, runs through
  MMPose's inference API (``init_model`` + ``inference_topdown``, and
  ``MMPoseInferencer``) on a photograph, and the stock visualizer draws it;
- ``mim test --show-dir`` draws the predictions of a trained run.

The four images have people without labelled keypoints, ``v = 1``
keypoints, mask areas and four image sizes, but no crowd region and no
grayscale JPEG: the derived copy each test uses (in a temporary folder)
adds a crowd region (an RLE mask, as COCO stores them) and stores one
photograph as a one-channel JPEG. See docs/real_coco.md.
"""
import copy
import importlib.util
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from xtcocotools import mask as mask_utils

from tests.e2e import (REPO, last_checkpoint, run_test, run_train,
                       short_schedule)

REAL = REPO / 'tests' / 'data' / 'coco'
GRAY = '000000040083.jpg'  # stored as a one-channel JPEG in the copy
PHOTO = '000000197388.jpg'  # inference: five people, colour
CROWD_IMAGE = 197388
CROWD_BOX = (400., 10., 130., 150.)  # x, y, w, h of the added crowd region
CROWD_ID = 900000001
WB_PARTS = (('foot_kpts', 6), ('face_kpts', 68), ('lefthand_kpts', 21),
            ('righthand_kpts', 21))
# method -> (synthetic config, data kind)
METHODS = {
    'baseline': ('configs/baseline/'
                 'td-hm_res18_1xb16-20e_synthetic-coco-128x96.py', 'coco'),
    'afl':
    ('configs/afl/td-hm_res18_afl-1xb16-20e_synthetic-coco-128x96.py', 'coco'),
    'fowkal': ('configs/fowkal/td-hm_res18_fowkal-1xb16-20e_'
               'synthetic-coco-wholebody-128x96.py', 'wholebody'),
    'sahr_wahr':
    ('configs/sahr/'
     'td-hm_res18_sahr-wahr-1xb16-20e_synthetic-coco-128x96.py', 'coco'),
    'hsm':
    ('configs/hsm/td-hm_res18_hsm-1xb16-20e_synthetic-coco-128x96.py', 'coco'),
}
ANN_NAMES = {
    'coco': ('test_coco.json', 'person_keypoints_{}2017.json'),
    'wholebody': ('test_coco_wholebody.json', 'coco_wholebody_{}_v1.0.json'),
}
# people of test_coco.json with labelled keypoints, by stratum (counted by
# hand from the file: v = 1 shares 3/14, 4/15, 7/16, 2/15, 1/16, the rest
# 0; every one has 12-17 labelled keypoints; mask areas 1870-27789)
STRATUM_PEOPLE = dict(
    occl_none=7,
    occl_some=3,
    occl_heavy=2,
    kpts_few=0,
    kpts_mid=0,
    kpts_many=12)


def crowd_annotation(kind: str, height: int, width: int) -> dict:
    """A COCO crowd region: ``iscrowd`` 1, an uncompressed RLE mask (the
    box), no keypoints; WholeBody's part fields empty."""
    mask = np.zeros((height, width), np.uint8, order='F')
    x, y, w, h = map(int, CROWD_BOX)
    mask[y:y + h, x:x + w] = 1
    flat = mask.ravel(order='F')
    changes = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], changes, [flat.size]]))
    counts = ([0] if flat[0] else []) + runs.tolist()
    rle = dict(counts=counts, size=[height, width])
    area = float(mask_utils.area(mask_utils.frPyObjects(rle, height, width)))
    ann = dict(
        id=CROWD_ID,
        image_id=CROWD_IMAGE,
        category_id=1,
        iscrowd=1,
        segmentation=rle,
        area=area,
        bbox=list(CROWD_BOX),
        num_keypoints=0,
        keypoints=[0] * 51)
    if kind == 'wholebody':
        for field, num in WB_PARTS:
            ann[field] = [0.] * (3 * num)
        for part in ('face', 'lefthand', 'righthand'):
            ann[f'{part}_box'] = [0.] * 4
            ann[f'{part}_valid'] = False
        ann['foot_valid'] = False
    return ann


def make_real_root(root: Path, kind: str) -> Path:
    """``root`` laid out as the synthetic configs expect (train2017/,
    val2017/, annotations/), both splits the four real photographs, one of
    them grayscale, annotations with an added crowd region."""
    source, target = ANN_NAMES[kind]
    coco = json.loads((REAL / source).read_text())
    size = {im['id']: (im['height'], im['width']) for im in coco['images']}
    coco['annotations'].append(crowd_annotation(kind, *size[CROWD_IMAGE]))
    (root / 'annotations').mkdir(parents=True)
    for split in ('train', 'val'):
        (root / 'annotations' /
         target.format(split)).write_text(json.dumps(coco))
        images = root / f'{split}2017'
        images.mkdir()
        for im in coco['images']:
            name = im['file_name']
            if name == GRAY:
                gray = cv2.imread(str(REAL / name), cv2.IMREAD_GRAYSCALE)
                assert cv2.imwrite(str(images / name), gray)
            else:
                shutil.copy(REAL / name, images / name)
    return root


def evaluator_options(kind: str) -> list:
    metric = ('StratifiedCocoMetric'
              if kind == 'coco' else 'StratifiedCocoWholeBodyMetric')
    return [f'{split}_evaluator.type={metric}' for split in ('val', 'test')]


def real_options(kind: str) -> list:
    """The stratified evaluator and a batch-2 single-epoch schedule (the
    data options come with ``run_train`` / ``run_test``)."""
    return [
        *evaluator_options(kind), *short_schedule(batch_size=2),
        'val_dataloader.batch_size=4', 'test_dataloader.batch_size=4'
    ]


def scalars(work_dir: Path) -> list:
    (path, ) = Path(work_dir).glob('*/vis_data/scalars.json')
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope='module')
def real_root(tmp_path_factory):
    """``{kind: root}`` of the derived real sets."""
    base = tmp_path_factory.mktemp('real_coco')
    return {kind: make_real_root(base / kind, kind) for kind in ANN_NAMES}


@pytest.fixture(scope='module')
def real_run(tmp_path_factory, real_root):
    """``real_run(method)``: (work dir, config, kind) of one short ``mim
    train`` of the method on the real photographs, run once per module."""
    runs = {}
    base = tmp_path_factory.mktemp('real_coco_runs')

    def run(method):
        if method not in runs:
            config, kind = METHODS[method]
            work_dir = base / method
            log = run_train(
                config,
                work_dir,
                real_root[kind],
                kind,
                cfg_options=real_options(kind))
            runs[method] = (work_dir, config, kind, log)
        return runs[method]

    return run


def test_derived_set_holds_the_cases_real_coco_has(real_root):
    from xtcocotools.coco import COCO
    root = real_root['coco']
    image = cv2.imread(str(root / 'val2017' / GRAY), cv2.IMREAD_UNCHANGED)
    assert image.ndim == 2  # a one-channel JPEG
    coco = COCO(str(root / 'annotations' / 'person_keypoints_val2017.json'))
    anns = list(coco.anns.values())
    crowd = coco.anns[CROWD_ID]
    assert crowd['iscrowd'] == 1
    # the RLE is the box: its decoded mask covers exactly w x h pixels
    assert coco.annToMask(crowd).sum() == 130 * 150 == crowd['area']
    assert sum(a['num_keypoints'] == 0 and not a['iscrowd'] for a in anns) == 2
    assert any(1 in a['keypoints'][2::3] for a in anns)
    sizes = {(im['width'], im['height']) for im in coco.dataset['images']}
    assert len(sizes) == 4


@pytest.mark.parametrize('method', list(METHODS))
def test_method_trains_and_validates_on_real_photographs(method, real_run):
    work_dir, config, kind, log = real_run(method)
    prefix = 'coco' if kind == 'coco' else 'coco-wholebody'
    lines = scalars(work_dir)
    losses = [line['loss'] for line in lines if 'loss' in line]
    # 12 people with keypoints (the crowd and the two people without
    # keypoints are not trained on): 6 iterations of batch 2
    assert len(losses) == 6 and np.all(np.isfinite(losses)), losses
    (val, ) = [line for line in lines if f'{prefix}/AP' in line]
    names = [
        f'AP_{s}' for s in (*STRATUM_PEOPLE, 'area_S', 'area_M', 'area_L')
    ]
    if kind == 'wholebody':
        names += [
            f'{part}_{name}' for part in ('body', 'face', 'hand')
            for name in names[:3]
        ]
    for name in ['AP', 'AR', *names]:
        value = val[f'{prefix}/{name}']
        assert np.isfinite(value) and (value == -1 or 0 <= value <= 1), (name,
                                                                         value)
    # empty strata give COCO's -1, never NaN; the counts are the file's
    assert val[f'{prefix}/AP_kpts_few'] == -1
    assert val[f'{prefix}/AP_area_S'] == -1  # no person under 32^2 area
    counts = log.split('people per stratum ')[1].split('}')[0] + '}'
    for name, number in STRATUM_PEOPLE.items():
        assert f"'{name}': {number}" in counts, counts


def _model_samples(work_dir: Path, config_name: str, checkpoint: Path):
    """The trained model's data samples (as the evaluator receives them)
    and the ground-truth keypoints of every validation instance."""
    from mmengine.config import Config
    from mmengine.dataset import pseudo_collate
    from mmpose.apis import init_model
    from mmpose.registry import DATASETS
    cfg = Config.fromfile(str(work_dir / config_name))
    model = init_model(cfg, str(checkpoint), device='cpu')
    dataset = DATASETS.build(cfg.val_dataloader.dataset)
    samples, gts = [], []
    for start in range(0, len(dataset), 4):
        items = [
            dataset[i] for i in range(start, min(start + 4, len(dataset)))
        ]
        samples += [
            s.to_dict() for s in model.test_step(pseudo_collate(items))
        ]
        gts += [
            dataset.get_data_info(i) for i in range(start, start + len(items))
        ]
    return cfg, samples, gts


def _evaluate(cfg, metric_type, samples, tmp_path, name):
    from mmpose.registry import METRICS
    metric = METRICS.build(
        dict(
            type=metric_type,
            ann_file=cfg.val_evaluator.ann_file,
            outfile_prefix=str(tmp_path / name)))
    metric.dataset_meta = samples_meta(cfg)
    metric.process([], copy.deepcopy(samples))
    return metric.evaluate(len(samples))


def samples_meta(cfg):
    from mmpose.registry import DATASETS
    return DATASETS.build(cfg.val_dataloader.dataset).metainfo


def test_stratified_overall_equals_stock_coco_metric_on_real_images(
        real_run, tmp_path):
    work_dir, config, kind, _ = real_run('baseline')
    cfg, samples, gts = _model_samples(work_dir,
                                       Path(config).name,
                                       last_checkpoint(work_dir))
    assert len(samples) == 12  # the crowd and the keypoint-less skipped
    # the trained model's own predictions, then ground truth moved by an
    # amount that differs per person (0.5-12 % of the box size) with
    # shuffled scores, so that AP is neither 0 nor 1 and scores interleave
    rng = np.random.RandomState(0)
    noisy = copy.deepcopy(samples)
    for n, (sample, gt) in enumerate(zip(noisy, gts)):
        w, h = gt['bbox'][0, 2:] - gt['bbox'][0, :2]
        spread = np.linspace(0.005, 0.12, len(noisy))[n] * np.sqrt(w * h)
        sample['pred_instances']['keypoints'] = (
            gt['keypoints'] + rng.normal(0, spread, gt['keypoints'].shape))
        sample['pred_instances']['keypoint_scores'] = np.full(
            (1, 17), rng.uniform(0.3, 1.0))
    for name, predictions in (('model', samples), ('noisy_gt', noisy)):
        stock = _evaluate(cfg, 'CocoMetric', predictions, tmp_path,
                          f'stock_{name}')
        stratified = _evaluate(cfg, 'StratifiedCocoMetric', predictions,
                               tmp_path, f'stratified_{name}')
        assert set(stock) < set(stratified)
        for key, value in stock.items():
            assert stratified[key] == pytest.approx(value, abs=1e-12), key
        # the area strata are COCO's own area ranges
        assert stratified['coco/AP_area_M'] == pytest.approx(
            stock['coco/AP (M)'])
        assert stratified['coco/AP_area_L'] == pytest.approx(
            stock['coco/AP (L)'])
    assert 0.2 < stock['coco/AP'] < 0.95, stock  # the noisy-GT values


def _slim_tool():
    """tools/slim_checkpoint.py as a module (its ``main``)."""
    spec = importlib.util.spec_from_file_location(
        'slim_checkpoint', REPO / 'tools' / 'slim_checkpoint.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _photo_boxes():
    """(image path, xyxy boxes) of the people with labelled keypoints in
    ``PHOTO``."""
    coco = json.loads((REAL / 'test_coco.json').read_text())
    boxes = [
        a['bbox'] for a in coco['annotations']
        if a['image_id'] == CROWD_IMAGE and a['num_keypoints'] > 0
    ]
    boxes = np.array(boxes, np.float32)
    boxes[:, 2:] += boxes[:, :2]
    return str(REAL / PHOTO), boxes


def _predict(model, image, boxes):
    from mmpose.apis import inference_topdown
    from mmpose.structures import merge_data_samples
    results = inference_topdown(model, image, boxes, 'xyxy')
    return merge_data_samples(results)


def _draw(model, result, image, kpt_thr, out_file=None):
    """The stock visualizer of the model's config drawing ``result`` with
    its heatmaps under the photograph; returns the drawn RGB array."""
    from mmpose.registry import VISUALIZERS
    cfg = copy.deepcopy(model.cfg.visualizer)
    cfg.name = f'real_coco_{id(result)}_{kpt_thr}'
    visualizer = VISUALIZERS.build(cfg)
    visualizer.set_dataset_meta(model.dataset_meta)
    rgb = cv2.imread(image)[..., ::-1].copy()
    visualizer.add_datasample(
        'result',
        rgb,
        data_sample=result,
        draw_gt=False,
        draw_heatmap=True,
        kpt_thr=kpt_thr,
        out_file=out_file)
    return visualizer.get_image(), rgb


def _inside(keypoints, width, height):
    """Which keypoints lie inside the photo, a pixel off its border."""
    return ((keypoints >= 1) & (keypoints < [width - 2, height - 2])).all(-1)


def _assert_drawn_at(drawn, rgb, keypoints):
    """The drawing changed the photo at each keypoint (its circle is
    there), and at least one keypoint is checked."""
    assert len(keypoints)
    for x, y in keypoints.astype(int):
        assert (drawn[y - 1:y + 2, x - 1:x + 2]
                != rgb[y - 1:y + 2, x - 1:x + 2]).any(), (x, y)


@pytest.mark.parametrize('method', list(METHODS))
def test_trained_model_and_slim_checkpoint_infer_on_a_photo(
        method, real_run, tmp_path):
    from mmpose.apis import MMPoseInferencer, init_model
    work_dir, config, kind, _ = real_run(method)
    checkpoint = last_checkpoint(work_dir)
    num = 17 if kind == 'coco' else 133
    image, boxes = _photo_boxes()
    # the user's path: the repository config (custom_imports loads the
    # plugin) and the training checkpoint
    model = init_model(str(REPO / config), str(checkpoint), device='cpu')
    model.test_cfg['output_heatmaps'] = True
    result = _predict(model, image, boxes)
    keypoints = result.pred_instances.keypoints
    scores = result.pred_instances.keypoint_scores
    assert keypoints.shape == (len(boxes), num, 2)
    assert scores.shape == (len(boxes), num) and np.isfinite(scores).all()
    # decoded like a stock head: one heatmap per keypoint (SAHR's scale
    # maps stay inside the head), scores of a sigmoid head in [0, 1]
    assert result.pred_fields.heatmaps.shape[0] == num
    if method == 'hsm':
        assert 0 <= scores.min() and scores.max() <= 1
    # keypoints above the threshold are drawn (circles and links), below
    # it not: a threshold between the scores of the keypoints inside the
    # photo draws a part of them
    rgb = cv2.imread(image)[..., ::-1]
    height, width = rgb.shape[:2]
    inside = _inside(keypoints, width, height)
    thr = float(np.median(scores[inside]))
    out_file = tmp_path / f'{method}_{PHOTO}'
    drawn, _ = _draw(model, result, image, thr, str(out_file))
    nothing, _ = _draw(model, result, image, float(scores.max()) + 1)
    assert drawn.shape == (2 * height, width, 3)  # photo over heatmaps
    _assert_drawn_at(drawn[:height], rgb, keypoints[inside & (scores > thr)])
    assert np.array_equal(nothing[:height], rgb)
    written = cv2.imread(str(out_file))
    assert written.shape == drawn.shape

    # the slim checkpoint in stock MMPose (its stock config)
    slim = tmp_path / 'slim.pth'
    args = [str(checkpoint), str(slim)]
    if method == 'hsm':  # the stock head decodes the logits
        args.append('--allow-inference-change')
    assert _slim_tool().main(args) == 0
    stock_config = slim.with_suffix('.py')
    assert 'mmpose_afl' not in stock_config.read_text()
    stock = init_model(str(stock_config), str(slim), device='cpu')
    stock_result = _predict(stock, image, boxes)
    stock_kpts = stock_result.pred_instances.keypoints
    stock_scores = stock_result.pred_instances.keypoint_scores
    if method == 'hsm':
        # stock scores are the logits of the maxima (the sigmoid keeps the
        # argmax); locations agree where the logit is above 0 (MMPose
        # marks a maximum <= 0 as not found), which after a few
        # iterations may be nowhere
        np.testing.assert_allclose(
            stock_scores, np.log(scores / (1 - scores)), rtol=1e-4, atol=1e-4)
        found = scores > 0.5
        np.testing.assert_allclose(
            stock_kpts[found], keypoints[found], atol=1e-3)
    else:
        np.testing.assert_allclose(stock_kpts, keypoints, atol=1e-3)
        np.testing.assert_allclose(stock_scores, scores, atol=1e-5)
    stock_drawn, _ = _draw(stock, stock_result, image,
                           float(np.median(stock_scores)))
    drawable = (stock_scores > np.median(stock_scores)) & _inside(
        stock_kpts, width, height)
    if method == 'hsm':
        # a maximum MMPose marks as not found is not drawn where it is
        drawable &= scores > 0.5
    if method != 'hsm' or drawable.any():
        _assert_drawn_at(stock_drawn[:height], rgb, stock_kpts[drawable])

    # MMPose's inferencer without a detector: the whole image as the box
    inferencer = MMPoseInferencer(
        pose2d=str(REPO / config),
        pose2d_weights=str(checkpoint),
        det_model='whole_image',
        device='cpu')
    vis_dir = tmp_path / 'inferencer'
    (out, ) = list(
        inferencer(
            image, vis_out_dir=str(vis_dir), kpt_thr=0., return_vis=True))
    (person, ) = out['predictions'][0]
    # it predicts as inference_topdown on the whole image's box
    whole = _predict(model, image, np.array([[0, 0, width, height]],
                                            np.float32))
    np.testing.assert_allclose(
        person['keypoints'], whole.pred_instances.keypoints[0], atol=1e-3)
    np.testing.assert_allclose(
        person['keypoint_scores'],
        whole.pred_instances.keypoint_scores[0],
        atol=1e-5)
    assert cv2.imread(str(vis_dir / PHOTO)).shape == (height, width, 3)
    # and draws them: the box padded to the model's aspect ratio reaches
    # beyond the photo, so after a few iterations every keypoint may lie
    # outside it; one inside changes the photo, none near it (10 px, over
    # the circles' radius) leaves it as it was
    xy = np.array(person['keypoints'])
    unchanged = np.array_equal(out['visualization'][0], rgb)
    inside = ((xy >= 0) & (xy < [width, height])).all(axis=1)
    near = ((xy > -10) & (xy < [width + 10, height + 10])).all(axis=1)
    assert not (inside.any() and unchanged)
    assert near.any() or unchanged


def test_mim_test_show_dir_draws_real_predictions(real_run, real_root,
                                                  tmp_path):
    work_dir, config, kind, _ = real_run('sahr_wahr')
    log = run_test(
        config,
        last_checkpoint(work_dir),
        tmp_path,
        real_root[kind],
        kind,
        cfg_options=real_options(kind) + [
            'default_hooks.visualization.kpt_thr=0.0',
            'model.test_cfg.output_heatmaps=True'
        ],
        extra_args=['--show-dir', 'shown'])
    assert 'coco/AP_occl_heavy' in log
    drawn = sorted(tmp_path.glob('*/shown/*.jpg'))
    assert len(drawn) == 12  # one per person with keypoints
    for path in drawn:
        image = cv2.imread(str(path))
        original = cv2.imread(
            str(REAL / (path.name.rsplit('_', 1)[0] + '.jpg')))
        height, width = original.shape[:2]
        # the photograph with the prediction drawn, over its heatmaps
        assert image.shape == (2 * height, width, 3)
        assert np.abs(image[:height].astype(int) -
                      original).max() > 100, path.name


def test_pose_local_visualizer_draws_keypoints():
    """The visualizer call that numpy >= 2.3 breaks inside MMPose 1.3.2
    (``int()`` of a one-element radius array): keypoints of score 0.9 are
    drawn as circles."""
    from mmengine.structures import InstanceData
    from mmpose.datasets.datasets.utils import parse_pose_metainfo
    from mmpose.structures import PoseDataSample
    from mmpose.visualization import PoseLocalVisualizer
    visualizer = PoseLocalVisualizer(
        name='real_coco_circles', radius=3, line_width=1)
    visualizer.set_dataset_meta(
        parse_pose_metainfo(dict(from_file='configs/_base_/datasets/coco.py')))
    sample = PoseDataSample()
    instances = InstanceData()
    instances.keypoints = np.array([[[20. + 10 * (k % 6), 20. + 20 * (k // 6)]
                                     for k in range(17)]])
    instances.keypoint_scores = np.full((1, 17), 0.9)
    sample.pred_instances = instances
    image = np.zeros((100, 100, 3), np.uint8)
    drawn = visualizer.add_datasample(
        'circles', image, sample, draw_gt=False, skeleton_style='mmpose')
    # every keypoint's centre is painted
    for x, y in instances.keypoints[0].astype(int):
        assert drawn[y, x].any(), (x, y)
