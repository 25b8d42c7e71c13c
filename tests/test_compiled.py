"""CompiledOrEager: compiled values equal the eager ones, compile failures
fall back once with a warning, input errors stay the eager errors."""
import warnings

import pytest
import torch
from torch._dynamo.exc import BackendCompilerFailed

from mmpose_afl.models.losses.compiled import (COMPILE_ENV, CompiledOrEager,
                                               one_pass)


def weighted_square(x: torch.Tensor, w: float) -> torch.Tensor:
    return ((x - 0.5).pow(2) * w).flatten(1).mean(1)


def test_compiled_equals_eager_with_gradient(monkeypatch):
    monkeypatch.setenv(COMPILE_ENV, '1')
    fn = one_pass(weighted_square)
    calls = []
    compiled = fn.compiled
    fn.compiled = lambda *a: calls.append(1) or compiled(*a)
    x = torch.tensor([[0., 1., 2.], [3., 4., 5.]], requires_grad=True)
    out = fn(x, 2.)
    out.sum().backward()
    assert calls == [1]  # the compiled function really ran
    # by hand: 2 * mean((x - .5)^2) per row; gradient 4 (x - .5) / 3
    torch.testing.assert_close(
        out,
        torch.tensor(
            [2 * (0.25 + 0.25 + 2.25) / 3, 2 * (6.25 + 12.25 + 20.25) / 3]))
    torch.testing.assert_close(x.grad, 4 * (x.detach() - 0.5) / 3)


def test_switched_off_runs_eagerly(monkeypatch):
    monkeypatch.setenv(COMPILE_ENV, '0')
    fn = CompiledOrEager(weighted_square)
    fn.compiled = lambda *a: pytest.fail('compiled despite the switch')
    torch.testing.assert_close(fn(torch.ones(1, 2), 1.), torch.tensor([0.25]))


def failing_compile(*args):
    raise BackendCompilerFailed(lambda: None, RuntimeError('no compiler'),
                                None)


def test_compile_failure_falls_back_once_with_a_warning(monkeypatch):
    monkeypatch.setenv(COMPILE_ENV, '1')
    fn = CompiledOrEager(weighted_square)
    fn.compiled = failing_compile
    with pytest.warns(UserWarning, match='torch.compile failed'):
        out = fn(torch.ones(1, 2), 1.)
    torch.testing.assert_close(out, torch.tensor([0.25]))
    assert fn.compiled is None
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # no second warning
        fn(torch.ones(1, 2), 1.)


def test_an_input_error_is_the_eager_error_and_keeps_compiling(monkeypatch):
    monkeypatch.setenv(COMPILE_ENV, '1')

    def bad_input(x):
        raise ValueError('x: wrong shape')

    fn = CompiledOrEager(bad_input)
    fn.compiled = failing_compile
    with pytest.raises(ValueError, match='wrong shape'):
        fn(torch.ones(1))
    assert fn.compiled is failing_compile
