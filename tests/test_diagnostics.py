"""diagnostics.record: the recorded ||dLoss/dh_t|| equal an independent computation (a manual
unroll that adds a zero offset delta_t to each state: dLoss/d delta_t is dLoss/dh_t, by
backward and by central differences), per layer and direction; plus reports and plots."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_rnn import Tensor, cat, diagnostics, no_grad, stack
from tinygrad_rnn.grad_check import numeric_grad
from tinygrad_rnn.nn import (
    GRU,
    LSTM,
    Bidirectional,
    GRUCell,
    Linear,
    LSTMCell,
    Recurrent,
    RNNCell,
    Sequential,
)

B, T, I, H = 2, 6, 3, 4
X = np.random.default_rng(0).standard_normal((B, T, I))


def lstm_step(cell, x_t, state, deltas):
    """LSTM math written out, with delta_c added to c_t before h_t is computed from it, so
    dLoss/d delta_c is the total derivative through h_t and through later steps."""
    (h, c), (dh, dc) = state, deltas
    i, f, g, o = (x_t @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T
                  + cell.bias_hh).chunk(4, axis=1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh() + dc
    return o.sigmoid() * c.tanh() + dh, c


def manual_unroll(cell, x, deltas, reverse=False):
    """Step `cell` by hand over x (B, T, I) Tensor; deltas[t] (one zero array per state part)
    is added to the state of step t. Returns the outputs (B, T, H) by input position."""
    state, outs = cell.initial_state(x.shape[0]), [None] * x.shape[1]
    for t in (reversed(range(x.shape[1])) if reverse else range(x.shape[1])):
        if isinstance(cell, LSTMCell):
            state = lstm_step(cell, x[:, t], state, deltas[t])
        else:
            state = cell(x[:, t], state) + deltas[t][0]
        outs[t] = cell.step_output(state)
    return stack(outs, axis=1)


def zero_deltas(cell, steps=T) -> list[tuple[Tensor, ...]]:
    parts = 2 if isinstance(cell, LSTMCell) else 1
    return [tuple(Tensor(np.zeros((B, H)), requires_grad=True) for _ in range(parts))
            for _ in range(steps)]


def last_step_loss(out: Tensor) -> Tensor:
    """The loss sits at the last step only: the vanishing-gradient setting."""
    return (out[:, -1] * np.linspace(-1, 1, out.shape[-1])).sum()


def seq_loss(out: Tensor) -> Tensor:
    w = np.random.default_rng(5).standard_normal(out.shape)
    return (out * w).sum() + (out * out).sum()


CELLS = {"rnn": lambda: RNNCell(I, H), "lstm": lambda: LSTMCell(I, H),
         "gru": lambda: GRUCell(I, H)}


@pytest.mark.parametrize("kind", sorted(CELLS))
@pytest.mark.parametrize("loss_fn", [last_step_loss, seq_loss])
def test_recorded_norms_match_a_manual_unroll(kind, loss_fn):
    np.random.seed(1)
    layer = Recurrent(CELLS[kind]().to(np.float64), return_sequences=True)
    with diagnostics.record(layer) as rec:
        loss_fn(layer(Tensor(X))).backward()
    norms = rec.grad_norms()
    assert list(norms) == [(0, "forward")] and rec.sources[0, "forward"] == "Recurrent"
    assert sorted(norms[0, "forward"]) == (["c", "h"] if kind == "lstm" else ["h"])

    deltas = zero_deltas(layer.cell)
    loss_fn(manual_unroll(layer.cell, Tensor(X), deltas)).backward()
    for i, part in enumerate(["h", "c"][:len(deltas[0])]):
        expected = [np.linalg.norm(d[i].grad) for d in deltas]
        np.testing.assert_allclose(norms[0, "forward"][part], expected, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("kind", sorted(CELLS))
def test_recorded_norms_match_central_differences(kind):
    """The independent oracle: perturb delta_t, watch the loss, no backward involved."""
    np.random.seed(2)
    layer = Recurrent(CELLS[kind]().to(np.float64), return_sequences=True)
    with diagnostics.record(layer) as rec:
        seq_loss(layer(Tensor(X[:, :4]))).backward()
    norms = rec.grad_norms()[0, "forward"]
    deltas = zero_deltas(layer.cell, steps=4)

    def value() -> float:
        with no_grad():
            return float(seq_loss(manual_unroll(layer.cell, Tensor(X[:, :4]), deltas)).data)
    for t, parts in enumerate(deltas):
        for i, part in enumerate(["h", "c"][:len(parts)]):
            numeric = numeric_grad(value, parts[i].data, 1e-6)
            assert norms[part][t] == pytest.approx(np.linalg.norm(numeric), rel=1e-6)


@pytest.mark.parametrize("cls", [LSTM, GRU])
def test_two_layer_bidirectional_stack_per_layer_and_direction(cls):
    np.random.seed(3)
    net = cls(I, H, num_layers=2, bidirectional=True, batch_first=True).to(np.float64)
    with diagnostics.record(net) as rec:
        seq_loss(net(Tensor(X))[0]).backward()
    norms = rec.grad_norms()
    assert sorted(norms) == [(0, "backward"), (0, "forward"), (1, "backward"), (1, "forward")]

    make = LSTMCell if cls is LSTM else GRUCell
    x, all_deltas = Tensor(X), {}
    for k in range(2):
        outs = []
        for d, direction in enumerate(["forward", "backward"]):
            cell = make(x.shape[-1], H).to(np.float64)
            suffix = f"_l{k}" + ("_reverse" if d else "")
            for name, _ in list(cell.named_parameters()):  # the stack's own weights, shared
                setattr(cell, name, getattr(net, name + suffix))
            deltas = all_deltas[k, direction] = zero_deltas(cell)
            outs.append(manual_unroll(cell, x, deltas, reverse=bool(d)))
        x = cat(outs, axis=-1)
    seq_loss(x).backward()
    for key, deltas in all_deltas.items():
        for i, part in enumerate(["h", "c"][:len(deltas[0])]):
            expected = [np.linalg.norm(dt[i].grad) for dt in deltas]
            np.testing.assert_allclose(norms[key][part], expected, rtol=1e-10, err_msg=str(key))


def test_observers_are_removed_after_the_block_even_on_error():
    net = Sequential(Bidirectional(Recurrent(GRUCell(I, H))), Linear(2 * H, 1))
    layers = [net[0].forward_layer, net[0].backward_layer]
    with diagnostics.record(net):
        assert all(len(m.step_observers) == 1 for m in layers)
    assert all(m.step_observers == [] for m in layers)
    with pytest.raises(KeyError), diagnostics.record(net):
        raise KeyError("boom")
    assert all(m.step_observers == [] for m in layers)


def test_bidirectional_and_stacked_modules_get_distinct_keys():
    np.random.seed(4)
    net = Sequential(Bidirectional(Recurrent(RNNCell(I, H), return_sequences=True)),
                     Recurrent(RNNCell(2 * H, H)))
    with diagnostics.record(net) as rec:
        net(Tensor(X)).sum().backward()
    assert rec.sources == {(0, "forward"): "0.forward_layer", (0, "backward"): "0.backward_layer",
                           (1, "forward"): "1"}
    norms = rec.grad_norms()
    assert all(arr.shape == (T,) and np.isfinite(arr).all() for v in norms.values()
               for arr in v.values())


def test_lengths_masked_states_carry_the_final_gradient():
    """Past a sequence's length the state is carried unchanged (a `where`): its gradient is
    the final state's, and up to its length it matches the sequence run alone."""
    np.random.seed(5)
    layer = Recurrent(LSTMCell(I, H).to(np.float64))
    lengths = [T, 3]
    with diagnostics.record(layer) as rec:
        last_step_loss(layer(Tensor(X), lengths=lengths)[:, None]).backward()
    batch = rec.states[0, "forward"]
    with diagnostics.record(layer) as alone:
        last_step_loss(layer(Tensor(X[1:, :3]))[:, None]).backward()
    for t in range(T):
        expected = alone.states[0, "forward"][min(t, 2)][0].grad[0]
        np.testing.assert_allclose(batch[t][0].grad[1], expected, rtol=1e-10, atol=1e-14)


def test_lengths_masked_steps_with_a_loss_on_every_output():
    """Where some sequences have ended, the others' outputs still depend on the recorded
    state: its gradient includes that output's term, as when each sequence runs alone."""
    np.random.seed(5)
    layer = Recurrent(GRUCell(I, H).to(np.float64), return_sequences=True)
    w = np.random.default_rng(7).standard_normal((B, T, H))
    with diagnostics.record(layer) as rec:
        (layer(Tensor(X), lengths=[T, 3]) * w).sum().backward()
    for i, n in enumerate([T, 3]):
        with diagnostics.record(layer) as alone:
            (layer(Tensor(X[i:i + 1, :n])) * w[i:i + 1, :n]).sum().backward()
        for t in range(n):
            np.testing.assert_allclose(rec.states[0, "forward"][t][0].grad[i],
                                       alone.states[0, "forward"][t][0].grad[0], rtol=1e-10,
                                       err_msg=f"sequence {i}, t={t}")


def test_report_names_the_parameter_and_the_step_where_gradients_turn_non_finite():
    np.random.seed(6)
    layer = Recurrent(RNNCell(I, H).to(np.float64), return_sequences=True)
    w = np.ones((B, T, H))
    w[:, 3] = np.inf  # the loss's gradient is infinite at step 3, then spreads to t < 3
    with diagnostics.record(layer) as rec, np.errstate(invalid="ignore", over="ignore"):
        (layer(Tensor(X)) * w).sum().backward()
    text = rec.report(layer)
    assert "parameter cell.weight_hh" in text and "parameter cell.weight_ih" in text
    assert "dLoss/dh of layer 0 direction forward: not finite at 4 steps in t=0..3" in text
    assert "first (in backward) at t=3" in text
    assert np.isfinite(rec.grad_norms()[0, "forward"]["h"][4:]).all()
    with pytest.raises(FloatingPointError, match="cell.weight_hh"):
        rec.check_finite(layer)


def test_finite_report_and_param_norms():
    layer = Recurrent(GRUCell(I, H))
    with diagnostics.record(layer) as rec:
        layer(Tensor(X)).sum().backward()
    assert rec.report(layer).startswith("all gradients finite")
    rec.check_finite(layer)
    norms = diagnostics.param_grad_norms(layer)
    assert set(norms) == {n for n, _ in layer.named_parameters()}
    assert norms["cell.weight_hh"] == pytest.approx(np.linalg.norm(layer.cell.weight_hh.grad))


def test_errors_are_clear():
    with pytest.raises(ValueError, match="no module of Linear unrolls"), diagnostics.record(
            Linear(2, 2)):
        pass
    layer = Recurrent(RNNCell(I, H))
    with diagnostics.record(layer) as rec:
        layer(Tensor(X))
    with pytest.raises(RuntimeError, match="backward"):
        rec.grad_norms()


def test_plot_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    layer = Recurrent(LSTMCell(I, H))
    with diagnostics.record(layer) as rec:
        last_step_loss(layer(Tensor(X))[:, None]).backward()
    one = diagnostics.plot(rec, str(tmp_path / "one.png"))
    many = diagnostics.plot({"lstm": rec, "again": rec.grad_norms()}, str(tmp_path / "two.png"))
    for path in (one, many):
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_plot_without_matplotlib_says_how_to_get_it(monkeypatch, tmp_path):
    monkeypatch.setitem(__import__("sys").modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match="pip install matplotlib"):
        diagnostics.plot({}, str(tmp_path / "x.png"))
