"""tools/slim_checkpoint.py on checkpoints of real short ``mim train`` runs:
the slim checkpoint loads strictly into the stock MMPose model, in a process
where ``mmpose_afl`` cannot be imported, and predicts exactly what the
trained model predicts."""
import importlib.util
import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from mmengine.config import Config

from tests.e2e import REPO, last_checkpoint
from tests.trained_runs import trained

# state-dict entries that only training uses: the loss's own parameters and
# buffers (KAL factors, running means) and the SAHR scale branch
TRAINING_ONLY = ('head.loss_module.', 'head.scale_layers.')
# (config, dataset) of each method whose slim checkpoint must predict the
# same in stock MMPose: AFL (critic in the checkpoint, hook in the config),
# FoWKAL (learned factors, per-part metric) and SAHR (scale branch, head)
SAME_PREDICTIONS = {
    'afl':
    ('configs/afl/td-hm_res18_afl-1xb16-20e_synthetic-coco-128x96.py', 'coco'),
    'fowkal': ('configs/fowkal/td-hm_res18_fowkal-1xb16-20e_'
               'synthetic-coco-wholebody-128x96.py', 'wholebody'),
    'sahr':
    ('configs/sahr/'
     'td-hm_res18_sahr-wahr-1xb16-20e_synthetic-coco-128x96.py', 'coco'),
}
HSM = 'configs/hsm/td-hm_res18_hsm-1xb16-20e_synthetic-coco-128x96.py'


def _tool():
    spec = importlib.util.spec_from_file_location(
        'slim_checkpoint', REPO / 'tools' / 'slim_checkpoint.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _trained(request, tmp_path_factory, config, kind):
    """Work dir of the shared 1-epoch run of ``config`` and its data."""
    data_root = request.getfixturevalue(f'synthetic_{kind}')
    return trained(config, tmp_path_factory, data_root, kind), data_root


def _val_boxes(data_root, kind):
    """(image path, xyxy box) of each validation annotation."""
    name = ('person_keypoints_val2017.json'
            if kind == 'coco' else 'coco_wholebody_val_v1.0.json')
    coco = json.loads((data_root / 'annotations' / name).read_text())
    files = {im['id']: im['file_name'] for im in coco['images']}
    return [(str(data_root / 'val2017' / files[a['image_id']]), [
        a['bbox'][0], a['bbox'][1], a['bbox'][0] + a['bbox'][2],
        a['bbox'][1] + a['bbox'][3]
    ]) for a in coco['annotations']]


# Inference with the stock config and the slim checkpoint in a fresh
# interpreter that cannot import mmpose_afl.
STOCK_INFERENCE = """
import json, sys
import numpy as np, torch
sys.modules['mmpose_afl'] = None  # any import of the plugin fails
from mmpose.apis import inference_topdown, init_model
config, checkpoint, boxes, out = sys.argv[1:]
model = init_model(config, None, device='cpu')
slim = torch.load(checkpoint, map_location='cpu', weights_only=False)
model.load_state_dict(slim['state_dict'], strict=True)
model.dataset_meta = slim['meta']['dataset_meta']
keypoints, scores = [], []
for image, box in json.loads(boxes):
    (result, ) = inference_topdown(model, image, np.array([box]), 'xyxy')
    keypoints.append(result.pred_instances.keypoints)
    scores.append(result.pred_instances.keypoint_scores)
np.savez(out, keypoints=np.stack(keypoints), scores=np.stack(scores))
"""


def _stock_predictions(stock_config, slim_path, boxes, tmp_path):
    out = tmp_path / 'stock_predictions.npz'
    proc = subprocess.run([
        sys.executable, '-c', STOCK_INFERENCE,
        str(stock_config),
        str(slim_path),
        json.dumps(boxes),
        str(out)
    ],
                          capture_output=True,
                          text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-4000:]
    found = np.load(out)
    return found['keypoints'], found['scores']


def _trained_predictions(checkpoint, boxes):
    """Predictions of the model as trained (with the plugin), from the
    training config stored in the checkpoint, loaded strictly."""
    from mmpose.apis import inference_topdown, init_model
    ckpt = torch.load(checkpoint, map_location='cpu', weights_only=False)
    cfg = Config.fromstring(ckpt['meta']['cfg'], file_format='.py')
    model = init_model(cfg, None, device='cpu')
    model.load_state_dict(ckpt['state_dict'], strict=True)
    model.dataset_meta = ckpt['meta']['dataset_meta']
    keypoints, scores = [], []
    for image, box in boxes:
        (result, ) = inference_topdown(model, image, np.array([box]), 'xyxy')
        keypoints.append(result.pred_instances.keypoints)
        scores.append(result.pred_instances.keypoint_scores)
    return np.stack(keypoints), np.stack(scores)


def _types(node):
    if isinstance(node, dict):
        if isinstance(node.get('type'), str):
            yield node['type']
        for value in node.values():
            yield from _types(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _types(value)


def _assert_stock(stock_config):
    from mmpose.registry import DATASETS, HOOKS, METRICS, MODELS, TRANSFORMS

    import mmpose_afl  # noqa: F401
    text = stock_config.read_text()
    assert 'mmpose_afl' not in text
    for name in _types(Config.fromfile(stock_config).to_dict()):
        for registry in (MODELS, HOOKS, METRICS, TRANSFORMS, DATASETS):
            cls = registry.get(name)
            assert cls is None or not cls.__module__.startswith(
                'mmpose_afl'), f'{name} in the stock config is ours'


@pytest.mark.parametrize('method', sorted(SAME_PREDICTIONS))
def test_slim_checkpoint_predicts_the_same_in_stock_mmpose(
        method, request, tmp_path, tmp_path_factory, capsys):
    config, kind = SAME_PREDICTIONS[method]
    work_dir, data_root = _trained(request, tmp_path_factory, config, kind)
    checkpoint = last_checkpoint(work_dir)
    slim_path = tmp_path / 'slim.pth'

    assert _tool().main([str(checkpoint), str(slim_path)]) == 0
    report = capsys.readouterr().out

    original = torch.load(checkpoint, map_location='cpu', weights_only=False)
    slim = torch.load(slim_path, map_location='cpu', weights_only=False)
    assert set(slim) == {'meta', 'state_dict'}
    for key in set(original) - {'meta', 'state_dict'}:
        assert f'removed checkpoint[{key!r}]' in report
    # exactly the training-only entries are gone; the rest is unchanged
    dropped = set(original['state_dict']) - set(slim['state_dict'])
    assert dropped == {
        k
        for k in original['state_dict'] if k.startswith(TRAINING_ONLY)
    }
    if method == 'afl':
        assert 'afl_critic' in original and not dropped
    else:  # the KAL factors and running means; the scale branch
        assert dropped
    for name, tensor in slim['state_dict'].items():
        assert torch.equal(tensor, original['state_dict'][name]), name
    assert slim['meta']['dataset_meta'] is not None
    assert pickle.dumps(slim['meta']['dataset_meta']) == pickle.dumps(
        original['meta']['dataset_meta'])

    stock_config = tmp_path / 'slim.py'
    _assert_stock(stock_config)
    boxes = _val_boxes(data_root, kind)
    stock_kpts, stock_scores = _stock_predictions(stock_config, slim_path,
                                                  boxes, tmp_path)
    kpts, scores = _trained_predictions(checkpoint, boxes)
    np.testing.assert_array_equal(stock_kpts, kpts)
    np.testing.assert_array_equal(stock_scores, scores)


def test_sahr_loses_its_scale_branch_and_wahr_loss(request, tmp_path,
                                                   tmp_path_factory, capsys):
    work_dir, _ = _trained(request, tmp_path_factory,
                           *SAME_PREDICTIONS['sahr'])
    assert _tool().main(
        [str(last_checkpoint(work_dir)),
         str(tmp_path / 'slim.pth')]) == 0
    report = capsys.readouterr().out
    assert 'cfg.model.head: SAHRHead -> HeatmapHead' in report
    assert 'cfg.model.head.loss: WAHRLoss -> KeypointMSELoss' in report
    stock = Config.fromfile(tmp_path / 'slim.py')
    assert stock.model.head.type == 'HeatmapHead'
    assert stock.model.head.loss == dict(
        type='KeypointMSELoss', use_target_weight=True)
    assert 'custom_imports' not in stock
    slim = torch.load(tmp_path / 'slim.pth', weights_only=False)
    assert not any('scale_layers' in k for k in slim['state_dict'])
    assert any('scale_layers' in k for k in torch.load(
        last_checkpoint(work_dir), weights_only=False)['state_dict'])


def test_a_head_that_decodes_differently_is_refused(tmp_path, tmp_path_factory,
                                                    synthetic_coco, capsys):
    work_dir = trained(HSM, tmp_path_factory, synthetic_coco)
    checkpoint = last_checkpoint(work_dir)
    slim_path = tmp_path / 'slim.pth'

    assert _tool().main([str(checkpoint), str(slim_path)]) == 2
    err = capsys.readouterr().err
    assert 'SigmoidHeatmapHead overrides predict, decode' in err
    assert '--allow-inference-change' in err
    assert not slim_path.exists()

    # forced: it loads, but the stock head decodes the logits that the
    # plugin head decodes after a sigmoid: the scores are not the same
    # (the plugin's are their sigmoid), and locations agree only where the
    # logit maximum is positive (MMPose marks the others -1; after one epoch
    # there may be none)
    assert _tool().main(
        [str(checkpoint),
         str(slim_path), '--allow-inference-change']) == 0
    boxes = _val_boxes(synthetic_coco, 'coco')
    stock_kpts, stock_scores = _stock_predictions(tmp_path / 'slim.py',
                                                  slim_path, boxes, tmp_path)
    kpts, scores = _trained_predictions(checkpoint, boxes)
    assert not np.allclose(stock_scores, scores)
    np.testing.assert_allclose(
        scores, 1 / (1 + np.exp(-stock_scores)), rtol=1e-5)
    positive = stock_scores > 0
    np.testing.assert_array_equal(stock_kpts[positive], kpts[positive])


def test_bad_input_is_a_clear_error(tmp_path, capsys):
    not_a_checkpoint = tmp_path / 'weights.pth'
    torch.save({'weights': torch.zeros(1)}, not_a_checkpoint)
    assert _tool().main([str(not_a_checkpoint),
                         str(tmp_path / 'out.pth')]) == 2
    assert 'no "state_dict" key' in capsys.readouterr().err

    assert _tool().main(
        [str(tmp_path / 'missing.pth'),
         str(tmp_path / 'out.pth')]) == 2
    assert 'missing.pth' in capsys.readouterr().err

    assert _tool().main([str(not_a_checkpoint), str(tmp_path / 'out.py')]) == 2
    assert 'must not end in .py' in capsys.readouterr().err
