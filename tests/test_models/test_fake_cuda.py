"""CUDA device placement without a GPU: the training loss (``head.loss()``
with the AFL critics' scores and topologies inside), ``head.predict()`` and
the topology / centroid / OKS helpers of every module the project
registers run on PyTorch's ``FakeTensorMode`` with ``cuda`` tensors; a
tensor created on the CPU and met with a CUDA one raises
``FakeTensorDeviceMismatchError``, which fails the test."""
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode
from torch.overrides import TorchFunctionMode

from tests.amp_runs import METHODS, REPO

CUDA = torch.device('cuda', 0)
# every config family: the methods, the loss-weighted peer and the
# bottom-up baseline (MaskedAEHead)
CONFIGS = dict(
    METHODS, **{
        'loss-weighted':
        ('configs/loss_weighted/td-hm_res18_loss-weighted-'
         '1xb16-20e_synthetic-coco-128x96.py', 'synthetic_coco'),
        'ae-bottom-up': ('configs/baseline/ae_res18_1xb8-40e_synthetic-coco-'
                         'multi-scale-256x256.py', 'multi_scale_coco'),
    })


def _build(config: str):
    """The model of ``config`` (eager, plain CPU tensors)."""
    from mmpose.registry import MODELS
    init_default_scope('mmpose')
    return MODELS.build(Config.fromfile(str(REPO / config)).model)


def _critics(model: nn.Module) -> list:
    """The AFL critics: attributes of the losses, not submodules."""
    return [
        module.critic for module in model.modules()
        if isinstance(getattr(module, 'critic', None), nn.Module)
    ]


def _to_fake_cuda(module: nn.Module, mode: FakeTensorMode) -> None:
    """Replace every parameter and buffer of ``module`` by a fake CUDA
    tensor of the same shape (``Module.to`` cannot swap in fake tensors)."""
    for sub in module.modules():
        for name, param in list(sub._parameters.items()):
            if param is not None:
                sub._parameters[name] = nn.Parameter(
                    mode.from_tensor(param).to(CUDA), param.requires_grad)
        for name, buffer in list(sub._buffers.items()):
            if buffer is not None:
                sub._buffers[name] = mode.from_tensor(buffer).to(CUDA)


def _batch(config: str, data_root, size: int = 2) -> dict:
    """``size`` training samples of ``config``'s pipeline on the data."""
    from mmpose.registry import DATASETS
    cfg = Config.fromfile(str(REPO / config))
    cfg.train_dataloader.dataset.data_root = f'{data_root}/'
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    return pseudo_collate([dataset[i] for i in range(size)])


class HostCopiesGiveZeros(TorchFunctionMode):
    """``item()``, ``tolist()`` and ``numpy()`` of a fake tensor (which has
    no values) give zeros of its shape and dtype: the value copies to the
    host that logging and MMPose's numpy accuracy make (docs/gpu.md counts
    them). ``bool(tensor)`` is control flow and still raises."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, '__name__', '')
        if name in ('item', 'tolist', 'numpy') and isinstance(
                args[0], FakeTensor):
            tensor = args[0]
            dtype = (
                np.bool_ if tensor.dtype == torch.bool else
                np.float32 if tensor.is_floating_point() else np.int64)
            zeros = np.zeros(tuple(tensor.shape), dtype=dtype)
            return dict(
                item=lambda: zeros.item(),
                tolist=zeros.tolist,
                numpy=lambda: zeros)[name]()
        return func(*args, **(kwargs or {}))


class ZeroTagLoss(nn.Module):
    """Pull and push losses of 0 on the tags' device."""

    def forward(self, tags, keypoint_indices):
        zero = tags.sum() * 0
        return zero, zero


def _devices(value) -> set:
    if isinstance(value, torch.Tensor):
        return {value.device}
    if isinstance(value, (tuple, list)):
        return set().union(*map(_devices, value)) if value else set()
    if isinstance(value, dict):
        return _devices(list(value.values()))
    return set()


@pytest.mark.parametrize('name', list(CONFIGS))
def test_loss_and_predict_stay_on_the_input_device(name, request):
    config, fixture = CONFIGS[name]
    model = _build(config)
    batch = _batch(config, request.getfixturevalue(fixture))
    decoded = []

    def decode(*outputs, **kwargs):  # MMPose decodes in numpy: the host
        decoded.append(_devices([outputs, kwargs]))
        return []

    # what AFLCriticHook does before training: bind each AFL loss to its
    # head (a regression head's input size) and move the critic (here: to
    # the CPU, before the fake conversion)
    from mmpose_afl.engine.hooks import AFLCriticHook
    if _critics(model):
        AFLCriticHook().before_run(
            type('Runner', (), dict(model=model, cfg=Config()))())
    if hasattr(model.head.loss_module, 'tag_loss'):
        # MMPose's associative-embedding tag loss loops in Python over the
        # labelled keypoints (``if keypoint_indices[k, 1]``): control flow
        # on values, which fake tensors do not have; its (zero) stand-in
        # keeps the device of the tags
        model.head.loss_module.tag_loss = ZeroTagLoss()
    # non-fake inputs (the data samples' CPU tensors) become fake CPU ones
    with FakeTensorMode(allow_non_fake_inputs=True) as mode, \
            HostCopiesGiveZeros():
        _to_fake_cuda(model, mode)
        for critic in _critics(model):
            _to_fake_cuda(critic, mode)
        inputs = torch.stack(batch['inputs']).float().to(CUDA)
        samples = [sample.to(CUDA) for sample in batch['data_samples']]
        model.train()
        feats = model.extract_feat(inputs)
        losses = model.head.loss(feats, samples, train_cfg=model.train_cfg)
        assert losses and _devices(losses) == {CUDA}, losses

        model.eval()
        model.head.decode = decode
        test_cfg = model.test_cfg or {}
        if test_cfg.get('flip_test', False):
            feats = [feats, model.extract_feat(inputs.flip(-1))]
        model.head.predict(feats, samples, test_cfg=test_cfg)
    assert decoded and all(devices == {CUDA} for devices in decoded)


def test_configs_cover_every_registered_model():
    from mmpose.registry import MODELS
    registered = {
        cls
        for cls in MODELS.module_dict.values()
        if cls.__module__.startswith('mmpose_afl')
    }
    built = set()
    for config, _ in CONFIGS.values():
        model = _build(config)
        built |= {type(m) for m in model.modules()}
        built |= {type(c) for c in _critics(model)}
    assert registered - built == set()


def test_topology_centroid_and_oks_helpers_stay_on_the_input_device():
    from mmpose_afl.evaluation import sample_oks
    from mmpose_afl.models import afl_critic
    with FakeTensorMode():
        heatmaps = torch.rand(2, 17, 16, 12, device=CUDA)
        coords = torch.rand(2, 17, 2, device=CUDA)
        present = torch.ones(2, 17, dtype=torch.bool, device=CUDA)
        weights = torch.ones(2, 17, device=CUDA)
        outputs = [
            afl_critic.keypoint_centroids(heatmaps, 0.1, weights),
            afl_critic.coordinate_topology(coords, present, (12, 16)),
            afl_critic.heatmap_topology(heatmaps, 0.1, weights),
            sample_oks.keypoint_offsets(coords, coords, (12, 16), present,
                                        present),
            sample_oks.heatmap_peak_offsets(heatmaps, heatmaps, present),
            sample_oks.mean_keypoint_distance(coords, coords, weights),
            sample_oks.heatmap_peaks(heatmaps),
        ]
    assert _devices(outputs) == {CUDA}


def test_a_cpu_tensor_in_a_cuda_computation_fails():
    # what the tests above rely on: the mode does catch a mismatch
    # (FakeTensorDeviceMismatchError, a RuntimeError, on recent torch)
    with FakeTensorMode(allow_non_fake_inputs=True):
        with pytest.raises(RuntimeError, match='device'):
            torch.rand(2, 3, device=CUDA) + torch.rand(2, 3)
        with pytest.raises(RuntimeError, match='device'):
            torch.rand(2, 3, device=CUDA) + torch.rand(2, 3, device=CUDA).cpu()
