"""Deployment: the slim checkpoint (tools/slim_checkpoint.py) of every
method's short run loads into the stock MMPose model, which exports to
ONNX with ``torch.onnx.export``; ONNX Runtime's outputs (heatmaps, SimCC
vectors, coordinates, AE tags) equal PyTorch's within float tolerance and
decode, through the stock head, to the same keypoints (docs/deployment.md).
The runs are tests/amp_runs.py's (trained once per session)."""
import importlib.util
import inspect

import numpy as np
import pytest
import torch
from mmengine.structures import InstanceData
from mmpose.structures import PoseDataSample
from torch import nn

from tests.amp_runs import METHODS, REPO, amp_run

ort = pytest.importorskip('onnxruntime')
pytest.importorskip('onnx')
# HSM's SigmoidHeatmapHead applies the sigmoid before decoding: its stock
# HeatmapHead decodes the logits (docs/deployment.md)
INFERENCE_CHANGES = {'hsm'}


class TensorOutputs(nn.Module):
    """The stock model from image tensor to the head's raw outputs
    (``mode='tensor'``), what an inference engine runs."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, inputs):
        return self.model(inputs, None, mode='tensor')


def _slim(name, work_dir, out_dir):
    """Slim checkpoint and stock config of the run, by the tool."""
    spec = importlib.util.spec_from_file_location(
        'slim_checkpoint', REPO / 'tools' / 'slim_checkpoint.py')
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    slim = out_dir / 'slim.pth'
    args = [str(work_dir / 'epoch_1.pth'), str(slim)]
    args += ['--allow-inference-change'] * (name in INFERENCE_CHANGES)
    assert tool.main(args) == 0
    return slim, slim.with_suffix('.py')


def _export(model: nn.Module, inputs: torch.Tensor, path) -> None:
    kwargs = dict(
        opset_version=17,
        input_names=['input'],
        dynamic_axes={'input': {
            0: 'batch'
        }})
    if 'dynamo' in inspect.signature(torch.onnx.export).parameters:
        kwargs['dynamo'] = False  # the TorchScript exporter MMDeploy uses
    torch.onnx.export(
        TensorOutputs(model).eval(), (inputs, ), str(path), **kwargs)


def _flat(outputs) -> list:
    if isinstance(outputs, torch.Tensor):
        return [outputs]
    return [t for out in outputs for t in _flat(out)]


def _decode(model, outputs, inputs):
    """Keypoints and scores that the stock head's ``predict`` decodes from
    ``outputs`` (its ``forward`` answers with them), without flip test."""
    head = model.head
    height, width = inputs.shape[2:]
    num = head.out_channels if hasattr(head, 'out_channels') else None
    num = num or model.dataset_meta['num_keypoints']
    meta = dict(
        img_shape=(height, width),
        input_size=(width, height),
        input_center=np.array([width / 2, height / 2]),
        input_scale=np.array([width, height]),
        flip_indices=list(range(num)),
        batch_input_shape=(height, width))
    samples = [
        PoseDataSample(metainfo=meta, gt_instances=InstanceData())
        for _ in range(inputs.shape[0])
    ]
    head.forward = lambda feats: outputs
    test_cfg = dict(model.test_cfg or {}, flip_test=False)
    try:  # a list: the AE head takes one entry per scale
        preds = head.predict(
            list(model.extract_feat(inputs)), samples, test_cfg)
    finally:
        del head.forward
    preds = preds[0] if isinstance(preds, tuple) else preds
    return ([p.keypoints for p in preds], [p.keypoint_scores for p in preds])


@pytest.mark.parametrize('name', list(METHODS))
def test_slim_checkpoint_exports_to_onnx_with_the_same_outputs(
        name, request, tmp_path_factory, tmp_path):
    from mmpose.apis import init_model
    run = amp_run(name, request, tmp_path_factory)
    slim, stock_config = _slim(name, run.work_dir, tmp_path)
    assert 'mmpose_afl' not in stock_config.read_text()
    model = init_model(str(stock_config), str(slim), device='cpu').eval()
    assert not any(
        type(m).__module__.startswith('mmpose_afl') for m in model.modules())
    cfg = model.cfg
    width, height = cfg.codec['input_size'] if 'codec' in cfg else (256, 256)
    torch.manual_seed(0)
    inputs = torch.randn(2, 3, height, width)
    path = tmp_path / f'{name}.onnx'
    _export(model, inputs, path)

    with torch.no_grad():
        expected = TensorOutputs(model).eval()(inputs)
    session = ort.InferenceSession(
        str(path), providers=['CPUExecutionProvider'])
    got = session.run(None, {'input': inputs.numpy()})
    expected_list = _flat(expected)
    assert len(got) == len(expected_list)
    for out, ref in zip(got, expected_list):
        ref = ref.numpy()
        assert out.shape == ref.shape
        scale = max(1.0, float(np.abs(ref).max()))
        np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4 * scale)

    structure = type(expected)
    as_torch = [torch.from_numpy(out) for out in got]
    onnx_outputs = (
        as_torch[0] if structure is torch.Tensor else structure(as_torch))
    with torch.no_grad():
        keypoints, scores = _decode(model, expected, inputs)
        onnx_keypoints, onnx_scores = _decode(model, onnx_outputs, inputs)
    assert len(keypoints) == 2
    # (a barely trained FoWKAL model's 133 maps may have no clear maximum:
    # then the raw outputs above are the comparison)
    clear = _clear_maxima(expected_list, keypoints)
    for i, mask in enumerate(clear):
        for a, b in ((keypoints[i], onnx_keypoints[i]), (scores[i],
                                                         onnx_scores[i])):
            assert a.shape == b.shape
            np.testing.assert_allclose(a[mask], b[mask], rtol=0, atol=1e-3)


def _clear_maxima(outputs, keypoints) -> list:
    """Per sample, the mask of the keypoints ([N, K]) to compare: for a
    top-down heatmap or SimCC head those whose maxima lead the runner-up
    by more than the float tolerance (argmax decoding is only defined up
    to it, and a 2-iteration model has near-flat maps, where 1e-6 moves
    the peak); all of them otherwise (regression, bottom-up grouping)."""
    everything = [np.ones(k.shape[:2], bool) for k in keypoints]
    if any(k.shape[0] != 1 for k in keypoints):
        return everything
    num = keypoints[0].shape[1]
    gaps = []
    for out in outputs:
        flat = out.flatten(2) if out.dim() >= 3 else None
        if flat is None or flat.shape[1] != num or flat.shape[-1] < 2:
            continue
        top2 = flat.topk(2, dim=-1).values
        scale = max(1.0, float(flat.abs().max()))
        # twice the tolerance the outputs are compared with
        gaps.append((top2[..., 0] - top2[..., 1] > 2e-4 * scale).numpy())
    if not gaps:
        return everything
    return list(np.logical_and.reduce(gaps)[:, None, :])
