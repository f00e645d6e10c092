"""nn.utils.rnn: packing and padding (fields, round trips, gradients) and the stacks taking a
PackedSequence, which equals running the padded batch with its lengths (one code path)."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn.nn import GRU, LSTM, RNN, Embedding, GRUCell, Recurrent
from tinygrad_rnn.nn.utils.rnn import (
    PackedSequence,
    PackingError,
    PackingTypeError,
    invert_permutation,
    pack_padded_sequence,
    pack_sequence,
    pad_packed_sequence,
    pad_sequence,
    unpack_sequence,
    unpad_sequence,
)

LENGTHS = [2, 4, 1, 4]  # unsorted, with a tie


def _x(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def _flat(state) -> list[tg.Tensor]:
    return list(state) if isinstance(state, tuple) else [state]


def test_fields_of_a_small_unsorted_batch():
    x = np.arange(4 * 4, dtype=np.float64).reshape(4, 4)  # (T, B): value 4t + b
    ps = pack_padded_sequence(x, LENGTHS, enforce_sorted=False)
    assert isinstance(ps, tuple) and ps._fields == ("data", "batch_sizes", "sorted_indices",
                                                    "unsorted_indices")
    np.testing.assert_array_equal(ps.sorted_indices.data, [1, 3, 0, 2])  # ties stay in order
    np.testing.assert_array_equal(ps.unsorted_indices.data, [2, 0, 3, 1])
    np.testing.assert_array_equal(ps.batch_sizes.data, [4, 3, 2, 2])
    assert ps.batch_sizes.dtype == ps.sorted_indices.dtype == np.int64
    np.testing.assert_array_equal(ps.data.data, [1, 3, 0, 2, 5, 7, 4, 9, 11, 13, 15])


def test_sorted_batch_has_no_index_fields():
    ps = pack_padded_sequence(_x(5, 3, 2), [5, 3, 3])
    assert ps.sorted_indices is None and ps.unsorted_indices is None
    np.testing.assert_array_equal(ps.batch_sizes.data, [3, 3, 3, 1, 1])
    assert ps.data.shape == (11, 2)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("enforce_sorted, lengths", [(True, [4, 4, 2, 1]), (False, LENGTHS)])
def test_pad_undoes_pack_in_the_callers_order(batch_first, enforce_sorted, lengths):
    x = _x(4, 4, 3) if not batch_first else _x(4, 4, 3).transpose(1, 0, 2).copy()
    ps = pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=enforce_sorted)
    padded, got = pad_packed_sequence(ps, batch_first=batch_first, padding_value=-7.0,
                                      total_length=6)
    np.testing.assert_array_equal(got.data, lengths)
    bt = padded.data if batch_first else padded.data.transpose(1, 0, 2)
    xb = x if batch_first else x.transpose(1, 0, 2)
    assert bt.shape == (4, 6, 3)
    for i, n in enumerate(lengths):
        np.testing.assert_array_equal(bt[i, :n], xb[i, :n])
        assert (bt[i, n:] == -7.0).all()


def test_gradients_flow_through_pack_and_pad():
    w = _x(5, 4, 3, seed=1)

    def f(x):
        ps = pack_padded_sequence(x, LENGTHS, enforce_sorted=False)
        padded, _ = pad_packed_sequence(ps, total_length=5)
        return (padded * w).sum() + (ps.data ** 2).sum()
    x = tg.Tensor(_x(4, 4, 3), requires_grad=True)
    assert tg.gradcheck(f, [x])
    f(x).backward()
    for b, n in enumerate(LENGTHS):
        assert not x.grad[n:, b].any()  # padding is never read


def test_pad_sequence_and_pack_sequence():
    seqs = [_x(2, 3), _x(4, 3, seed=1), _x(1, 3, seed=2)]
    right = pad_sequence(seqs, padding_value=9.0)
    left = pad_sequence(seqs, batch_first=True, padding_side="left")
    assert right.shape == (4, 3, 3) and left.shape == (3, 4, 3)
    np.testing.assert_array_equal(right.data[:2, 0], seqs[0])
    assert (right.data[2:, 0] == 9.0).all()
    np.testing.assert_array_equal(left.data[0, 2:], seqs[0])
    assert not left.data[0, :2].any()
    ps = pack_sequence(seqs, enforce_sorted=False)
    np.testing.assert_array_equal(ps.batch_sizes.data, [3, 2, 1, 1])
    padded, lengths = pad_packed_sequence(ps, batch_first=True)
    np.testing.assert_array_equal(lengths.data, [2, 4, 1])
    np.testing.assert_array_equal(padded.data[1], seqs[1])
    rows = pad_sequence(tg.Tensor(_x(3, 2)))  # a tensor stands for the list of its rows
    assert rows.shape == (2, 3)


def test_unpad_and_unpack_undo_pad_and_pack():
    seqs = [_x(2, 3), _x(4, 3, seed=1), _x(1, 3, seed=2)]
    for batch_first in (False, True):
        back = unpad_sequence(pad_sequence(seqs, batch_first), [2, 4, 1], batch_first)
        assert all(np.array_equal(b.data, s) for b, s in zip(back, seqs))
    unpacked = unpack_sequence(pack_sequence(seqs, enforce_sorted=False))
    assert all(np.array_equal(u.data, s) for u, s in zip(unpacked, seqs))
    np.testing.assert_array_equal(invert_permutation(np.array([2, 0, 1])).data, [1, 2, 0])
    assert invert_permutation(None) is None


def test_unpad_sequence_gradient():
    x = tg.Tensor(_x(4, 3, 2), requires_grad=True)
    w = [_x(n, 2, seed=5 + n) for n in (4, 1, 3)]
    assert tg.gradcheck(lambda x: sum((p * wi).sum() for p, wi in zip(
        unpad_sequence(x, [4, 1, 3]), w)), [x])


def test_packed_sequence_forms_and_casts():
    ps = PackedSequence((_x(3, 2), [2, 1]))  # torch's (data, batch_sizes) pair
    np.testing.assert_array_equal(ps.batch_sizes.data, [2, 1])
    ps = PackedSequence(_x(3, 2), np.array([2.0, 1.0]), [1, 0])  # whole floats pass
    np.testing.assert_array_equal(ps.unsorted_indices.data, [1, 0])
    assert ps.to(np.float64) is ps and ps.cpu() is ps and ps.to("cpu") is ps
    assert not ps.is_cuda and not ps.is_pinned()
    as32 = ps.float()
    assert as32.data.dtype == np.float32 and as32.sorted_indices is ps.sorted_indices
    np.testing.assert_array_equal(ps.long().data.data, ps.data.data.astype(np.int64))
    assert {c: getattr(ps, c)().data.dtype for c in ("half", "int", "short", "char", "byte")} \
        == {"half": np.float16, "int": np.int32, "short": np.int16, "char": np.int8,
            "byte": np.uint8}


def test_a_widening_cast_is_differentiable():
    x = tg.Tensor(_x(3, 2, 2).astype(np.float32), requires_grad=True)
    ps = pack_padded_sequence(x, [3, 1]).double()
    (ps.data * ps.data).sum().backward()
    expected = 2 * x.data
    expected[1:, 1] = 0.0
    np.testing.assert_allclose(x.grad, expected, rtol=1e-6)


def test_pad_sequence_gradient():
    a, b = tg.Tensor(_x(3, 2), requires_grad=True), tg.Tensor(_x(1, 2), requires_grad=True)
    assert tg.gradcheck(lambda a, b: (pad_sequence([a, b]) * _x(3, 2, 2, seed=4)).sum(),
                        [a, b])


def _packed_run(net, x, lengths, hx=None):
    """The stack on pack_padded_sequence(x), the output padded again."""
    bf = net.batch_first
    ps = pack_padded_sequence(x, lengths, batch_first=bf, enforce_sorted=False)
    out, h_n = net(ps, hx)
    assert isinstance(out, PackedSequence)
    assert out.batch_sizes is ps.batch_sizes and out.sorted_indices is ps.sorted_indices
    padded, got = pad_packed_sequence(out, batch_first=bf, total_length=x.shape[1 if bf else 0])
    np.testing.assert_array_equal(got.data, lengths)
    return padded, h_n


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_stack_on_a_packed_sequence_equals_lengths(cls, batch_first):
    np.random.seed(0)
    net = cls(3, 4, num_layers=2, bidirectional=True, batch_first=batch_first).to(np.float64)
    x = _x(4, 4, 3)
    hx = tuple(_x(4, 4, 4, seed=s) for s in (1, 2)) if cls is LSTM else _x(4, 4, 4, seed=1)
    xp, xl = tg.Tensor(x, requires_grad=True), tg.Tensor(x, requires_grad=True)
    packed, h_p = _packed_run(net, xp, LENGTHS, hx)
    w = _x(*packed.shape, seed=3)
    ((packed * w).sum() + sum((h ** 2).sum() for h in _flat(h_p))).backward()
    grads = {n: p.grad.copy() for n, p in net.named_parameters()}
    net.zero_grad()
    plain, h_l = net(xl, hx, lengths=LENGTHS)
    ((plain * w).sum() + sum((h ** 2).sum() for h in _flat(h_l))).backward()
    np.testing.assert_allclose(packed.data, plain.data, atol=1e-12)
    for a, b in zip(_flat(h_p), _flat(h_l)):  # final states in the caller's batch order
        np.testing.assert_allclose(a.data, b.data, atol=1e-12)
    np.testing.assert_allclose(xp.grad, xl.grad, atol=1e-12)
    for n, p in net.named_parameters():
        np.testing.assert_allclose(grads[n], p.grad, atol=1e-12, err_msg=n)


def test_embedding_on_packed_ids_then_a_stack():
    np.random.seed(1)
    emb, gru = Embedding(9, 3).to(np.float64), GRU(3, 4).to(np.float64)
    ids = np.array([[1, 2, 3], [4, 5, 0], [6, 0, 0]]).T  # (T, B), lengths 3, 2, 1
    ps = pack_padded_sequence(ids, [3, 2, 1])
    assert ps.data.dtype == np.int64
    _out, h = gru(PackedSequence(emb(ps.data), ps.batch_sizes))
    _, expected = gru(emb(ids), lengths=[3, 2, 1])
    np.testing.assert_allclose(h.data, expected.data, atol=1e-12)


# ---- refused ------------------------------------------------------------------------------
PACK_ERRORS = [
    (lambda: pack_padded_sequence(_x(4, 3, 2), [2, 3, 1]), PackingError,
     (r"pack_padded_sequence: `lengths` array must be sorted in decreasing order when "
      r"`enforce_sorted` is True, got \[2, 3, 1\]\. You can pass `enforce_sorted=False`")),
    (lambda: pack_padded_sequence(_x(4, 3, 2), [3, 2, 0]), PackingError,
     (r"pack_padded_sequence: Length of all samples has to be greater than 0, but found an "
      r"element in 'lengths' that is <= 0: got \[0\] \(lengths must be in \[1, T=4\]\)")),
    (lambda: pack_padded_sequence(_x(4, 3, 2), [5, 2, 1], enforce_sorted=False), PackingError,
     r"lengths must be in \[1, T=4\] \(the input's time axis\), got \[5\]"),
    (lambda: pack_padded_sequence(_x(4, 3, 2), [3, 2]), PackingError,
     (r"pack_padded_sequence: Expected `len\(lengths\)` to be equal to batch_size, but got 2 "
      r"\(batch_size=3\)")),
    (lambda: pack_padded_sequence(_x(4, 3, 2), [[3, 2, 1]]), PackingError,
     (r"pack_padded_sequence: 'lengths' argument should be a 1D tensor or list of integers, "
      r"got shape \(1, 3\)")),
    (lambda: pack_padded_sequence(_x(4, 2, 2), [[3, 1], [2]]), ValueError,
     r"pack_padded_sequence: lengths is ragged"),
    (lambda: pack_padded_sequence(_x(4, 2, 2), "ab"), TypeError,
     r"pack_padded_sequence: lengths must hold real numbers"),
    (lambda: pack_padded_sequence(_x(4, 1, 2), 3), PackingError,
     r"pack_padded_sequence: 'lengths' argument should be a 1D .* got shape \(\)"),
    (lambda: pack_padded_sequence(_x(4, 3, 2), [3.0, 2.5, 1.0]), TypeError,
     r"pack_padded_sequence: lengths must hold integers, got dtype float64 holding 2.5"),
    (lambda: pack_padded_sequence(_x(4, 3, 2), [True, True, False]), TypeError,
     r"pack_padded_sequence: lengths must hold integers, got dtype bool"),
    (lambda: pack_padded_sequence(_x(4, 0, 2), []), PackingError,
     r"pack_padded_sequence: cannot pack empty tensors: input has shape \(4, 0, 2\)"),
    (lambda: pack_padded_sequence(_x(0, 2, 2), [1, 1]), PackingError,
     r"pack_padded_sequence: cannot pack empty tensors: input has shape \(0, 2, 2\)"),
    (lambda: pack_padded_sequence(_x(3, 2, 0), [3, 1]), PackingError,
     r"pack_padded_sequence: cannot pack empty tensors"),
    (lambda: pack_padded_sequence(_x(0, 1, 4), _x(2, 2), True), PackingError,
     r"pack_padded_sequence: cannot pack empty tensors"),  # checked before the lengths
    (lambda: pack_padded_sequence(_x(4), [4]), ValueError,
     r"pack_padded_sequence: input must be at least 2-D \(T, B, \*\), got shape \(4,\)"),
    (lambda: pack_padded_sequence(_x(4, 3, 2), [3, 2, 1], batch_first=1), TypeError,
     r"pack_padded_sequence: batch_first must be a bool"),
    (lambda: pack_padded_sequence(_x(4, 3, 2), [3, 2, 1], enforce_sorted="no"), TypeError,
     r"pack_padded_sequence: enforce_sorted must be a bool"),
    (lambda: pack_padded_sequence(["a", "b"], [1, 1]), TypeError,
     r"pack_padded_sequence: input must hold real numbers"),
    (lambda: pad_packed_sequence(tg.Tensor(_x(4, 3, 2))), TypeError,
     r"pad_packed_sequence: sequence must be a PackedSequence, got Tensor"),
    (lambda: pad_packed_sequence(pack_sequence([_x(4, 2)]), total_length=2), ValueError,
     (r"pad_packed_sequence: Expected total_length to be at least the length of the longest "
      r"sequence in input, but got total_length=2 and max sequence length being 4")),
    (lambda: pad_packed_sequence(pack_sequence([_x(4, 2)]), total_length=-1), ValueError,
     r"pad_packed_sequence: Expected total_length to be at least .* total_length=-1"),
    (lambda: pad_packed_sequence(pack_sequence([_x(4, 2)]), total_length=True), TypeError,
     r"pad_packed_sequence: total_length must be an integer, got bool"),
    (lambda: pad_packed_sequence(pack_sequence([_x(4, 2)]), total_length=6.0), TypeError,
     r"pad_packed_sequence: total_length must be an integer, got float"),
    (lambda: pad_packed_sequence(pack_sequence([_x(4, 2)]), padding_value="x"), TypeError,
     r"pad_packed_sequence: padding_value must be a real number"),
    (lambda: pad_sequence([]), PackingError, r"pad_sequence: received an empty list"),
    (lambda: pad_sequence([_x(3, 2), _x(1, 3)]), PackingError,
     (r"pad_sequence: every sequence must be \(L, \*\) with the trailing shape \(2,\) of "
     r"sequences\[0\], got sequences\[1\] of shape \(1, 3\)")),
    (lambda: pad_sequence([_x(3, 2)], padding_side="top"), PackingError,
     r"pad_sequence: padding_side must be 'right' or 'left', got 'top'"),
    (lambda: pad_sequence(5), PackingTypeError,
     (r"pad_sequence: sequences must be a list of tensors, got int \(Expected iterable for "
      r"input sequences, but got arg of type: int\)")),
    (lambda: pack_sequence([_x(1, 2), _x(3, 2)]), PackingError,
     r"pack_sequence: `lengths` array must be sorted in decreasing order"),
    (lambda: pack_sequence([_x(0, 2), _x(3, 2)], enforce_sorted=False), PackingError,
     r"pack_sequence: Length of all samples has to be greater than 0.*got \[0\]"),
    (lambda: PackedSequence(_x(5, 2), [3, 3]), ValueError,
     (r"PackedSequence: batch_sizes must be positive and non-increasing and add up to data's "
     r"first dimension, got \[3, 3\] for data of shape \(5, 2\)")),
    (lambda: PackedSequence(_x(5, 2), [2, 3]), ValueError, r"PackedSequence: batch_sizes"),
    (lambda: PackedSequence(_x(5, 2), [3, 2], [0, 0, 1]), ValueError,
     r"PackedSequence: sorted_indices must be a permutation of range\(3\)"),
    (lambda: PackedSequence(_x(5, 2), [3, 2], [1, 0, 2], [2, 0, 1]), ValueError,
     r"PackedSequence: unsorted_indices must be the inverse permutation"),
    (lambda: PackedSequence(_x(5, 2), [3, 2], None, [1, 0, 2]), ValueError,
     r"PackedSequence: unsorted_indices given without sorted_indices"),
    (lambda: PackedSequence(_x(5, 2)), TypeError,
     (r"PackedSequence: without batch_sizes, data must be a pair \(data, batch_sizes\), got "
     r"ndarray")),
    (lambda: PackedSequence(_x(3, 2), [2.5, 0.5]), TypeError,
     r"PackedSequence: batch_sizes must hold integers, got dtype float64 holding 2.5"),
    (lambda: pack_sequence([_x(3, 2)]).to("cuda"), RuntimeError,
     (r"PackedSequence.to: tinygrad_rnn computes on the CPU only, so device must be 'cpu', got "
     r"'cuda'")),
    (lambda: pack_sequence([_x(3, 2)]).cuda(), RuntimeError, r"PackedSequence.cuda: "),
    (lambda: pack_sequence([_x(3, 2)]).to(np.float64, device="cpu", sideways=True), TypeError,
     r"PackedSequence.to: unexpected keyword argument\(s\) \['sideways'\]"),
    (lambda: pack_sequence([_x(3, 2)]).to("no such dtype"), TypeError,
     r"PackedSequence.to: dtype must be a numpy dtype, its name or a torch dtype"),
    (lambda: pack_sequence([tg.Tensor(_x(3, 2), requires_grad=True)]).float(), RuntimeError,
     r"PackedSequence.to: data requires grad and float64 -> float32 narrows it"),
    (lambda: unpad_sequence(_x(4, 3, 2), [4, 1]), ValueError,
     (r"unpad_sequence: expected one length per sequence, 3 \(the batch axis of "
     r"padded_sequences\), got 2")),
    (lambda: unpad_sequence(_x(4, 3, 2), [4, 5, 1]), ValueError,
     r"unpad_sequence: lengths must be in \[0, T=4\], got \[4, 5, 1\]"),
    (lambda: unpad_sequence(_x(4, 3, 2), [4, -1, 1]), ValueError,
     r"unpad_sequence: lengths must be in \[0, T=4\], got \[4, -1, 1\]"),
    (lambda: unpad_sequence(_x(4, 3, 2), [4, 1, 1], batch_first=True), ValueError,
     r"unpad_sequence: expected one length per sequence, 4"),
    (lambda: unpad_sequence(_x(4), [4]), ValueError,
     r"unpad_sequence: padded_sequences must be at least 2-D \(T, B, \*\), got shape \(4,\)"),
    (lambda: unpad_sequence(_x(4, 1), [2], batch_first=None), TypeError,
     r"unpad_sequence: batch_first must be a bool"),
    (lambda: unpack_sequence([_x(3, 2)]), TypeError,
     r"unpack_sequence: packed_sequences must be a PackedSequence, got list"),
    (lambda: invert_permutation([0, 0, 2]), ValueError,
     r"invert_permutation: permutation must hold each of 0..2 once, got \[0, 0, 2\]"),
]


@pytest.mark.parametrize("call, error, message", PACK_ERRORS)
def test_bad_pack_arguments_are_refused_naming_them(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_packing_errors_are_value_and_runtime_errors():
    with pytest.raises(ValueError):
        pack_sequence([])
    with pytest.raises(RuntimeError):  # what torch raises there
        pack_sequence([])


def test_stack_refuses_a_packed_sequence_of_another_width_and_extra_lengths():
    lstm = LSTM(3, 4)
    wide = pack_sequence([_x(3, 5), _x(2, 5)])
    for error in (ValueError, RuntimeError):  # StackShapeError: ours, and torch's type
        with pytest.raises(error, match=r"LSTM: a PackedSequence input needs data of shape "
                                        r"\(N, input_size=3\), got \(5, 5\) \(input\.size\(-1\) "
                                        r"must be equal to input_size\. Expected 3, got 5\)"):
            lstm(wide)
    for error in (ValueError, RuntimeError):
        with pytest.raises(error, match=r"LSTM: expected hx of shape \(1, 2, 4\) .* for h_0, got "
                                        r"\(1, 3, 4\) \(Expected hidden\[0\] size \(1, 2, 4\), "
                                        r"got \[1, 3, 4\]\)"):
            lstm(pack_sequence([_x(3, 3), _x(2, 3)]), (np.zeros((1, 3, 4)), np.zeros((1, 2, 4))))
    assert [[w.shape for w in ws] for ws in lstm.all_weights] == [
        [(16, 3), (16, 4), (16,), (16,)]]
    assert all(p.grad is None for p in lstm.parameters())  # the failed calls changed nothing
    ps = pack_sequence([_x(3, 3), _x(2, 3)])
    with pytest.raises(ValueError, match=r"LSTM: a PackedSequence carries its own lengths"):
        lstm(ps, lengths=[3, 2])
    with pytest.raises(ValueError, match=r"LSTM: a PackedSequence carries its own lengths"):
        lstm(ps, mask=np.ones((2, 3), bool))
    with pytest.raises(TypeError, match=r"Recurrent: input is a PackedSequence"):
        Recurrent(GRUCell(3, 4))(ps)
