"""Parity with torch: every step Jacobian of state_jacobians equals
torch.autograd.functional.jacobian of the torch cell (weights copied) at the same state, in
float64 to 1e-10, for RNN (tanh, relu), LSTM (h and c) and GRU, every layer and direction of a
two-layer bidirectional stack, with lengths (the identity at padded steps)."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_rnn import diagnostics, nn

torch = pytest.importorskip("torch")
jacobian = torch.autograd.functional.jacobian

B, T, IN, H = 3, 5, 3, 4
LENGTHS = [5, 3, 1]

STACKS = {
    "rnn_tanh": (lambda: nn.RNN(IN, H, 2, batch_first=True, bidirectional=True),
                 lambda: torch.nn.RNN(IN, H, 2, batch_first=True, bidirectional=True),
                 lambda i: torch.nn.RNNCell(i, H)),
    "rnn_relu": (lambda: nn.RNN(IN, H, 2, "relu", batch_first=True, bidirectional=True),
                 lambda: torch.nn.RNN(IN, H, 2, "relu", batch_first=True, bidirectional=True),
                 lambda i: torch.nn.RNNCell(i, H, nonlinearity="relu")),
    "lstm": (lambda: nn.LSTM(IN, H, 2, batch_first=True, bidirectional=True),
             lambda: torch.nn.LSTM(IN, H, 2, batch_first=True, bidirectional=True),
             lambda i: torch.nn.LSTMCell(i, H)),
    "gru": (lambda: nn.GRU(IN, H, 2, batch_first=True, bidirectional=True),
            lambda: torch.nn.GRU(IN, H, 2, batch_first=True, bidirectional=True),
            lambda i: torch.nn.GRUCell(i, H)),
}


def _torch_cell(make_cell, stack, layer: int, direction: str):
    """The torch cell of one layer and direction of `stack`, its weights copied."""
    cell = make_cell(H * 2 if layer else IN).double()
    suffix = f"_l{layer}" + ("_reverse" if direction == "backward" else "")
    with torch.no_grad():
        for name, p in cell.named_parameters():
            p.copy_(getattr(stack, name + suffix))
    return cell


def _torch_jacobians(make_cell, stack, x: np.ndarray, lengths: list[int]) -> tuple[dict, object]:
    """Each layer's trajectory rebuilt step by step with torch cells (padded steps keep the
    state and output zeros), the Jacobian of every real step by torch, the identity elsewhere.
    Returns ({key: (T, B, S, S)}, the top layer's output sequence)."""
    lstm = isinstance(stack, torch.nn.LSTM)
    size = 2 * H if lstm else H
    valid = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]  # (B, T)
    inp, out = torch.tensor(x), {}
    for layer in range(2):
        outputs = []
        for direction in ("forward", "backward"):
            cell = _torch_cell(make_cell, stack, layer, direction)
            zero = torch.zeros(B, H, dtype=torch.float64)
            state = (zero, zero) if lstm else zero
            jac = np.broadcast_to(np.eye(size), (T, B, size, size)).copy()
            seq = torch.zeros(B, T, H, dtype=torch.float64)
            for t in (range(T - 1, -1, -1) if direction == "backward" else range(T)):
                for b in range(B):
                    if valid[b, t]:
                        s_prev = torch.cat(state, 1)[b] if lstm else state[b]
                        jac[t, b] = jacobian(_flat_step(cell, inp[b:b + 1, t], lstm), s_prev)
                with torch.no_grad():
                    new = cell(inp[:, t], state)
                    keep = valid[:, t, None]
                    if lstm:
                        state = (torch.where(keep, new[0], state[0]),
                                 torch.where(keep, new[1], state[1]))
                    else:
                        state = torch.where(keep, new, state)
                    h = state[0] if lstm else state
                    seq[:, t] = torch.where(keep, h, torch.zeros_like(h))
            out[layer, direction] = jac
            outputs.append(seq)
        inp = torch.cat(outputs, dim=-1)
    return out, inp


def _flat_step(cell, x_t, lstm: bool):
    """s_prev (S,) -> s_new (S,) for one sequence: the cell step on the flattened state."""
    def step(s):
        if lstm:
            h, c = cell(x_t, (s[None, :H], s[None, H:]))
            return torch.cat([h, c], 1)[0]
        return cell(x_t, s[None])[0]
    return step


@pytest.mark.parametrize("name", sorted(STACKS))
def test_every_step_jacobian_equals_torch(name):
    make_ours, make_theirs, make_cell = STACKS[name]
    np.random.seed(1)
    ours = make_ours()  # float32: the weights are exact in float64, the Jacobians must be too
    theirs = make_theirs().double()
    with torch.no_grad():
        for (n, p), (tn, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
            assert n == tn
            tp.copy_(torch.tensor(p.data, dtype=torch.float64))
    x = np.random.default_rng(2).standard_normal((B, T, IN)).astype(np.float32)

    got = diagnostics.state_jacobians(ours, x, lengths=LENGTHS)
    want, top = _torch_jacobians(make_cell, theirs, x.astype(np.float64), LENGTHS)

    # the rebuilt trajectory is torch's own: the packed stack gives the same top-layer outputs
    packed = torch.nn.utils.rnn.pack_padded_sequence(
        torch.tensor(x, dtype=torch.float64), torch.tensor(LENGTHS), batch_first=True,
        enforce_sorted=False)
    with torch.no_grad():
        out, _ = theirs(packed)
    padded, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=T)
    np.testing.assert_allclose(padded.numpy(), top.numpy(), rtol=0, atol=1e-12)

    assert sorted(got) == sorted(want)
    for key, jac in want.items():
        assert got[key].dtype == np.float64 and got[key].shape == jac.shape, key
        np.testing.assert_allclose(got[key], jac, rtol=0, atol=1e-10, err_msg=str(key))
    for t in range(T):  # padded steps: exactly the identity
        for b, n in enumerate(LENGTHS):
            if t >= n:
                for key in want:
                    assert np.array_equal(got[key][t, b], np.eye(jac.shape[-1])), (key, t, b)
    assert ours.weight_hh_l0.dtype == np.float32  # the module came back as it was


@pytest.mark.parametrize("name", ["lstm", "gru"])
def test_time_first_stack_and_given_initial_state_match_torch(name):
    """batch_first=False and an initial state: the first step starts from hx."""
    make_ours, _, make_cell = STACKS[name]
    np.random.seed(3)
    ours = make_ours()
    ours.batch_first = False
    rng = np.random.default_rng(4)
    x = rng.standard_normal((T, B, IN))
    h0 = rng.standard_normal((4, B, H))
    hx = (h0, rng.standard_normal((4, B, H))) if name == "lstm" else h0
    got = diagnostics.state_jacobians(ours, x, hx)
    cell = _torch_cell(make_cell, _as_torch(ours), 0, "backward")  # index 1: layer 0 reverse
    lstm = name == "lstm"
    state = (torch.tensor(hx[0][1]), torch.tensor(hx[1][1])) if lstm else torch.tensor(h0[1])
    xt = torch.tensor(x)
    for t in range(T - 1, -1, -1):
        for b in range(B):
            s_prev = torch.cat(state, 1)[b] if lstm else state[b]
            want = jacobian(_flat_step(cell, xt[t, b:b + 1], lstm), s_prev)
            np.testing.assert_allclose(got[0, "backward"][t, b], want, rtol=0, atol=1e-10)
        with torch.no_grad():
            state = cell(xt[t], state)


def _as_torch(ours):
    """A torch module with `ours`' parameters as float64 attributes (for _torch_cell)."""
    holder = torch.nn.Module()
    for n, p in ours.named_parameters():
        holder.register_parameter(n, torch.nn.Parameter(torch.tensor(p.data, dtype=torch.float64)))
    return holder
