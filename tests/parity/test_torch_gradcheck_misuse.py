"""gradcheck's answers to misuse next to torch.autograd.gradcheck's, where both have the call."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_rnn import GradcheckError, Tensor, gradcheck, no_grad

torch = pytest.importorskip("torch")

X = np.array([0.5, -1.0, 2.0])


def both(make_fn, inputs_of):
    """(ours, torch's) outcome of gradcheck: True, or the exception's type."""
    results = []
    for lib, tensor in (("ours", lambda a, g: Tensor(a.copy(), requires_grad=g)),
                        ("torch", lambda a, g: torch.tensor(a, requires_grad=g))):
        try:
            results.append(
                (gradcheck if lib == "ours" else torch.autograd.gradcheck)(
                    make_fn(lib), inputs_of(tensor)))
        except Exception as err:  # noqa: BLE001 - the type is what is compared
            results.append(err)
    return results


def test_no_input_requires_grad_is_a_value_error_in_both():
    ours, theirs = both(lambda lib: lambda a: (a * a).sum(), lambda t: (t(X, False),))
    assert type(ours) is ValueError and type(theirs) is ValueError
    assert "at least one input" in str(ours) and "at least one input" in str(theirs)


def test_a_constant_output_passes_in_both():
    def make(lib):
        if lib == "ours":
            return lambda a: Tensor(np.ones(2)).sum()
        return lambda a: torch.ones(2, dtype=torch.float64).sum()
    assert both(make, lambda t: (t(X, True),)) == [True, True]


def test_a_cut_graph_fails_in_both():
    def make(lib):
        if lib == "ours":
            def f(a):
                with no_grad():
                    return (a * a).sum()
            return f
        return lambda a: (a.detach() * a.detach()).sum()
    ours, theirs = both(make, lambda t: (t(X, True),))
    assert isinstance(ours, GradcheckError) and isinstance(ours, RuntimeError)
    assert isinstance(theirs, RuntimeError)


def test_non_tensor_inputs_reach_fn_unchanged_in_both():
    def make(lib):
        return lambda a, k, axis: (a.reshape(3, 1) * k).sum(axis).tanh().sum()
    assert both(make, lambda t: (t(X, True), 2.0, 0)) == [True, True]


def test_a_lone_tensor_is_one_input_in_both():
    assert both(lambda lib: lambda a: (a * a).sum(), lambda t: t(X, True)) == [True, True]


def test_a_wrong_derivative_fails_in_both_with_a_runtime_error():
    def make(lib):  # the same text in both: the second square's gradient is missing
        return lambda a: (a * a).sum() + (a.detach() * a.detach()).sum()
    ours, theirs = both(make, lambda t: (t(X, True),))
    assert isinstance(ours, RuntimeError) and isinstance(theirs, RuntimeError)
