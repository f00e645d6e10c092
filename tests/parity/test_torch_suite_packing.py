"""torch.nn.utils.rnn side by side with ours, in the spirit of torch's own packed-sequence tests
(test/nn/test_packed_sequence.py): the same calls on the same arrays give the same fields,
dtypes, padded batches, gradients and refusals. Written here from what those tests check."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn.nn.utils import rnn

torch = pytest.importorskip("torch")
TR = torch.nn.utils.rnn

NP_OF_TORCH = {torch.float64: np.float64, torch.float32: np.float32, torch.float16: np.float16,
               torch.int64: np.int64, torch.int32: np.int32, torch.int16: np.int16,
               torch.int8: np.int8, torch.uint8: np.uint8}


def _x(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def _same(ours: tg.Tensor | None, theirs, exact: bool = True) -> None:
    """One field: both None, or the same values and the same dtype."""
    assert (ours is None) == (theirs is None)
    if ours is None:
        return
    ref = theirs.detach().numpy()
    assert ours.dtype == ref.dtype and ours.shape == ref.shape
    if exact:
        np.testing.assert_array_equal(ours.data, ref)
    else:
        np.testing.assert_allclose(ours.data, ref, rtol=1e-12, atol=1e-12)


def _same_packed(ours: rnn.PackedSequence, theirs) -> None:
    for field in ("data", "batch_sizes", "sorted_indices", "unsorted_indices"):
        _same(getattr(ours, field), getattr(theirs, field))


# ---- pack_padded_sequence: fields, the inverse, gradients (torch's generate_test_case) -------
PADDED_CASES = list(itertools.product(
    [([10, 8, 4, 2, 2, 2, 1], None), ([11, 10, 8, 6, 4, 3, 1], None),
     ([11, 10, 8, 6, 4, 3, 1], [3, 0, 6, 1, 5, 2, 4])],
    [False, True]))


@pytest.mark.parametrize("case, batch_first", PADDED_CASES)
def test_pack_padded_sequence_fields_inverse_and_gradient_equal_torchs(case, batch_first):
    sorted_lengths, shuffle = case
    steps, batch = sorted_lengths[0], len(sorted_lengths)
    padded = np.zeros((steps, batch, 5))
    for b, n in enumerate(sorted_lengths):  # value 100 (b + 1) + the step's running count
        padded[:n, b] = (b + 1) * 100 + np.arange(1.0, 5 * n + 1).reshape(n, 5)
    lengths = list(sorted_lengths)
    if shuffle is not None:
        padded, lengths = padded[:, shuffle], [sorted_lengths[i] for i in shuffle]
    src = padded.transpose(1, 0, 2).copy() if batch_first else padded
    x_o, x_t = tg.Tensor(src, requires_grad=True), torch.tensor(src, requires_grad=True)
    enforce = shuffle is None
    ours = rnn.pack_padded_sequence(x_o, lengths, batch_first, enforce)
    theirs = TR.pack_padded_sequence(x_t, lengths, batch_first, enforce)
    _same_packed(ours, theirs)
    out_o, len_o = rnn.pad_packed_sequence(ours, batch_first)
    out_t, len_t = TR.pad_packed_sequence(theirs, batch_first)
    _same(out_o, out_t)
    _same(len_o, len_t)
    np.testing.assert_array_equal(out_o.data, src)  # the inverse, in the caller's order
    grad = _x(*src.shape, seed=3)
    (out_o * grad).sum().backward()
    (out_t * torch.tensor(grad)).sum().backward()
    np.testing.assert_array_equal(x_o.grad, x_t.grad.numpy())
    g_tb = x_o.grad.transpose(1, 0, 2) if batch_first else x_o.grad
    grad_tb = grad.transpose(1, 0, 2) if batch_first else grad
    for b, n in enumerate(lengths):
        np.testing.assert_array_equal(g_tb[:n, b], grad_tb[:n, b])
        assert not g_tb[n:, b].any()  # padding gets no gradient


# ---- pack_sequence and pad_sequence with 0 to 3 trailing dimensions --------------------------
@pytest.mark.parametrize("num_dim", [0, 1, 2, 3])
@pytest.mark.parametrize("order", ["sorted", "shuffled"])
def test_pack_sequence_agrees_with_pad_and_pack_padded_as_torch(num_dim, order):
    rng = np.random.default_rng(num_dim)
    lengths = [n * n for n in range(5, 0, -1)]
    if order == "shuffled":
        lengths = [lengths[i] for i in (2, 0, 4, 1, 3)]
    seqs = [rng.standard_normal((n, 2) + (2,) * num_dim) for n in lengths]
    t_seqs = [torch.tensor(s) for s in seqs]
    for batch_first, enforce in itertools.product([False, True], [False, True]):
        if enforce and order == "shuffled":
            continue
        padded = rnn.pad_sequence(seqs, batch_first)
        _same(padded, TR.pad_sequence(t_seqs, batch_first))
        packed = rnn.pack_sequence(seqs, enforce)
        _same_packed(packed, TR.pack_sequence(t_seqs, enforce))
        np.testing.assert_array_equal(rnn.pad_packed_sequence(packed, batch_first)[0].data,
                                      padded.data)
        again = rnn.pack_padded_sequence(padded, lengths, batch_first, enforce)
        _same_packed(again, TR.pack_sequence(t_seqs, enforce))


@pytest.mark.parametrize("enforce_sorted, order, sorted_indices, unsorted_indices", [
    (False, "abc", [0, 1, 2], [0, 1, 2]),
    (False, "bca", [2, 0, 1], [1, 2, 0]),
    (True, "abc", None, None),
])
def test_pack_sequence_of_integer_vectors_as_torch(enforce_sorted, order, sorted_indices,
                                                   unsorted_indices):
    named = {"a": [1, 2, 3], "b": [4, 5], "c": [6]}
    seqs = [np.array(named[k]) for k in order]
    ours = rnn.pack_sequence(seqs, enforce_sorted)
    _same_packed(ours, TR.pack_sequence([torch.tensor(s) for s in seqs], enforce_sorted))
    np.testing.assert_array_equal(ours.data.data, [1, 4, 6, 2, 5, 3])
    assert ours.data.dtype == ours.batch_sizes.dtype == np.int64
    np.testing.assert_array_equal(ours.batch_sizes.data, [3, 2, 1])
    for got, want in ((ours.sorted_indices, sorted_indices),
                      (ours.unsorted_indices, unsorted_indices)):
        assert got is None if want is None else got.data.tolist() == want


@pytest.mark.parametrize("batch_first, padding_value, side", list(itertools.product(
    [False, True], [0, 1, 2.5, -7], ["right", "left"])))
def test_pad_sequence_of_integer_vectors_as_torch(batch_first, padding_value, side):
    seqs = [np.array([4, 5]), np.array([1, 2, 3]), np.array([6])]
    ours = rnn.pad_sequence(seqs, batch_first, padding_value, side)
    theirs = TR.pad_sequence([torch.tensor(s) for s in seqs], batch_first, padding_value, side)
    _same(ours, theirs)  # the padding value takes the sequences' dtype (2.5 -> 2), as torch


@pytest.mark.parametrize("sequences", [
    "tuple", "tensor", "with an empty one", "all empty", "one"])
def test_pad_sequence_takes_what_torch_takes(sequences):
    made = {"tuple": lambda f: (f([[7.0, 6.0]]), f([[-7.0, -1.0]])),
            "tensor": lambda f: f([[[7.0, 6.0]], [[-7.0, -1.0]]]),
            "with an empty one": lambda f: [f(np.zeros((0, 2))), f(np.ones((2, 2)))],
            "all empty": lambda f: [f(np.zeros((0, 2)))],
            "one": lambda f: [f(np.arange(6.0).reshape(3, 2))]}[sequences]
    ours = rnn.pad_sequence(made(lambda a: tg.Tensor(np.asarray(a, np.float64))))
    theirs = TR.pad_sequence(made(lambda a: torch.tensor(np.asarray(a, np.float64))))
    _same(ours, theirs)


# ---- unpad_sequence / unpack_sequence ---------------------------------------------------------
@pytest.mark.parametrize("num_dim", [0, 1, 2, 3])
@pytest.mark.parametrize("batch_first", [False, True])
def test_unpad_and_unpack_give_the_sequences_back_as_torch(num_dim, batch_first):
    rng = np.random.default_rng(num_dim + 10 * batch_first)
    lengths = [4, 9, 1, 16, 4]
    seqs = [rng.standard_normal((n, 2) + (2,) * num_dim) for n in lengths]
    t_seqs = [torch.tensor(s) for s in seqs]
    padded = rnn.pad_sequence(seqs, batch_first)
    ours = rnn.unpad_sequence(padded, tg.Tensor(np.array(lengths)), batch_first)
    theirs = TR.unpad_sequence(TR.pad_sequence(t_seqs, batch_first), torch.tensor(lengths),
                               batch_first)
    assert len(ours) == len(theirs) == len(seqs)
    for o, t, s in zip(ours, theirs, seqs):
        _same(o, t)
        np.testing.assert_array_equal(o.data, s)
    unpacked = rnn.unpack_sequence(rnn.pack_sequence(seqs, enforce_sorted=False))
    t_unpacked = TR.unpack_sequence(TR.pack_sequence(t_seqs, enforce_sorted=False))
    for o, t in zip(unpacked, t_unpacked):
        _same(o, t)


def test_unpad_sequence_is_differentiable_and_leaves_its_input_alone():
    x = tg.Tensor(_x(4, 3, 2), requires_grad=True)
    before = x.data.copy()
    parts = rnn.unpad_sequence(x, [4, 0, 2])
    assert [p.shape for p in parts] == [(4, 2), (0, 2), (2, 2)]
    np.testing.assert_array_equal(x.data, before)  # torch transposes its input in place
    (parts[0].sum() + 3 * parts[2].sum()).backward()
    expected = np.zeros((4, 3, 2))
    expected[:, 0], expected[:2, 2] = 1.0, 3.0
    np.testing.assert_array_equal(x.grad, expected)


# ---- total_length ----------------------------------------------------------------------------
@pytest.mark.parametrize("batch_first, delta", list(itertools.product([False, True], [0, 1, 8])))
def test_total_length_pads_to_it_as_torch(batch_first, delta):
    seqs = [_x(n, 3, seed=n) for n in (6, 4, 4, 2, 1)]
    ours = rnn.pack_sequence(seqs)
    theirs = TR.pack_sequence([torch.tensor(s) for s in seqs])
    out_o, len_o = rnn.pad_packed_sequence(ours, batch_first, total_length=6 + delta)
    out_t, len_t = TR.pad_packed_sequence(theirs, batch_first, total_length=6 + delta)
    _same(out_o, out_t)
    _same(len_o, len_t)
    assert out_o.shape[1 if batch_first else 0] == 6 + delta


@pytest.mark.parametrize("batch_first, total_length", list(itertools.product(
    [False, True], [-1, 0, 5])))
def test_total_length_below_the_longest_is_refused_as_torch(batch_first, total_length):
    seqs = [_x(n, 3, seed=n) for n in (6, 4, 1)]
    theirs = TR.pack_sequence([torch.tensor(s) for s in seqs])
    words = r"Expected total_length to be at least the length of the longest sequence in input"
    with pytest.raises(ValueError, match=words):
        TR.pad_packed_sequence(theirs, batch_first, total_length=total_length)
    with pytest.raises(ValueError, match=rf"^pad_packed_sequence: {words}, but got "
                                         rf"total_length={total_length} and max sequence "
                                         rf"length being 6$"):
        rnn.pad_packed_sequence(rnn.pack_sequence(seqs), batch_first, total_length=total_length)


# ---- casts and to() (torch's test_type_casts and test_to) ------------------------------------
CASTS = ["double", "float", "half", "long", "int", "short", "char", "byte"]
INPUT_TYPES = [np.float64, np.float32, np.int64, np.int32, np.int16, np.int8, np.uint8]


@pytest.mark.parametrize("cast", CASTS)
@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_casts_change_data_only_as_torch(cast, enforce_sorted):
    lengths = [5, 3, 3, 1] if enforce_sorted else [3, 5, 1, 3]
    for dtype in INPUT_TYPES:
        padded = np.random.default_rng(1).integers(0, 100, (5, 4)).astype(dtype)
        ours = rnn.pack_padded_sequence(padded, lengths, enforce_sorted=enforce_sorted)
        theirs = TR.pack_padded_sequence(torch.tensor(padded), lengths,
                                         enforce_sorted=enforce_sorted)
        cast_o, cast_t = getattr(ours, cast)(), getattr(theirs, cast)()
        assert cast_o.data.dtype == NP_OF_TORCH[cast_t.data.dtype]
        _same_packed(cast_o, cast_t)
        unpacked_o, unpacked_t = rnn.pad_packed_sequence(cast_o)[0], TR.pad_packed_sequence(
            cast_t)[0]
        _same(unpacked_o, unpacked_t)
        assert cast_o.batch_sizes is ours.batch_sizes  # the index fields are shared


@pytest.mark.parametrize("enforce_sorted", [True, False])
def test_to_returns_self_when_nothing_changes_as_torch(enforce_sorted):
    lengths = [4, 2, 1] if enforce_sorted else [2, 4, 1]
    a = rnn.pack_padded_sequence(np.arange(12, dtype=np.int32).reshape(4, 3), lengths,
                                 enforce_sorted=enforce_sorted)
    assert a.to("cpu") is a and a.cpu() is a and a.to("cpu", dtype=np.int32) is a
    assert a.to(torch.device("cpu")) is a and a.to(dtype=torch.int32) is a
    assert a.to(a.data) is a  # another tensor's dtype, as torch
    for other in (a.long(), a.to(np.int64), a.to(torch.int64), a.to("int64"),
                  a.to("cpu", torch.int64)):
        assert other is not a and other.data.dtype == np.int64
        np.testing.assert_array_equal(other.data.data, a.data.data)
    copied = a.to(copy=True)
    assert copied is not a and copied.data is not a.data
    assert not a.is_cuda and not a.is_pinned()


def test_a_float_widening_keeps_the_gradient_and_a_narrowing_is_refused():
    x = tg.Tensor(_x(4, 2, 3).astype(np.float32), requires_grad=True)
    wide = rnn.pack_padded_sequence(x, [4, 2]).double()
    assert wide.data.dtype == np.float64 and wide.data.requires_grad
    (wide.data * 2.0).sum().backward()
    expected = np.full((4, 2, 3), 2.0, np.float32)
    expected[2:, 1] = 0.0
    np.testing.assert_array_equal(x.grad, expected)
    assert x.grad.dtype == np.float32
    y = tg.Tensor(_x(4, 2, 3), requires_grad=True)
    packed = rnn.pack_padded_sequence(y, [4, 2])
    with pytest.raises(RuntimeError, match=r"PackedSequence.to: data requires grad and float64 "
                                           r"-> float32 narrows it"):
        packed.float()
    assert packed.data.dtype == np.float64  # nothing changed
    assert not packed.long().data.requires_grad  # integers carry no gradient, as torch


@pytest.mark.parametrize("call, error, message", [
    (lambda p: p.cuda(), RuntimeError, r"PackedSequence.cuda: tinygrad_rnn computes on the CPU"),
    (lambda p: p.to("cuda"), RuntimeError, (r"PackedSequence.to: .* device must be 'cpu', "
                                            r"got 'cuda'")),
    (lambda p: p.to("cuda:1", np.float64), RuntimeError, r"device must be 'cpu', got 'cuda:1'"),
    (lambda p: p.to(device="meta"), RuntimeError, r"device must be 'cpu', got 'meta'"),
    (lambda p: p.to(object()), TypeError, r"PackedSequence.to: dtype must be a numpy dtype"),
    (lambda p: p.to(np.complex128), TypeError, (r"PackedSequence.to: dtype must be a real or "
                                                r"boolean numpy dtype, got complex128")),
    (lambda p: p.to(np.float64, colour=1), TypeError, r"PackedSequence.to: unexpected keyword"),
    (lambda p: p.to(copy=1), TypeError, r"PackedSequence.to: copy must be a bool"),
])
def test_bad_to_arguments_are_refused_and_change_nothing(call, error, message):
    packed = rnn.pack_sequence([_x(3, 2), _x(1, 2)])
    before = packed.data.data.copy()
    with pytest.raises(error, match=message):
        call(packed)
    assert packed.data.dtype == np.float64
    np.testing.assert_array_equal(packed.data.data, before)


# ---- the named tuple -------------------------------------------------------------------------
def test_packed_sequence_is_torchs_named_tuple():
    seqs = [_x(3, 2), _x(2, 2, seed=1), _x(1, 2, seed=2)]
    ours = rnn.pack_sequence(seqs, enforce_sorted=False)
    theirs = TR.pack_sequence([torch.tensor(s) for s in seqs], enforce_sorted=False)
    assert isinstance(ours, tuple) and len(ours) == len(theirs) == 4
    assert ours._fields == theirs._fields
    for i in range(4):
        _same(ours[i], theirs[i])
    data, batch_sizes, sorted_indices, unsorted_indices = ours
    assert data is ours.data and batch_sizes is ours.batch_sizes
    assert sorted_indices is ours.sorted_indices and unsorted_indices is ours.unsorted_indices
    assert repr(ours).startswith("PackedSequence(data=")
    plain = ours._replace(sorted_indices=None, unsorted_indices=None)
    assert isinstance(plain, rnn.PackedSequence) and plain.sorted_indices is None


@pytest.mark.parametrize("form", ["pair", "sorted only", "all four"])
def test_packed_sequence_constructor_forms_as_torch(form):
    data, sizes, order = _x(6, 2), np.array([3, 2, 1]), np.array([2, 0, 1])
    t = (torch.tensor(data), torch.tensor(sizes), torch.tensor(order))
    if form == "pair":
        ours, theirs = rnn.PackedSequence((data, sizes)), TR.PackedSequence((t[0], t[1]))
    elif form == "sorted only":
        ours, theirs = rnn.PackedSequence(data, sizes, order), TR.PackedSequence(*t)
    else:
        inverse = TR.invert_permutation(t[2])
        ours = rnn.PackedSequence(data, sizes, order, inverse.numpy())
        theirs = TR.PackedSequence(*t, inverse)
    _same_packed(ours, theirs)


@pytest.mark.parametrize("perm", [[0], [2, 0, 1], [1, 0], [3, 1, 4, 0, 2], None])
def test_invert_permutation_as_torch(perm):
    ours = rnn.invert_permutation(None if perm is None else np.array(perm))
    _same(ours, None if perm is None else TR.invert_permutation(torch.tensor(perm)))


# ---- refusals: ours are of torch's type and carry torch's words -------------------------------
def _t(a):
    return torch.tensor(np.asarray(a))


# (what, our call, torch's call, the error torch raises, what torch's own tests match)
REFUSED = [
    ("unsorted lengths", lambda m, f: m.pack_padded_sequence(f(_x(3, 3)), [1, 3, 2]),
     RuntimeError, r"You can pass `enforce_sorted=False`"),
    ("unsorted sequences", lambda m, f: m.pack_sequence([f(_x(2, 2)), f(_x(1, 2)), f(_x(3, 2))]),
     RuntimeError, r"must be sorted in decreasing order"),
    ("wrong order, torch's own case",
     lambda m, f: m.pack_padded_sequence(m.pad_sequence([f(np.ones((22, 3))),
                                                        f(np.ones((25, 3)))]), [22, 25]),
     RuntimeError, r"must be sorted in decreasing order"),
    ("empty 2-D input", lambda m, f: m.pack_padded_sequence(f(np.zeros((0, 0))), []),
     RuntimeError, r"empty tensor"),
    ("empty input, lengths not even 1-D",
     lambda m, f: m.pack_padded_sequence(f(np.zeros((0, 1, 10))), f(np.ones((11, 14))), True),
     RuntimeError, r"empty tensor"),
    ("0 steps", lambda m, f: m.pack_padded_sequence(f(np.zeros((0, 2, 3))), [1, 1]),
     RuntimeError, r"empty tensor"),
    ("a length of 0", lambda m, f: m.pack_padded_sequence(f(_x(3, 2, 1)), [3, 0]),
     RuntimeError, r"Length of all samples has to be greater than 0"),
    ("a negative length", lambda m, f: m.pack_padded_sequence(f(_x(3, 2, 1)), [-1, 3], False,
                                                              False),
     RuntimeError, r"Length of all samples has to be greater than 0"),
    ("an empty sequence", lambda m, f: m.pack_sequence([f(_x(3, 2)), f(np.zeros((0, 2)))]),
     RuntimeError, r"Length of all samples has to be greater than 0"),
    ("another count of lengths", lambda m, f: m.pack_padded_sequence(f(_x(3, 2, 1)), [3, 2, 1]),
     RuntimeError, r"Expected `len\(lengths\)` to be equal to batch_size, but got 3"),
    ("2-D lengths", lambda m, f: m.pack_padded_sequence(f(_x(3, 2, 1)), [[3, 1]]),
     RuntimeError, r"'lengths' argument should be a 1D"),
    ("a number for lengths", lambda m, f: m.pack_padded_sequence(f(_x(3, 1, 1)), 3),
     RuntimeError, r"'lengths' argument should be a 1D"),
    ("pad_sequence of a number", lambda m, f: m.pad_sequence(5),
     RuntimeError, r"Expected iterable for input sequences, but got arg of type"),
    ("no sequences", lambda m, f: m.pad_sequence([]),
     RuntimeError, r"received an empty list of sequences"),
    ("other trailing shapes", lambda m, f: m.pad_sequence([f(_x(3, 2)), f(_x(1, 3))]),
     RuntimeError, r"sequences\[1\]|must match"),
    ("padding_side", lambda m, f: m.pad_sequence([f(_x(3, 2))], padding_side="top"),
     RuntimeError, r"Expected padding_side to be one of left or right"),
    ("total_length below", lambda m, f: m.pad_packed_sequence(m.pack_sequence([f(_x(4, 2))]),
                                                              total_length=3),
     ValueError, r"Expected total_length to be at least the length of the longest sequence"),
    ("float total_length", lambda m, f: m.pad_packed_sequence(m.pack_sequence([f(_x(4, 2))]),
                                                              total_length=5.0),
     TypeError, r"total_length"),
    ("batch_first an int", lambda m, f: m.pad_sequence([f(_x(3, 2))], 1),
     TypeError, r"batch_first"),
    ("padding_value a string", lambda m, f: m.pad_sequence([f(_x(3, 2))], False, "x"),
     TypeError, r"padding_value"),
]


@pytest.mark.parametrize("call, error, words", [r[1:] for r in REFUSED],
                         ids=[r[0] for r in REFUSED])
def test_what_torch_refuses_we_refuse_with_its_type_and_words(call, error, words):
    with pytest.raises(error, match=words):
        call(TR, _t)
    with pytest.raises(error, match=words) as info:
        call(rnn, tg.Tensor)
    assert str(info.value).split(":")[0] in {"pack_padded_sequence", "pack_sequence",
                                             "pad_sequence", "pad_packed_sequence"}
