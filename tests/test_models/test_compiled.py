"""CompiledOrEager: compiled values equal the eager ones, torch's own switch
turns compiling off, compile failures fall back once with a warning, input
errors stay the eager errors."""
import warnings

import pytest
import torch
from torch._dynamo.exc import TorchDynamoException
from torch._dynamo.utils import counters

from mmpose_afl.models.compiled import CompiledOrEager, one_pass


def weighted_square(x: torch.Tensor, w: float) -> torch.Tensor:
    return ((x - 0.5).pow(2) * w).flatten(1).mean(1)


def compiling(on: bool):
    """A context with torch's own switch set (``TORCH_COMPILE_DISABLE=1``,
    which conftest.py sets for the suite, switches compiling off)."""
    return torch._dynamo.config.patch(disable=not on)


@pytest.fixture(autouse=True)
def fresh_dynamo():
    """Forget what dynamo cached: a function called while compiling was
    off (in an earlier test) is skipped by dynamo until a reset."""
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


def counting_compile(fn, graphs):
    """``torch.compile(fn)`` with a backend that records each graph it
    gets and runs it as it is."""

    def backend(graph, example_inputs):
        graphs.append(graph)
        return graph.forward

    return torch.compile(fn, backend=backend)


def test_compiled_equals_eager_with_gradient():
    fn = one_pass(weighted_square)
    graphs = []
    fn.compiled = counting_compile(weighted_square, graphs)
    x = torch.tensor([[0., 1., 2.], [3., 4., 5.]], requires_grad=True)
    with compiling(True):
        out = fn(x, 2.)
    out.sum().backward()
    assert len(graphs) == 1  # torch.compile really compiled it
    # by hand: 2 * mean((x - .5)^2) per row; gradient 4 (x - .5) / 3
    torch.testing.assert_close(
        out,
        torch.tensor(
            [2 * (0.25 + 0.25 + 2.25) / 3, 2 * (6.25 + 12.25 + 20.25) / 3]))
    torch.testing.assert_close(x.grad, 4 * (x.detach() - 0.5) / 3)


def test_torchs_switch_runs_eagerly():
    fn = CompiledOrEager(weighted_square)
    graphs = []
    fn.compiled = counting_compile(weighted_square, graphs)
    with compiling(False):
        out = fn(torch.ones(1, 2), 1.)
    torch.testing.assert_close(out, torch.tensor([0.25]))
    assert graphs == []  # nothing compiled


def failing_compile(*args):
    # the base of torch.compile's own errors (BackendCompilerFailed: no C++
    # compiler, ...), whose constructors differ between torch versions
    raise TorchDynamoException('no compiler')


def test_compile_failure_falls_back_once_with_a_warning():
    fn = CompiledOrEager(weighted_square)
    fn.compiled = failing_compile
    with pytest.warns(UserWarning, match='torch.compile failed'):
        out = fn(torch.ones(1, 2), 1.)
    torch.testing.assert_close(out, torch.tensor([0.25]))
    assert fn.compiled is None
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no second warning
        fn(torch.ones(1, 2), 1.)


def test_no_torch_compile_on_the_platform_computes_eagerly(monkeypatch):

    def unavailable(fn):
        raise RuntimeError('torch.compile is not supported here')

    monkeypatch.setattr(torch, 'compile', unavailable)
    with pytest.warns(UserWarning, match='torch.compile is unavailable'):
        fn = CompiledOrEager(weighted_square)
    assert fn.compiled is None
    torch.testing.assert_close(fn(torch.ones(1, 2), 1.), torch.tensor([0.25]))


def test_an_input_error_is_the_eager_error_and_keeps_compiling():

    def bad_input(x):
        raise ValueError('x: wrong shape')

    fn = CompiledOrEager(bad_input)
    fn.compiled = failing_compile
    with pytest.raises(ValueError, match='wrong shape'):
        fn(torch.ones(1))
    assert fn.compiled is failing_compile


def assert_compiled_equals_eager(monkeypatch, fn, run):
    """``run(fn)`` (values and gradients of a one_pass function, a tuple of
    tensors or ``None``s) with compiling on, checked to really compile,
    equals ``run(fn)`` with compiling off."""
    results, calls = [], []
    compiled = fn.compiled
    monkeypatch.setattr(fn, 'compiled',
                        lambda *a: calls.append(1) or compiled(*a))
    graphs = counters['stats']['unique_graphs']
    for on in (True, False):
        with compiling(on):
            results.append(run(fn))
    assert calls == [1, 1]  # through torch.compile, switched on and off
    assert fn.compiled is not None  # compiling did not fail
    assert counters['stats']['unique_graphs'] > graphs  # really compiled
    for value_c, value_e in zip(*results):
        assert (value_c is None) == (value_e is None)
        if value_e is not None:
            torch.testing.assert_close(value_c, value_e)


def values_and_gradients(*inputs):
    """A ``run`` for :func:`assert_compiled_equals_eager`: the output of
    ``fn(*inputs)`` and its sum's gradients to every float tensor input
    (``None`` for one it treats as a constant)."""

    def run(fn):
        leaves = [
            x.detach().clone().requires_grad_(x.is_floating_point())
            if isinstance(x, torch.Tensor) else x for x in inputs
        ]
        out = fn(*leaves)
        return (out, *torch.autograd.grad(
            out.sum(), [
                x for x in leaves
                if isinstance(x, torch.Tensor) and x.requires_grad
            ],
            allow_unused=True))

    return run


def small_heatmaps(seed=0, shape=(2, 3, 5, 4)):
    """Float64 logits / predictions, a target in [0, 1] with zeros, and a
    [B, K, 1, 1] keypoint mask with a zero."""
    gen = torch.Generator().manual_seed(seed)
    output = torch.randn(shape, generator=gen, dtype=torch.float64)
    target = torch.rand(shape, generator=gen, dtype=torch.float64)
    target = target * (target > 0.3)
    mask = torch.ones(shape[:2] + (1, 1), dtype=torch.float64)
    mask[0, 1] = 0
    return output, target, mask


def test_hsm_compiled_equals_eager_and_passes_gradcheck(monkeypatch):
    from mmpose_afl.models.losses.hsm_loss import hsm_sample_losses
    output, target, mask = small_heatmaps()
    assert_compiled_equals_eager(
        monkeypatch, hsm_sample_losses,
        values_and_gradients(output, target, mask, 1.0, 2.0))
    assert torch.autograd.gradcheck(
        lambda o: hsm_sample_losses(o, target, mask, 1.0, 2.0),
        output.clone().requires_grad_())


def test_wahr_compiled_equals_eager_and_passes_gradcheck(monkeypatch):
    from mmpose_afl.models.losses.wahr_loss import wahr_sample_losses
    output, target, mask = small_heatmaps(seed=4)
    weight_target = target.sqrt()  # another G than T, as under SAHR
    assert_compiled_equals_eager(
        monkeypatch, wahr_sample_losses,
        values_and_gradients(output, target, weight_target, mask, 0.5, 0.05))
    assert torch.autograd.gradcheck(
        lambda o: wahr_sample_losses(o, target, weight_target, mask, 0.5, 0.05
                                     ),
        output.clone().requires_grad_())


@pytest.mark.parametrize('mode', ['power', 'taylor'])
def test_sahr_target_compiled_equals_eager_and_passes_gradcheck(
        monkeypatch, mode):
    from mmpose_afl.models.heads.sahr_branch import scaled_target_and_penalty
    _, target, mask = small_heatmaps(seed=5)
    scales = 0.4 * torch.randn(
        target.shape,
        dtype=torch.float64,
        generator=torch.Generator().manual_seed(6))

    def combined(fn, s):
        scaled, penalty = fn(target, s, mask, mode, 0.1, 0.05)
        return scaled.sum() + 3 * penalty

    def run(fn):
        leaf = scales.clone().requires_grad_()
        value = combined(fn, leaf)
        return (value, *torch.autograd.grad(value, leaf))

    assert_compiled_equals_eager(monkeypatch, scaled_target_and_penalty, run)
    # gradcheck back-propagates with retain_graph=True, which a compiled
    # backward that donates its buffers refuses (training never does)
    # (torch < 2.5 has no such option and donates nothing)
    options = ({
        'donated_buffer': False
    } if hasattr(torch._functorch.config, 'donated_buffer') else {})
    with torch._functorch.config.patch(**options):
        assert torch.autograd.gradcheck(
            lambda s: combined(scaled_target_and_penalty, s),
            scales.clone().requires_grad_())


@pytest.mark.parametrize('weighting', ['fwahr', None])
def test_fowkal_terms_compiled_equal_eager_and_mmpose_awing(
        monkeypatch, weighting):
    from mmpose.models.losses import AdaptiveWingLoss

    from mmpose_afl.models.losses.fowkal_pixels import fowkal_keypoint_terms
    output, target, mask = small_heatmaps(seed=3)
    output = output.sigmoid()  # heatmaps, as FoWKAL sees them
    options = (AdaptiveWingLoss(), weighting, 0.01, 1.0, 0.0111)

    def run(fn):
        leaf = output.clone().requires_grad_()
        awing, mse = fn(leaf, target, mask, *options)
        return (awing, mse, *torch.autograd.grad(
            (awing + 2 * mse).sum(), leaf))

    assert_compiled_equals_eager(monkeypatch, fowkal_keypoint_terms, run)
    if weighting is None:  # unweighted, unmasked: MMPose's AWing itself
        awing, _ = fowkal_keypoint_terms(output, target, None, *options)
        torch.testing.assert_close(awing.mean(),
                                   AdaptiveWingLoss()(output, target))


def test_topology_centroids_compiled_equal_eager(monkeypatch):
    from mmpose_afl.models.afl_critic import keypoint_centroids
    _, target, _ = small_heatmaps(seed=1)
    weights = torch.tensor([[1., 0., 1.], [1., 1., 1.]], dtype=torch.float64)
    assert_compiled_equals_eager(monkeypatch, keypoint_centroids,
                                 lambda fn: fn(target, 0.5, weights))
    _, present = keypoint_centroids(target, 0.5, weights)
    assert not present.all()  # a missing keypoint is part of the case
