"""Parity with torch.nn.utils.rnn (float64): PackedSequence fields, padding, and the stacks on
packed batches (sorted and unsorted): outputs, final states in the caller's order, gradients
w.r.t. the padded input and every parameter. What torch refuses, we refuse."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.nn.utils import rnn

torch = pytest.importorskip("torch")
TR = torch.nn.utils.rnn
TOL = {"rtol": 1e-6, "atol": 1e-6}
SORTED, UNSORTED = [5, 5, 3, 1], [2, 5, 1, 5, 3]  # ties in both


def _x(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def _assert_fields_equal(ours: rnn.PackedSequence, theirs, tol: float = 0.0) -> None:
    np.testing.assert_allclose(ours.data.data, theirs.data.detach().numpy(), rtol=tol, atol=tol)
    np.testing.assert_array_equal(ours.batch_sizes.data, theirs.batch_sizes.numpy())
    assert ours.batch_sizes.dtype == np.int64
    for name in ("sorted_indices", "unsorted_indices"):
        a, b = getattr(ours, name), getattr(theirs, name)
        assert (a is None) == (b is None), name
        if a is not None:
            np.testing.assert_array_equal(a.data, b.numpy(), err_msg=name)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("lengths, enforce_sorted", [(SORTED, True), (SORTED, False),
                                                     (UNSORTED, False)])
def test_pack_and_pad_fields_equal_torchs(lengths, enforce_sorted, batch_first):
    shape = (len(lengths), 6, 3) if batch_first else (6, len(lengths), 3)
    x = _x(*shape)
    ours = rnn.pack_padded_sequence(x, lengths, batch_first, enforce_sorted)
    theirs = TR.pack_padded_sequence(torch.tensor(x), torch.tensor(lengths), batch_first,
                                     enforce_sorted)
    _assert_fields_equal(ours, theirs)
    for total, pad in [(None, 0.0), (8, -2.5)]:
        padded, lens = rnn.pad_packed_sequence(ours, batch_first, pad, total)
        t_padded, t_lens = TR.pad_packed_sequence(theirs, batch_first, pad, total)
        np.testing.assert_array_equal(padded.data, t_padded.numpy())
        np.testing.assert_array_equal(lens.data, t_lens.numpy())


@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_pack_sequence_and_pad_sequence_equal_torchs(enforce_sorted):
    seqs = [_x(n, 2, seed=n) for n in ([4, 4, 2, 1] if enforce_sorted else [2, 4, 1, 4])]
    t_seqs = [torch.tensor(s) for s in seqs]
    _assert_fields_equal(rnn.pack_sequence(seqs, enforce_sorted),
                         TR.pack_sequence(t_seqs, enforce_sorted))
    for batch_first, side in itertools.product([False, True], ["right", "left"]):
        np.testing.assert_array_equal(
            rnn.pad_sequence(seqs, batch_first, 3.5, side).data,
            TR.pad_sequence(t_seqs, batch_first, 3.5, side).numpy())


def _pair(kind: str, num_layers: int, bidirectional: bool, batch_first: bool):
    torch.manual_seed(0)
    theirs = getattr(torch.nn, kind)(3, 4, num_layers=num_layers, bidirectional=bidirectional,
                                     batch_first=batch_first).double()
    ours = getattr(nn, kind)(3, 4, num_layers=num_layers, bidirectional=bidirectional,
                             batch_first=batch_first).to(np.float64)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def _flat(state) -> list:
    return list(state) if isinstance(state, tuple) else [state]


CASES = list(itertools.product(["RNN", "LSTM", "GRU"], [1, 2], [False, True], [False, True],
                               [(SORTED[:4], True), (UNSORTED, False)]))


@pytest.mark.parametrize("kind, num_layers, bidirectional, batch_first, packing", CASES)
def test_stack_on_packed_batches_matches_torch(kind, num_layers, bidirectional, batch_first,
                                               packing):
    lengths, enforce_sorted = packing
    ours, theirs = _pair(kind, num_layers, bidirectional, batch_first)
    b, t = len(lengths), max(lengths)
    x = _x(*((b, t, 3) if batch_first else (t, b, 3)))
    x_o, x_t = tg.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    p_o = rnn.pack_padded_sequence(x_o, lengths, batch_first, enforce_sorted)
    p_t = TR.pack_padded_sequence(x_t, torch.tensor(lengths), batch_first, enforce_sorted)
    out_o, h_o = ours(p_o)
    out_t, h_t = theirs(p_t)
    _assert_fields_equal(out_o, out_t, 1e-6)
    h_o, h_t = _flat(h_o), _flat(h_t)
    for a, c in zip(h_o, h_t):  # final states in the caller's batch order
        np.testing.assert_allclose(a.data, c.detach().numpy(), **TOL)
    pad_o, _ = rnn.pad_packed_sequence(out_o, batch_first)
    pad_t, _ = TR.pad_packed_sequence(out_t, batch_first)
    rng = np.random.default_rng(1)
    weights = [rng.standard_normal(pad_t.shape)] + [rng.standard_normal(h.shape) for h in h_t]
    sum((v * w).sum() for v, w in zip([pad_o, *h_o], weights)).backward()
    sum((v * torch.tensor(w)).sum() for v, w in zip([pad_t, *h_t], weights)).backward()
    np.testing.assert_allclose(x_o.grad, x_t.grad.numpy(), **TOL)
    for (name, p), (_, q) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), **TOL, err_msg=name)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_packed_batch_with_hx_in_the_callers_order_matches_torch(kind):
    ours, theirs = _pair(kind, 2, True, False)
    x = _x(5, 5, 3)
    hx = [_x(4, 5, 4, seed=s) for s in (1, 2)][:2 if kind == "LSTM" else 1]
    hx_o = tuple(hx) if kind == "LSTM" else hx[0]
    hx_t = tuple(torch.tensor(h) for h in hx) if kind == "LSTM" else torch.tensor(hx[0])
    out_o, h_o = ours(rnn.pack_padded_sequence(x, UNSORTED, enforce_sorted=False), hx_o)
    out_t, h_t = theirs(TR.pack_padded_sequence(torch.tensor(x), torch.tensor(UNSORTED),
                                                enforce_sorted=False), hx_t)
    np.testing.assert_allclose(out_o.data.data, out_t.data.detach().numpy(), **TOL)
    for a, c in zip(_flat(h_o), _flat(h_t)):
        np.testing.assert_allclose(a.data, c.detach().numpy(), **TOL)


# (what, our call, torch's call, our error type, our message)
REFUSED = [
    ("unsorted lengths with enforce_sorted",
     lambda: rnn.pack_padded_sequence(_x(4, 3, 2), [2, 3, 1]),
     lambda: TR.pack_padded_sequence(torch.zeros(4, 3, 2), [2, 3, 1]),
     RuntimeError, r"You can pass `enforce_sorted=False`"),
    ("a length of 0", lambda: rnn.pack_padded_sequence(_x(4, 3, 2), [3, 2, 0]),
     lambda: TR.pack_padded_sequence(torch.zeros(4, 3, 2), [3, 2, 0]),
     RuntimeError, r"Length of all samples has to be greater than 0"),
    ("another count of lengths", lambda: rnn.pack_padded_sequence(_x(4, 3, 2), [3, 2]),
     lambda: TR.pack_padded_sequence(torch.zeros(4, 3, 2), [3, 2]),
     RuntimeError, r"Expected `len\(lengths\)` to be equal to batch_size, but got 2"),
    ("2-D lengths", lambda: rnn.pack_padded_sequence(_x(4, 3, 2), [[3, 2, 1]]),
     lambda: TR.pack_padded_sequence(torch.zeros(4, 3, 2), [[3, 2, 1]]),
     RuntimeError, r"'lengths' argument should be a 1D"),
    ("an empty batch", lambda: rnn.pack_padded_sequence(_x(4, 0, 2), [], enforce_sorted=False),
     lambda: TR.pack_padded_sequence(torch.zeros(4, 0, 2), [], enforce_sorted=False),
     RuntimeError, r"cannot pack empty tensors"),
    ("batch_first not a bool", lambda: rnn.pack_padded_sequence(_x(4, 3, 2), [3, 2, 1], 1),
     lambda: TR.pack_padded_sequence(torch.zeros(4, 3, 2), [3, 2, 1], 1),
     TypeError, r"batch_first must be a bool"),
    ("total_length below the longest",
     lambda: rnn.pad_packed_sequence(rnn.pack_sequence([_x(4, 2)]), total_length=2),
     lambda: TR.pad_packed_sequence(TR.pack_sequence([torch.zeros(4, 2)]), total_length=2),
     ValueError, r"Expected total_length to be at least the length of the longest sequence"),
    ("a float total_length",
     lambda: rnn.pad_packed_sequence(rnn.pack_sequence([_x(4, 2)]), total_length=5.0),
     lambda: TR.pad_packed_sequence(TR.pack_sequence([torch.zeros(4, 2)]), total_length=5.0),
     TypeError, r"total_length must be an int"),
    ("no sequences", lambda: rnn.pad_sequence([]), lambda: TR.pad_sequence([]),
     RuntimeError, r"received an empty list of sequences"),
    ("sequences of other trailing shapes", lambda: rnn.pad_sequence([_x(3, 2), _x(1, 3)]),
     lambda: TR.pad_sequence([torch.zeros(3, 2), torch.zeros(1, 3)]),
     RuntimeError, r"every sequence must be \(L, \*\) with the trailing shape"),
    ("pack_sequence of unsorted sequences", lambda: rnn.pack_sequence([_x(1, 2), _x(3, 2)]),
     lambda: TR.pack_sequence([torch.zeros(1, 2), torch.zeros(3, 2)]),
     RuntimeError, r"You can pass `enforce_sorted=False`"),
    ("a packed batch of another width",
     lambda: nn.LSTM(3, 4)(rnn.pack_sequence([_x(3, 5), _x(2, 5)])),
     lambda: torch.nn.LSTM(3, 4)(TR.pack_sequence([torch.zeros(3, 5), torch.zeros(2, 5)])),
     ValueError, r"LSTM: a PackedSequence input needs data of shape \(N, input_size=3\)"),
]


@pytest.mark.parametrize("what, ours, theirs, error, message", REFUSED,
                         ids=[r[0] for r in REFUSED])
def test_what_torch_refuses_we_refuse(what, ours, theirs, error, message):
    with pytest.raises(Exception):  # noqa: B017 (torch's types vary: we only need a refusal)
        theirs()
    with pytest.raises(error, match=message):
        ours()
