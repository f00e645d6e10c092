"""Bad input to the dynamics diagnostics: each error names the function and the argument, and
the module is left exactly as it was (parameters, dtype, .grad, training flag)."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from tinygrad_rnn import Tensor, diagnostics, nn


@pytest.fixture
def lstm():
    np.random.seed(0)
    module = nn.LSTM(3, 4, batch_first=True)  # S = 2H = 8
    out, _ = module(np.ones((2, 5, 3), np.float32))
    out.sum().backward()
    return module


X = np.random.default_rng(1).standard_normal((2, 5, 3))


def _snapshot(module):
    return ([(n, p.data.copy(), p.data.dtype, p.grad.copy()) for n, p in
             module.named_parameters()], [m.training for _, m in module.named_modules()])


def _assert_unchanged(module, snap):
    params, flags = snap
    for (n, p), (name, data, dtype, grad) in zip(module.named_parameters(), params):
        assert n == name and p.data.dtype == dtype and np.array_equal(p.data, data)
        assert np.array_equal(p.grad, grad), n
    assert [m.training for _, m in module.named_modules()] == flags


FUNCTIONS = [diagnostics.state_jacobians, diagnostics.jacobian_norms,
             diagnostics.lyapunov_exponents]
NAMES = ["state_jacobians", "jacobian_norms", "lyapunov_exponents"]


@pytest.mark.parametrize("module", [nn.Linear(3, 4), nn.Sequential(nn.LSTM(3, 4)),
                                    nn.LSTMCell(3, 4), "lstm"],
                         ids=["linear", "sequential", "cell", "string"])
@pytest.mark.parametrize("fn, name", list(zip(FUNCTIONS, NAMES)), ids=NAMES)
def test_a_module_that_does_not_unroll_is_a_type_error(fn, name, module):
    with pytest.raises(TypeError, match=rf"^{name}: module must unroll \(a Recurrent, a "
                                        rf"Bidirectional, or an RNN/LSTM/GRU stack\), got "):
        fn(module, X)
    with pytest.raises(ValueError, match=rf"^{name}: module must unroll"):  # as record's
        fn(module, X)


@pytest.mark.parametrize("shape", [(5, 3), (2, 5, 3, 1), (3,), (0, 5, 3), (2, 0, 3)])
@pytest.mark.parametrize("fn, name", list(zip(FUNCTIONS, NAMES)), ids=NAMES)
def test_x_that_is_not_a_non_empty_3d_batch_is_a_value_error(lstm, fn, name, shape):
    snap = _snapshot(lstm)
    with pytest.raises(ValueError, match=rf"^{name}: x must be a non-empty 3-D batch \(B, T, "
                                         rf"input_size\) as the LSTM expects, got shape"):
        fn(lstm, np.ones(shape))
    _assert_unchanged(lstm, snap)


def test_time_first_layout_is_named_in_the_error():
    with pytest.raises(ValueError, match=r"x must be .*\(T, B, input_size\) as the GRU expects"):
        diagnostics.state_jacobians(nn.GRU(3, 4), np.ones((5, 3)))


def test_x_of_strings_is_a_type_error_and_non_finite_x_a_value_error(lstm):
    snap = _snapshot(lstm)
    with pytest.raises(TypeError, match=r"^state_jacobians: x must be a numeric array or Tensor"):
        diagnostics.state_jacobians(lstm, [[["a", "b", "c"]]])
    bad = X.copy()
    bad[1, 2, 0] = np.nan
    with pytest.raises(ValueError, match=r"^jacobian_norms: x has non-finite entries"):
        diagnostics.jacobian_norms(lstm, bad)
    with pytest.raises(ValueError, match=r"^lyapunov_exponents: x has non-finite"):
        diagnostics.lyapunov_exponents(lstm, Tensor(bad))
    _assert_unchanged(lstm, snap)


@pytest.mark.parametrize("k", [9, 100, 0, -1])
def test_k_outside_one_to_s_is_a_value_error_naming_k_and_s(lstm, k):
    snap = _snapshot(lstm)
    with pytest.raises(ValueError, match=rf"^lyapunov_exponents: k must be in \[1, S\] with the "
                                         rf"state size S=8 of layer 0 forward, got k={k}$"):
        diagnostics.lyapunov_exponents(lstm, X, k=k)
    jacs = diagnostics.state_jacobians(lstm, X)
    with pytest.raises(ValueError, match=rf"k must be in \[1, S\] .* S=8 .* got k={k}$"):
        diagnostics.lyapunov_exponents(lstm, X, k=k, jacobians=jacs)
    _assert_unchanged(lstm, snap)


@pytest.mark.parametrize("k", [2.0, "3", True])
def test_k_that_is_not_an_int_is_a_type_error(lstm, k):
    with pytest.raises(TypeError, match=r"^lyapunov_exponents: k must be an int or None, got"):
        diagnostics.lyapunov_exponents(lstm, X, k=k)


def test_k_equal_to_s_and_a_numpy_int_are_fine(lstm):
    exps = diagnostics.lyapunov_exponents(lstm, X, k=np.int64(8))
    assert exps[0, "forward"].shape == (2, 8)


@pytest.mark.parametrize("lengths, error, match", [
    ([5], ValueError, r"lengths must be 2 integers"),
    ([5, 0], ValueError, r"lengths must be in \[1, T=5\]"),
    ([5, 6], ValueError, r"lengths must be in \[1, T=5\]"),
    ([2.5, 3], TypeError, r"lengths must be 2 integers"),  # a wrong dtype is a TypeError
])
@pytest.mark.parametrize("fn, name", list(zip(FUNCTIONS, NAMES)), ids=NAMES)
def test_bad_lengths_are_an_error_naming_lengths(lstm, fn, name, lengths, error, match):
    snap = _snapshot(lstm)
    with pytest.raises(error, match=rf"^{name}: {match}"):
        fn(lstm, X, lengths=lengths)
    _assert_unchanged(lstm, snap)


def test_module_errors_name_the_function_and_the_argument(lstm):
    snap = _snapshot(lstm)
    with pytest.raises(ValueError, match=r"^state_jacobians: LSTM: expected input width "
                                         r"\(input_size\) 3, got 2"):
        diagnostics.state_jacobians(lstm, np.ones((2, 5, 2)))
    with pytest.raises(ValueError, match=r"^jacobian_norms: LSTM: expected hx of shape "
                                         r"\(1, 2, 4\)"):
        diagnostics.jacobian_norms(lstm, X, (np.zeros((1, 3, 4)), np.zeros((1, 3, 4))))
    _assert_unchanged(lstm, snap)


def test_jacobians_that_do_not_fit_the_module_and_x_are_rejected(lstm):
    jacs = diagnostics.state_jacobians(lstm, X)
    with pytest.raises(TypeError, match=r"^jacobian_norms: jacobians must be the dict "
                                        r"state_jacobians returns, got list"):
        diagnostics.jacobian_norms(lstm, X, jacobians=list(jacs.values()))
    with pytest.raises(ValueError, match=r"^lyapunov_exponents: jacobians has keys "
                                         r"\[\(0, 'backward'\)\], the LSTM reports "
                                         r"\[\(0, 'forward'\)\]"):
        diagnostics.lyapunov_exponents(lstm, X, jacobians={(0, "backward"): jacs[0, "forward"]})
    with pytest.raises(TypeError, match=r"^jacobian_norms: jacobians\[\(0, 'forward'\)\] must be a "
                                        r"float array, got str"):
        diagnostics.jacobian_norms(lstm, X, jacobians={(0, "forward"): "J"})
    with pytest.raises(ValueError, match=r"^jacobian_norms: jacobians\[\(0, 'forward'\)\] must "
                                         r"have shape \(T, B, S, S\) with \(T, B\) = \(4, 2\), "
                                         r"got \(5, 2, 8, 8\)"):
        diagnostics.jacobian_norms(lstm, X[:, :4], jacobians=jacs)


def test_plot_dynamics_checks_its_path_before_any_work(lstm, tmp_path):
    pytest.importorskip("matplotlib")
    with pytest.raises(FileNotFoundError, match=r"^plot_dynamics: path's directory .*nowhere "
                                                r"does not exist"):
        diagnostics.plot_dynamics(lstm, X, tmp_path / "nowhere" / "d.png")
    with pytest.raises(TypeError, match=r"^plot_dynamics: path must be a str or os.PathLike, "
                                        r"got int"):
        diagnostics.plot_dynamics(lstm, X, 3)
    with pytest.raises(ValueError, match=r"^plot_dynamics: k must be in \[1, S\] with the state "
                                         r"size S=8"):
        diagnostics.plot_dynamics(lstm, X, tmp_path / "d.png", k=9)
    assert list(tmp_path.iterdir()) == []


def test_plot_dynamics_without_matplotlib_says_how_to_get_it(lstm, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # import fails
    with pytest.raises(ImportError, match=r"^plot_dynamics needs matplotlib: pip install "
                                          r"matplotlib \(or tinygrad_rnn\[plot\]\)"):
        diagnostics.plot_dynamics(lstm, X, tmp_path / "d.png")
    assert list(tmp_path.iterdir()) == []
