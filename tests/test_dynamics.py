"""diagnostics.state_jacobians, jacobian_norms, lyapunov_exponents against oracles that need
no torch: a linear cell (J = W, norms ||W^k||_2, exponents log|eig W|), central differences
for a custom cell with a tuple state, explicit products of the Jacobians, the chain rule on
record's gradients, a sequence run alone against the same sequence padded in a batch."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_rnn import Tensor, diagnostics, nn, no_grad


class LinearCell(nn.Cell):
    """s' = W s + U x: every step Jacobian is W, whatever the input and state."""

    def __init__(self, w: np.ndarray, u: np.ndarray):
        super().__init__()
        self.hidden_size = w.shape[0]
        self.weight, self.u = nn.Parameter(w), nn.Parameter(u)

    def forward(self, x_t, h):
        return h @ self.weight.T + x_t @ self.u


def _pair_step(x, h, m, a, b, c):
    """The PairCell math in numpy: h' = tanh(x a + h b + m c), m' = 0.5 m + h'[:, :2] * m."""
    h_new = np.tanh(x @ a + h @ b + m @ c)
    return h_new, 0.5 * m + h_new[:, :2] * m


class PairCell(nn.Cell):
    """A custom cell whose state is a tuple of parts of different sizes: (h (B, 3), m (B, 2))."""

    def __init__(self, rng: np.random.Generator):
        super().__init__()
        self.hidden_size = 3
        self.a = nn.Parameter(rng.standard_normal((2, 3)))
        self.b = nn.Parameter(rng.standard_normal((3, 3)) * 0.5)
        self.c = nn.Parameter(rng.standard_normal((2, 3)))

    def initial_state(self, batch_size):
        return Tensor(np.full((batch_size, 3), 0.1)), Tensor(np.ones((batch_size, 2)))

    def forward(self, x_t, state):
        h, m = state
        h_new = (x_t @ self.a + h @ self.b + m @ self.c).tanh()
        return h_new, m * 0.5 + h_new[:, :2] * m


def _eigen_matrix(lam: np.ndarray, seed: int = 0) -> np.ndarray:
    """W = V diag(lam) V^-1 with a well-conditioned V: eigenvalues lam, not normal."""
    rng = np.random.default_rng(seed)
    v = np.eye(len(lam)) + 0.15 * rng.standard_normal((len(lam), len(lam)))
    return v @ np.diag(lam) @ np.linalg.inv(v)


LAMBDAS = np.array([1.02, -0.9, 0.6, -0.35, 0.1])


@pytest.mark.parametrize("reverse", [False, True])
def test_linear_cell_jacobians_are_w_and_span_norms_are_powers_of_w(reverse):
    w = _eigen_matrix(LAMBDAS)
    layer = nn.Recurrent(LinearCell(w, np.ones((2, 5))), reverse=reverse)
    x = np.random.default_rng(1).standard_normal((2, 12, 2))
    key = (0, "backward" if reverse else "forward")
    jac = diagnostics.state_jacobians(layer, x)
    assert list(jac) == [key] and jac[key].shape == (12, 2, 5, 5)
    np.testing.assert_allclose(jac[key], np.broadcast_to(w, (12, 2, 5, 5)), rtol=0, atol=1e-14)
    norms = diagnostics.jacobian_norms(layer, x)[key]
    for t in range(12):
        span = t if reverse else 11 - t  # steps processed after t
        want = np.linalg.norm(np.linalg.matrix_power(w, span), 2)
        np.testing.assert_allclose(norms[t], [want, want], rtol=1e-10)
    assert norms[0 if reverse else 11].tolist() == [1.0, 1.0]


def test_linear_cell_lyapunov_exponents_are_the_log_eigenvalue_moduli():
    layer = nn.Recurrent(LinearCell(_eigen_matrix(LAMBDAS), np.ones((2, 5))))
    x = np.random.default_rng(2).standard_normal((2, 1000, 2))
    want = np.sort(np.log(np.abs(LAMBDAS)))[::-1]
    exps = diagnostics.lyapunov_exponents(layer, x)[0, "forward"]
    assert exps.shape == (2, 5) and exps.dtype == np.float64
    np.testing.assert_allclose(exps, np.broadcast_to(want, (2, 5)), rtol=0, atol=1e-3)
    top2 = diagnostics.lyapunov_exponents(layer, x, k=2)[0, "forward"]
    np.testing.assert_allclose(top2, exps[:, :2], rtol=0, atol=1e-12)


def test_tuple_state_cell_jacobians_match_central_differences():
    rng = np.random.default_rng(3)
    cell = PairCell(rng)
    a, b, c = cell.a.data, cell.b.data, cell.c.data
    x = rng.standard_normal((2, 6, 2))
    jac = diagnostics.state_jacobians(nn.Recurrent(cell), x)[0, "forward"]
    assert jac.shape == (6, 2, 5, 5)  # S = 3 + 2, the parts concatenated in order
    h, m, eps = np.full((2, 3), 0.1), np.ones((2, 2)), 1e-6
    for t in range(6):
        s = np.concatenate([h, m], axis=1)
        for j in range(5):
            d = np.zeros_like(s)
            d[:, j] = eps
            plus = np.concatenate(_pair_step(x[:, t], *np.split(s + d, [3], 1), a, b, c), 1)
            minus = np.concatenate(_pair_step(x[:, t], *np.split(s - d, [3], 1), a, b, c), 1)
            np.testing.assert_allclose(jac[t, :, :, j], (plus - minus) / (2 * eps), atol=1e-8)
        h, m = _pair_step(x[:, t], h, m, a, b, c)
    exps = diagnostics.lyapunov_exponents(nn.Recurrent(cell), x)
    assert exps[0, "forward"].shape == (2, 5)


def _explicit_span(jac: np.ndarray, t: int, backward: bool) -> np.ndarray:
    """d s_last / d s_t as the plain product of the later steps' Jacobians, (B, S, S)."""
    later = range(t - 1, -1, -1) if backward else range(t + 1, jac.shape[0])
    prod = np.broadcast_to(np.eye(jac.shape[-1]), jac.shape[1:]).copy()
    for u in later:  # d s_u / d s_t = J_u @ (d s_{u-1} / d s_t), the last step leftmost
        prod = jac[u] @ prod
    return prod


MODULES = {
    "rnn_bidir_2layer": lambda: nn.RNN(3, 4, 2, batch_first=True, bidirectional=True),
    "lstm": lambda: nn.LSTM(3, 4, batch_first=True),
    "gru_bidir": lambda: nn.GRU(3, 4, batch_first=True, bidirectional=True),
    "recurrent_reverse_lstm": lambda: nn.Recurrent(nn.LSTMCell(3, 4), reverse=True),
    "custom_tuple": lambda: nn.Recurrent(PairCell(np.random.default_rng(0))),
}


@pytest.mark.parametrize("name", sorted(MODULES))
def test_norms_equal_the_spectral_norm_of_the_explicit_product(name):
    np.random.seed(5)
    module = MODULES[name]()
    x = np.random.default_rng(6).standard_normal((3, 7, 3 if "custom" not in name else 2))
    lengths = [7, 4, 2]
    jacs = diagnostics.state_jacobians(module, x, lengths=lengths)
    norms = diagnostics.jacobian_norms(module, x, lengths=lengths)
    assert sorted(norms) == sorted(jacs)
    for key, jac in jacs.items():
        assert norms[key].shape == (7, 3) and norms[key].dtype == np.float64
        for t in range(7):
            want = np.linalg.norm(_explicit_span(jac, t, key[1] == "backward"), 2, axis=(1, 2))
            np.testing.assert_allclose(norms[key][t], want, rtol=1e-10, err_msg=f"{key} t={t}")
    again = diagnostics.jacobian_norms(module, x, lengths=lengths, jacobians=jacs)
    assert all(np.array_equal(again[k], norms[k]) for k in norms)


@pytest.mark.parametrize("name", ["rnn_bidir_2layer", "lstm", "gru_bidir"])
def test_padded_sequence_gets_what_it_gets_alone(name):
    """With lengths, a sequence's exponents are the mean over its own steps, and its span
    norms over its real steps are those of the sequence run alone."""
    np.random.seed(7)
    module = MODULES[name]()
    x = np.random.default_rng(8).standard_normal((3, 9, 3))
    lengths = [9, 5, 2]
    exps = diagnostics.lyapunov_exponents(module, x, lengths=lengths)
    norms = diagnostics.jacobian_norms(module, x, lengths=lengths)
    for b, n in enumerate(lengths):
        alone_exps = diagnostics.lyapunov_exponents(module, x[b:b + 1, :n])
        alone_norms = diagnostics.jacobian_norms(module, x[b:b + 1, :n])
        for key in exps:
            np.testing.assert_allclose(exps[key][b], alone_exps[key][0], rtol=1e-9, atol=1e-12)
            np.testing.assert_allclose(norms[key][:n, b], alone_norms[key][:, 0], rtol=1e-9)
            if key[1] == "forward":  # after its last real step only identities follow
                assert np.allclose(norms[key][n - 1:, b], 1.0)


@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_span_norms_explain_records_gradient_norms_by_the_chain_rule(kind):
    """Loss on the last output only: record's dLoss/dh_t is (d s_last/d s_t)^T dLoss/ds_last,
    so its norm is at most jacobian_norms[t] * ||dLoss/ds_last||, per sequence."""
    np.random.seed(9)
    module = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}[kind](3, 5, batch_first=True)
    module.to(np.float64)
    x = np.random.default_rng(10).standard_normal((4, 8, 3))
    weights = np.random.default_rng(11).standard_normal((4, 5))
    with diagnostics.record(module) as rec:
        out, _ = module(x)
        (out[:, -1] * Tensor(weights)).sum().backward()
    jac = diagnostics.state_jacobians(module, x)[0, "forward"]
    norms = diagnostics.jacobian_norms(module, x)[0, "forward"]
    grads = [rec.states[0, "forward"][t][0].grad for t in range(8)]  # dLoss/dh_t, (B, 5)
    g_last = np.concatenate([grads[-1], np.zeros((4, jac.shape[-1] - 5))], axis=1)  # c: 0
    for t in range(8):
        chain = np.einsum("bij,bi->bj", _explicit_span(jac, t, False), g_last)[:, :5]
        np.testing.assert_allclose(grads[t], chain, rtol=1e-9, atol=1e-14)
        bound = norms[t] * np.linalg.norm(grads[-1], axis=1)
        assert (np.linalg.norm(grads[t], axis=1) <= bound * (1 + 1e-9)).all()
        batch_norm = rec.grad_norms()[0, "forward"]["h"][t]
        assert batch_norm <= np.linalg.norm(bound) * (1 + 1e-9)


def test_bidirectional_layer_gives_the_stacks_jacobians():
    np.random.seed(12)
    bi = nn.Bidirectional(nn.Recurrent(nn.LSTMCell(3, 4), return_sequences=True))
    stack = nn.LSTM(3, 4, batch_first=True, bidirectional=True)
    for half, suffix in ((bi.forward_layer, ""), (bi.backward_layer, "_reverse")):
        for name, p in half.cell.named_parameters():
            getattr(stack, f"{name}_l0{suffix}").data = p.data.copy()
    x, lengths = np.random.default_rng(13).standard_normal((2, 5, 3)), [5, 3]
    got = diagnostics.state_jacobians(bi, x, lengths=lengths)
    want = diagnostics.state_jacobians(stack, x, lengths=lengths)
    assert sorted(got) == [(0, "backward"), (0, "forward")] == sorted(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], rtol=0, atol=1e-13)


def _snapshot(module):
    return ({n: (p.data.copy(), p.data.dtype, None if p.grad is None else p.grad.copy())
             for n, p in module.named_parameters()},
            [m.training for _, m in module.named_modules()])


def _assert_unchanged(module, snap):
    params, flags = snap
    for n, p in module.named_parameters():
        data, dtype, grad = params[n]
        assert p.data.dtype == dtype and np.array_equal(p.data, data), n
        assert (p.grad is None) == (grad is None) and (grad is None or np.array_equal(p.grad,
                                                                                      grad)), n
    assert [m.training for _, m in module.named_modules()] == flags


def test_module_comes_back_as_it_was_and_dropout_is_off():
    np.random.seed(14)
    module = nn.LSTM(3, 4, 2, batch_first=True, dropout=0.5)  # float32, training mode
    x = np.random.default_rng(15).standard_normal((2, 6, 3)).astype(np.float32)
    out, _ = module(x)
    out.sum().backward()  # the parameters hold gradients
    snap = _snapshot(module)
    state = np.random.get_state()[1].copy()
    jac = diagnostics.state_jacobians(module, x)
    diagnostics.jacobian_norms(module, x)
    exps = diagnostics.lyapunov_exponents(module, x, k=3)
    _assert_unchanged(module, snap)
    assert np.array_equal(np.random.get_state()[1], state)  # no dropout mask was drawn
    assert all(j.dtype == np.float64 for j in jac.values())
    module.eval()
    with no_grad():  # grad mode of the caller does not matter
        again = diagnostics.state_jacobians(module, x)
        exps_again = diagnostics.lyapunov_exponents(module, x, k=3)
    assert all(np.array_equal(again[k], jac[k]) for k in jac)
    assert all(np.array_equal(exps_again[k], exps[k]) for k in exps)


def test_calls_inside_record_leave_the_recording_alone():
    np.random.seed(16)
    module = nn.GRU(3, 4, batch_first=True)
    x = np.random.default_rng(17).standard_normal((2, 5, 3))
    with diagnostics.record(module) as rec:
        out, _ = module(x)
        diagnostics.state_jacobians(module, x[:, :3])  # another length: must not be recorded
        out.sum().backward()
    assert rec.grad_norms()[0, "forward"]["h"].shape == (5,)
    assert module.step_observers == []


def test_initial_state_is_where_the_first_step_starts():
    cell = PairCell(np.random.default_rng(18))
    x = np.random.default_rng(19).standard_normal((2, 3, 2))
    h0, m0 = np.full((2, 3), -0.3), np.full((2, 2), 2.0)
    jac = diagnostics.state_jacobians(nn.Recurrent(cell), x, (h0, m0))[0, "forward"]
    a, b, c = cell.a.data, cell.b.data, cell.c.data
    h_new = np.tanh(x[:, 0] @ a + h0 @ b + m0 @ c)
    dh_dm = (1 - h_new**2)[:, :, None] * c.T[None]  # d h'/d m0 = diag(1 - h'^2) c^T
    np.testing.assert_allclose(jac[0, :, :3, 3:], dh_dm, rtol=1e-12)


def test_plot_dynamics_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    np.random.seed(20)
    module = nn.GRU(3, 4, 2, batch_first=True, bidirectional=True)
    path = diagnostics.plot_dynamics(module, np.ones((2, 5, 3)), tmp_path / "dyn.png", k=2,
                                     lengths=[5, 2])
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_time_first_stack_gives_the_elman_jacobian_by_input_position():
    """A time-first stack takes x (T, B, I); results are still (T, B, ...) by input position."""
    np.random.seed(21)
    module = nn.RNN(3, 4)
    x = np.random.default_rng(22).standard_normal((6, 2, 3))
    jac = diagnostics.state_jacobians(module, x)[0, "forward"]
    assert jac.shape == (6, 2, 4, 4)
    w_ih, w, b_ih, b_hh = (getattr(module, n).data.astype(np.float64) for n in (
        "weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"))
    h = np.zeros((2, 4))
    for t in range(6):  # J = diag(1 - h_t^2) W_hh, row b of the batch at input position t
        h = np.tanh(x[t] @ w_ih.T + h @ w.T + b_ih + b_hh)
        np.testing.assert_allclose(jac[t], (1 - h**2)[:, :, None] * w[None], rtol=1e-12)
