"""RNN / LSTM / GRU side by side with torch, in the spirit of torch's own module tests
(test_nn.py's rnn_args_check, initial hidden state, seq_len 0, batch 0, dropout, packed
variable-length sequences; common_modules' constructor errors and no-batch-dim inputs):
the same refusals (torch's exception type and words), the same numbers. Written here from
what those tests check."""

from __future__ import annotations

import copy
import itertools
import warnings

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn
from tinygrad_rnn.nn.utils import rnn

torch = pytest.importorskip("torch")
TR = torch.nn.utils.rnn
TOL = {"rtol": 1e-7, "atol": 1e-9}
MODES = ["RNN", "GRU", "LSTM"]


def _x(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape)


def _pair(mode: str, *args, **kwargs):
    """torch's module (float64) and ours with its weights."""
    torch.manual_seed(sum(map(ord, mode)) + len(args) + len(kwargs))
    theirs = getattr(torch.nn, mode)(*args, **kwargs).double()
    ours = getattr(nn, mode)(*args, **kwargs).to(np.float64)
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    return ours, theirs


def _flat(state) -> list:
    return list(state) if isinstance(state, tuple) else [state]


def _close(ours, theirs) -> None:
    for a, b in zip(_flat(ours), _flat(theirs)):
        assert a.shape == tuple(b.shape)
        np.testing.assert_allclose(a.data, b.detach().numpy(), **TOL)


def _snapshot(module) -> dict[str, np.ndarray]:
    return {k: v.copy() for k, v in module.state_dict().items()}


def _unchanged(module, before: dict[str, np.ndarray]) -> None:
    after = module.state_dict()
    assert list(after) == list(before)
    assert all(np.array_equal(after[k], v) for k, v in before.items())
    assert all(p.grad is None for p in module.parameters())


# ---- torch's test_rnn_args_check and test_projections_lstm_args_check ------------------------
SEQ, BATCH, IN, HID, LAYERS, BAD = 6, 4, 3, 5, 2, 7


def _with(shape: tuple[int, ...], dim: int, size: int) -> tuple[int, ...]:
    return tuple(size if i == dim else n for i, n in enumerate(shape))


GOOD_X, GOOD_H = (SEQ, BATCH, IN), (LAYERS, BATCH, HID)
ARGS_CASES = [(name, x, h) for name, x, h in [
    ("input batch", _with(GOOD_X, 1, BAD), GOOD_H),
    ("hidden batch", GOOD_X, _with(GOOD_H, 1, BAD)),
    ("input size", _with(GOOD_X, 2, BAD), GOOD_H),
    ("hidden size", GOOD_X, _with(GOOD_H, 2, BAD)),
    ("hidden layers", GOOD_X, _with(GOOD_H, 0, BAD)),
]]


def _hidden_variants(mode: str, shape: tuple[int, ...]) -> list:
    """torch's get_inputs: for LSTM a bad shape goes in h, then in c, beside a good one."""
    bad, good = _x(*shape, seed=1), _x(*GOOD_H, seed=2)
    if mode != "LSTM":
        return [bad]
    return [(bad, bad)] if shape == GOOD_H else [(bad, good), (good, bad)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("what, x_shape, h_shape", ARGS_CASES, ids=[c[0] for c in ARGS_CASES])
def test_rnn_args_check_as_torch(mode, what, x_shape, h_shape):
    ours, theirs = _pair(mode, IN, HID, LAYERS)
    x = _x(*x_shape)
    words = (r"input\.size\(-1\) must be equal to input_size" if what == "input size" else
             r"Expected hidden(\[\d\])? size .*, got")
    for hx in _hidden_variants(mode, h_shape):
        t_hx = tuple(map(torch.tensor, hx)) if isinstance(hx, tuple) else torch.tensor(hx)
        with pytest.raises(RuntimeError, match=words):
            theirs(torch.tensor(x), t_hx)
        before = _snapshot(ours)
        with pytest.raises(RuntimeError, match=words) as info:  # a StackShapeError
            ours(x, hx)
        assert isinstance(info.value, ValueError) and str(info.value).startswith(f"{mode}: ")
        _unchanged(ours, before)


PROJ_CASES = [
    ("input batch", _with(GOOD_X, 1, BAD), (LAYERS, BATCH, 2), (LAYERS, BATCH, HID)),
    ("hidden batch", GOOD_X, (LAYERS, BAD, 2), (LAYERS, BAD, HID)),
    ("input size", _with(GOOD_X, 2, BAD), (LAYERS, BATCH, 2), (LAYERS, BATCH, HID)),
    ("hidden size", GOOD_X, (LAYERS, BATCH, BAD), (LAYERS, BATCH, BAD)),
    ("hidden layers", GOOD_X, (BAD, BATCH, 2), (BAD, BATCH, HID)),
    ("h of hidden_size", GOOD_X, (LAYERS, BATCH, HID), (LAYERS, BATCH, HID)),
    ("h layers only", GOOD_X, (BAD, BATCH, 2), (LAYERS, BATCH, HID)),
    ("c layers only", GOOD_X, (LAYERS, BATCH, 2), (BAD, BATCH, HID)),
]


@pytest.mark.parametrize("what, x_shape, h_shape, c_shape", PROJ_CASES,
                         ids=[c[0] for c in PROJ_CASES])
def test_projections_lstm_args_check_as_torch(what, x_shape, h_shape, c_shape):
    ours, theirs = _pair("LSTM", IN, HID, LAYERS, proj_size=2)
    x, h, c = _x(*x_shape), _x(*h_shape, seed=1), _x(*c_shape, seed=2)
    with pytest.raises(RuntimeError):
        theirs(torch.tensor(x), (torch.tensor(h), torch.tensor(c)))
    before = _snapshot(ours)
    with pytest.raises(RuntimeError, match=r"^LSTM: expected (hx|input)") as info:
        ours(x, (h, c))
    assert isinstance(info.value, ValueError)
    _unchanged(ours, before)


WITH_PROJ = [(mode, False) for mode in MODES] + [("LSTM", True)]  # proj_size is LSTM's


@pytest.mark.parametrize("mode, proj", WITH_PROJ)
def test_cudnn_forward_exception_case_runs_on_the_cpu_as_torch(mode, proj):
    """torch's test_cudnn_forward_exception, which runs on the CPU too."""
    kwargs = {"batch_first": True, **({"proj_size": 10} if proj else {})}
    ours, theirs = _pair(mode, 10, 20, **kwargs)
    hidden = np.zeros((1, 2, 19))
    hx = (hidden, hidden) if mode == "LSTM" else hidden
    t_hx = tuple(map(torch.tensor, hx)) if mode == "LSTM" else torch.tensor(hx)
    x_right, x_wrong = _x(2, 3, 10), _x(2, 3, 3)
    for model, x, h in ((theirs, torch.tensor(x_right), t_hx), (ours, x_right, hx)):
        with pytest.raises(RuntimeError, match=r"Expected hidden.*size.*got"):
            model(x, h)
    for model, x in ((theirs, torch.tensor(x_wrong)), (ours, x_wrong)):
        with pytest.raises(RuntimeError, match=r"input\.size\(-1\) must be equal to input_size"):
            model(x)


# ---- hx of the wrong rank, input of the wrong rank, seq_len 0 ---------------------------------
RANK_CASES = [
    ("batched input, 2-D hx", (3, 2, 4), (1, 4), RuntimeError,
     r"For batched 3-D input, (hx|hx and cx) should also be 3-D"),
    ("unbatched input, 3-D hx", (3, 4), (1, 1, 4), RuntimeError,
     r"For unbatched 2-D input, (hx|hx and cx) should also be 2-D"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("what, x_shape, h_shape, error, words", RANK_CASES,
                         ids=[c[0] for c in RANK_CASES])
def test_hx_of_another_rank_is_refused_as_torch(mode, what, x_shape, h_shape, error, words):
    ours, theirs = _pair(mode, 4, 4)
    x, h = _x(*x_shape), _x(*h_shape, seed=1)
    hx, t_hx = ((h, h), (torch.tensor(h),) * 2) if mode == "LSTM" else (h, torch.tensor(h))
    with pytest.raises(error, match=words):
        theirs(torch.tensor(x), t_hx)
    with pytest.raises(error, match=words) as info:
        ours(x, hx)
    assert isinstance(info.value, ValueError) and str(info.value).startswith(f"{mode}: ")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(4,), (2, 3, 4, 1)])
def test_input_of_another_rank_is_a_value_error_as_torch(mode, shape):
    ours, theirs = _pair(mode, 4, 3)
    words = rf"Expected input to be 2D or 3D, got {len(shape)}D"
    with pytest.raises(ValueError, match=words):
        theirs(torch.zeros(shape, dtype=torch.float64))
    with pytest.raises(ValueError, match=rf"^{mode}: expected a non-empty 3-D input .*{words}"):
        ours(np.zeros(shape))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("shape", [(0, 10, 5), (0, 5)])
def test_error_rnn_seq_len_zero_as_torch(mode, bidirectional, shape):
    ours, theirs = _pair(mode, 5, 6, bidirectional=bidirectional)
    words = r"Expected sequence length to be larger than 0 in RNN"
    with pytest.raises(RuntimeError, match=words):
        theirs(torch.ones(shape, dtype=torch.float64))
    with pytest.raises(RuntimeError, match=words) as info:
        ours(np.ones(shape))
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch_first", [False, True])
def test_rnn_input_batch_size_zero_as_torch(mode, batch_first):
    ours, theirs = _pair(mode, 3, 4, batch_first=batch_first)
    shape = (0, 5, 3) if batch_first else (5, 0, 3)
    x = tg.Tensor(np.zeros(shape), requires_grad=True)
    out, _ = ours(x)
    t_out, _ = theirs(torch.zeros(shape, dtype=torch.float64))
    assert out.shape == tuple(t_out.shape) == shape[:2] + (4,)
    out.sum().backward()  # no hard error, as torch
    assert x.grad.shape == shape


# ---- constructor errors (torch's common_modules error inputs, and a few more) ----------------
CTOR_CASES = [
    ("hidden_size 0", (10, 0, 1), {}, ValueError, r"hidden_size must be greater than zero"),
    ("num_layers 0", (10, 10, 0), {}, ValueError, r"num_layers must be greater than zero"),
    ("input_size 0", (0, 5), {}, ValueError, r"input_size must be greater than zero"),
    ("input_size -1", (-1, 5), {}, ValueError, r"input_size must be greater than zero"),
    ("input_size float", (3.0, 5), {}, TypeError, r"input_size should be of type int, got: float"),
    ("input_size str", ("10", 5), {}, TypeError, r"input_size should be of type int, got: str"),
    ("hidden_size float", (3, 5.0), {}, TypeError, r"hidden_size should be of type int, got"),
    ("bias 0", (3, 5), {"bias": 0}, TypeError, r"bias should be of type bool, got: int"),
    ("bias 1", (3, 5), {"bias": 1}, TypeError, r"bias should be of type bool, got: int"),
    ("bias str", (3, 5), {"bias": "True"}, TypeError, r"bias should be of type bool, got: str"),
    ("batch_first 0", (3, 5), {"batch_first": 0}, TypeError,
     r"batch_first should be of type bool, got: int"),
    ("batch_first str", (3, 5), {"batch_first": "False"}, TypeError,
     r"batch_first should be of type bool, got: str"),
    ("dropout 1.5", (3, 5, 2), {"dropout": 1.5}, ValueError,
     r"dropout should be a number in range \[0, 1\]"),
    ("dropout -0.1", (3, 5, 2), {"dropout": -0.1}, ValueError,
     r"dropout should be a number in range \[0, 1\]"),
    ("dropout str", (3, 5, 2), {"dropout": "0.1"}, ValueError,
     r"dropout should be a number in range \[0, 1\]"),
    ("dropout bool", (3, 5, 2), {"dropout": True}, ValueError,
     r"dropout should be a number in range \[0, 1\]"),
]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("what, args, kwargs, error, words", CTOR_CASES,
                         ids=[c[0] for c in CTOR_CASES])
def test_constructor_errors_have_torchs_type_and_words(mode, what, args, kwargs, error, words):
    with pytest.raises(error, match=words):
        getattr(torch.nn, mode)(*args, **kwargs)
    with pytest.raises(error, match=rf"^{mode}: .*\({words}") as info:
        getattr(nn, mode)(*args, **kwargs)
    if what in ("dropout str", "dropout bool"):  # our rule for a wrong type holds too
        assert isinstance(info.value, TypeError)


@pytest.mark.parametrize("nonlinearity", ["garbage", "sigmoid", "", None])
def test_rnn_nonlinearity_as_torch(nonlinearity):
    with pytest.raises(ValueError, match=r"Unknown nonlinearity"):
        torch.nn.RNN(1, 10, nonlinearity=nonlinearity)
    with pytest.raises(ValueError, match=r"^RNN: nonlinearity must be 'tanh' or 'relu', got "
                                         r".*\(Unknown nonlinearity"):
        nn.RNN(1, 10, nonlinearity=nonlinearity)


@pytest.mark.parametrize("args, kwargs, expected", [
    ((1, 10), {}, "tanh"), ((1, 10), {"nonlinearity": "relu"}, "relu"),
    ((2, 3, 1, "relu"), {}, "relu"),  # passed positionally, as torch's test does
])
def test_rnn_nonlinearity_attribute_as_torch(args, kwargs, expected):
    assert torch.nn.RNN(*args, **kwargs).nonlinearity == nn.RNN(*args, **kwargs).nonlinearity \
        == expected


@pytest.mark.parametrize("mode", ["RNN", "GRU"])
@pytest.mark.parametrize("proj_size", [10, 1])
def test_projections_error_on_gru_and_rnn_as_torch(mode, proj_size):
    words = r"proj_size argument is only supported for LSTM, not RNN or GRU"
    with pytest.raises(ValueError, match=words):
        getattr(torch.nn, mode)(30, 20, 2, proj_size=proj_size)
    with pytest.raises(ValueError, match=rf"^{mode}: {words}"):
        getattr(nn, mode)(30, 20, 2, proj_size=proj_size)


def test_dropout_with_one_layer_warns_as_torch():
    with pytest.warns(UserWarning, match=r"dropout"):
        torch.nn.LSTM(3, 4, dropout=0.5)
    with pytest.warns(UserWarning, match=r"LSTM: dropout=0.5 acts between layers"):
        nn.LSTM(3, 4, dropout=0.5)


# ---- initial hidden state, unbatched input, output types --------------------------------------
@pytest.mark.parametrize("mode", MODES)
def test_rnn_initial_hidden_state_as_torch(mode):
    ours, theirs = _pair(mode, 6, 5, 2)
    x = _x(4, 3, 6)
    hidden = np.zeros((2, 3, 5))
    hx = (hidden, hidden) if mode == "LSTM" else hidden
    out1, h1 = ours(x, hx)
    out2, h2 = ours(x)
    np.testing.assert_array_equal(out1.data, out2.data)
    for a, b in zip(_flat(h1), _flat(h2)):
        np.testing.assert_array_equal(a.data, b.data)
    t_out, t_h = theirs(torch.tensor(x))
    _close(out1, t_out)
    _close(h1, t_h)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_projections_lstm_initial_hidden_state_as_torch(bidirectional):
    ours, theirs = _pair("LSTM", 6, 5, 2, bidirectional=bidirectional, proj_size=3)
    d = 2 if bidirectional else 1
    x = _x(4, 3, 6)
    out1, h1 = ours(x, (np.zeros((2 * d, 3, 3)), np.zeros((2 * d, 3, 5))))
    out2, h2 = ours(x)
    np.testing.assert_array_equal(out1.data, out2.data)
    for a, b in zip(h1, h2):
        np.testing.assert_array_equal(a.data, b.data)
    t_out, t_h = theirs(torch.tensor(x))
    _close(out1, t_out)
    _close(h1, t_h)


NO_BATCH = [dict(zip(("nonlinearity", "bias", "batch_first", "bidirectional"), c))
            for c in itertools.product(["relu", "tanh"], [False, True], [False, True],
                                       [False, True])]


def _no_batch_dim(mode: str, kwargs: dict, given_hx: bool, hidden: int = 3, proj: int = 0):
    """An unbatched (T, I) input (and (L*D, H) hx) gives what torch gives (common_modules'
    no-batch-dim samples), gradients included."""
    ours, theirs = _pair(mode, 2, hidden, 2, **kwargs)
    d = 2 if kwargs.get("bidirectional") else 1
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 2))
    parts = [rng.standard_normal((2 * d, proj or hidden))]
    if mode == "LSTM":
        parts.append(rng.standard_normal((2 * d, hidden)))
    parts = parts if given_hx else []
    ins = [tg.Tensor(a, requires_grad=True) for a in (x, *parts)]
    t_ins = [torch.tensor(a, requires_grad=True) for a in (x, *parts)]
    hx = (tuple(ins[1:]) if mode == "LSTM" else ins[1]) if parts else None
    t_hx = (tuple(t_ins[1:]) if mode == "LSTM" else t_ins[1]) if parts else None
    out, h = ours(ins[0], hx)
    t_out, t_h = theirs(t_ins[0], t_hx)
    _close(out, t_out)
    _close(h, t_h)
    results, t_results = [out, *_flat(h)], [t_out, *_flat(t_h)]
    weights = [rng.standard_normal(r.shape) for r in results]
    sum((r * w).sum() for r, w in zip(results, weights)).backward()
    sum((r * torch.tensor(w)).sum() for r, w in zip(t_results, weights)).backward()
    for a, b in zip(ins, t_ins):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), **TOL)


@pytest.mark.parametrize("given_hx", [False, True])
@pytest.mark.parametrize("kwargs", NO_BATCH, ids=lambda k: "-".join(map(str, k.values())))
def test_rnn_without_a_batch_dimension_as_torch(kwargs, given_hx):
    _no_batch_dim("RNN", kwargs, given_hx)


@pytest.mark.parametrize("given_hx", [False, True])
@pytest.mark.parametrize("kwargs", [k for k in NO_BATCH if k["nonlinearity"] == "tanh"],
                         ids=lambda k: "-".join(map(str, list(k.values())[1:])))
def test_gru_without_a_batch_dimension_as_torch(kwargs, given_hx):
    _no_batch_dim("GRU", {k: v for k, v in kwargs.items() if k != "nonlinearity"}, given_hx)


@pytest.mark.parametrize("given_hx", [False, True])
@pytest.mark.parametrize("proj_size", [0, 2])
@pytest.mark.parametrize("kwargs", [k for k in NO_BATCH if k["nonlinearity"] == "tanh"],
                         ids=lambda k: "-".join(map(str, list(k.values())[1:])))
def test_lstm_without_a_batch_dimension_as_torch(kwargs, proj_size, given_hx):
    kwargs = {k: v for k, v in kwargs.items() if k != "nonlinearity"}
    _no_batch_dim("LSTM", {**kwargs, "proj_size": proj_size}, given_hx, proj=proj_size)


# ---- packed input: hx, output types, torch's test_variable_sequence ---------------------------
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("padded_shape, lengths", [((5, 2, 2), [5, 3]),
                                                   ((5, 5, 2), [5, 3, 3, 2, 2])])
def test_packed_input_types_and_values_as_torch(mode, padded_shape, lengths):
    """common_modules' packed samples: a sorted pack, its data requiring grad."""
    ours, theirs = _pair(mode, 2, 2, 2)
    x = _x(*padded_shape)
    packed = rnn.pack_padded_sequence(x, lengths)
    packed = rnn.PackedSequence(tg.Tensor(packed.data.data, requires_grad=True),
                                packed.batch_sizes)
    t_packed = TR.pack_padded_sequence(torch.tensor(x), lengths)
    t_packed = TR.PackedSequence(t_packed.data.requires_grad_(), t_packed.batch_sizes)
    out, h = ours(packed)
    t_out, t_h = theirs(t_packed)
    assert isinstance(out, rnn.PackedSequence) and isinstance(t_out, TR.PackedSequence)
    assert all(isinstance(part, tg.Tensor) for part in _flat(h))
    assert isinstance(h, tuple) == isinstance(t_h, tuple) == (mode == "LSTM")
    _close(out.data, t_out.data)
    _close(h, t_h)
    assert out.batch_sizes is packed.batch_sizes and out.sorted_indices is None
    out.data.sum().backward()
    t_out.data.sum().backward()
    np.testing.assert_allclose(packed.data.grad, t_packed.data.grad.numpy(), **TOL)


VARIABLE = [(True, [5]), (False, [5]), (True, [10, 10, 6, 2, 2, 1, 1]),
            (False, [10, 10, 6, 2, 2, 1, 1]), (False, [2, 1, 3, 2, 10, 5, 3])]


@pytest.mark.parametrize("enforce_sorted, lengths", VARIABLE)
@pytest.mark.parametrize("use_default_hiddens", [True, False])
@pytest.mark.parametrize("proj_size", [0, 2])
def test_variable_sequence_as_torch(enforce_sorted, lengths, use_default_hiddens, proj_size):
    """A packed batch through a 2-layer bidirectional LSTM equals each sequence run alone
    (torch's test_variable_sequence), and torch's numbers: outputs, states, gradients."""
    ours, theirs = _pair("LSTM", 3, 4, 2, bidirectional=True, proj_size=proj_size)
    alone = copy.deepcopy(ours)
    steps, batch = max(lengths), len(lengths)
    rng = np.random.default_rng(len(lengths) + proj_size)
    x = rng.standard_normal((steps, batch, 3))
    hx = None if use_default_hiddens else (rng.standard_normal((4, batch, proj_size or 4)),
                                           rng.standard_normal((4, batch, 4)))
    x_o, x_t = tg.Tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, h = ours(rnn.pack_padded_sequence(x_o, lengths, enforce_sorted=enforce_sorted), hx)
    t_out, t_h = theirs(TR.pack_padded_sequence(x_t, lengths, enforce_sorted=enforce_sorted),
                        None if hx is None else tuple(map(torch.tensor, hx)))
    padded, got = rnn.pad_packed_sequence(out)
    t_padded, _ = TR.pad_packed_sequence(t_out)
    _close(padded, t_padded)
    _close(h, t_h)
    np.testing.assert_array_equal(got.data, lengths)
    x_a = tg.Tensor(x, requires_grad=True)
    seq_outs, seq_h = [], []
    for b, n in enumerate(lengths):  # each sequence alone, in a batch of one
        hx_b = None if hx is None else tuple(part[:, b:b + 1] for part in hx)
        o, hb = alone(x_a[:n, b:b + 1], hx_b)
        seq_outs.append(o)
        seq_h.append(hb)
    for b, n in enumerate(lengths):
        np.testing.assert_allclose(padded.data[:n, b:b + 1], seq_outs[b].data, **TOL)
        assert not padded.data[n:, b].any()
        for part, part_b in zip(h, seq_h[b]):
            np.testing.assert_allclose(part.data[:, b:b + 1], part_b.data, **TOL)
    padded.sum().backward()
    t_padded.sum().backward()
    sum(o.sum() for o in seq_outs).backward()
    np.testing.assert_allclose(x_o.grad, x_t.grad.numpy(), **TOL)
    np.testing.assert_allclose(x_o.grad, x_a.grad, **TOL)
    for (name, p), (_, q), (_, r) in zip(ours.named_parameters(), theirs.named_parameters(),
                                         alone.named_parameters()):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), **TOL, err_msg=name)
        np.testing.assert_allclose(p.grad, r.grad, **TOL, err_msg=name)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("what, make, words", [
    ("data of 3 dimensions", lambda: rnn.PackedSequence(_x(5, 1, 3), [3, 2]),
     r"input must have 2 dimensions, got 3"),
    ("data of another width", lambda: rnn.pack_sequence([_x(3, 5), _x(2, 5)]),
     r"input\.size\(-1\) must be equal to input_size\. Expected 3, got 5"),
])
def test_a_packed_input_of_the_wrong_shape_is_refused_as_torch(mode, what, make, words):
    ours, theirs = _pair(mode, 3, 4)
    packed = make()
    t_packed = TR.PackedSequence(*(None if f is None else torch.tensor(f.data) for f in packed))
    # torch's LSTM checks nothing on a packed input and fails deeper, with another error
    with pytest.raises(Exception if mode == "LSTM" else RuntimeError,
                       match=None if mode == "LSTM" else words):
        theirs(t_packed)
    with pytest.raises(RuntimeError, match=rf"^{mode}: a PackedSequence input needs data of "
                                           rf"shape \(N, input_size=3\).*{words}") as info:
        ours(packed)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("h_shape", [(1, 3, 4), (2, 4)])
def test_a_packed_input_with_hx_of_another_batch_is_refused_as_torch(mode, h_shape):
    ours, theirs = _pair(mode, 3, 4)
    seqs = [_x(3, 3), _x(2, 3, seed=1)]
    h = np.zeros(h_shape)
    hx, t_hx = ((h, np.zeros((1, 2, 4))), (torch.tensor(h), torch.zeros(1, 2, 4,
                                                                          dtype=torch.float64))
                ) if mode == "LSTM" else (h, torch.tensor(h))
    # torch's LSTM checks nothing on a packed input and fails deeper, with another error
    with pytest.raises(Exception if mode == "LSTM" else RuntimeError,
                       match=None if mode == "LSTM" else r"Expected hidden size \(1, 2, 4\)"):
        theirs(TR.pack_sequence([torch.tensor(s) for s in seqs]), t_hx)
    with pytest.raises(RuntimeError, match=rf"^{mode}: expected hx of shape \(1, 2, 4\)"):
        ours(rnn.pack_sequence(seqs), hx)


# ---- dropout between layers, weights, copies -------------------------------------------------
@pytest.mark.parametrize("p", [0.0, 1.0])
@pytest.mark.parametrize("train", [True, False])
def test_rnn_dropout_extremes_as_torch(p, train):
    """torch's test_RNN_dropout at p = 0 and 1: weights of 1, relu, no bias."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = nn.RNN(10, 1000, 2, bias=False, dropout=p, nonlinearity="relu").to(np.float64)
    ours.train(train)
    ours.load_state_dict({k: np.ones_like(v) for k, v in ours.state_dict().items()})
    out, hy = ours(np.ones((1, 1, 10)), np.zeros((2, 1, 1000)))
    expected = 0.0 if (p == 1.0 and train) else 10000.0
    assert out.data.min() == out.data.max() == expected
    assert hy.data[0].min() == hy.data[0].max() == 10.0
    assert hy.data[1].min() == hy.data[1].max() == expected


@pytest.mark.parametrize("train", [True, False])
def test_rnn_change_dropout_as_torch(train):
    """torch's test_RNN_change_dropout: `dropout` read at each call; 0 and 1 are exact."""
    ours = nn.RNN(20, 20, 2, dropout=0.0, nonlinearity="relu").to(np.float64)
    ours.train(train)
    x = np.random.default_rng(0).random((3, 2, 20))
    previous = None
    for p in (0.0, 0.5, 0.0, 0.7, 0.2, 1.0, 0.2, 0.0):
        ours.dropout = p
        out1, hy1 = ours(x)
        out2, hy2 = ours(x)
        same = p in (0.0, 1.0) or not train
        assert np.array_equal(out1.data, out2.data) == same
        assert np.array_equal(hy1.data, hy2.data) == same
        if previous is not None:
            assert np.array_equal(out1.data, previous) == (not train)
        previous = out1.data


@pytest.mark.parametrize("mode, proj", WITH_PROJ)
def test_all_weights_as_torch(mode, proj):
    kwargs = {"proj_size": 2} if proj else {}
    ours, theirs = _pair(mode, 3, 4, 2, bidirectional=True, **kwargs)
    assert len(ours.all_weights) == len(theirs.all_weights) == 4
    for layer, t_layer in zip(ours.all_weights, theirs.all_weights):
        assert [w.shape for w in layer] == [tuple(w.shape) for w in t_layer]
        for w, t_w in zip(layer, t_layer):
            np.testing.assert_array_equal(w.data, t_w.detach().numpy())
    assert ours.flatten_parameters() is None  # a no-op, as torch on the CPU


@pytest.mark.parametrize("mode", MODES)
def test_a_deep_copy_is_independent_as_torch(mode):
    ours, _ = _pair(mode, 3, 4, 2)
    twin = copy.deepcopy(ours)
    x = _x(5, 2, 3)
    np.testing.assert_array_equal(ours(x)[0].data, twin(x)[0].data)
    twin.load_state_dict({k: v * 2 for k, v in twin.state_dict().items()})
    assert not np.array_equal(ours(x)[0].data, twin(x)[0].data)
    assert ours.weight_ih_l0 is not twin.weight_ih_l0


@pytest.mark.parametrize("mode", MODES)
def test_weight_tying_by_assignment_as_torch(mode):
    """torch's cudnn weight-tying test on the CPU: one bias for both directions."""
    ours, theirs = _pair(mode, 3, 4, bidirectional=True)
    theirs.bias_ih_l0_reverse = theirs.bias_ih_l0
    ours.bias_ih_l0_reverse = ours.bias_ih_l0
    x = _x(5, 2, 3)
    out, h = ours(x)
    t_out, t_h = theirs(torch.tensor(x))
    _close(out, t_out)
    _close(h, t_h)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("batch_first", [False, True])
def test_packed_unsorted_input_with_hx_gives_torchs_hx_gradient(mode, batch_first):
    """hx comes in the caller's batch order, h_n goes back in it, and the gradient reaching
    hx is torch's: the permutation is applied on the way in and undone on the way out."""
    ours, theirs = _pair(mode, 3, 4, 2, bidirectional=True, batch_first=batch_first)
    lengths = [2, 5, 1, 5, 3]
    rng = np.random.default_rng(9)
    x = rng.standard_normal((5, 5, 3))
    parts = [rng.standard_normal((4, 5, 4)) for _ in range(2 if mode == "LSTM" else 1)]
    ins = [tg.Tensor(a, requires_grad=True) for a in (x, *parts)]
    t_ins = [torch.tensor(a, requires_grad=True) for a in (x, *parts)]
    hx = tuple(ins[1:]) if mode == "LSTM" else ins[1]
    t_hx = tuple(t_ins[1:]) if mode == "LSTM" else t_ins[1]
    out, h = ours(rnn.pack_padded_sequence(ins[0], lengths, batch_first, False), hx)
    t_out, t_h = theirs(TR.pack_padded_sequence(t_ins[0], lengths, batch_first, False), t_hx)
    _close(out.data, t_out.data)
    _close(h, t_h)
    weights = [rng.standard_normal(tuple(r.shape)) for r in [t_out.data, *_flat(t_h)]]
    sum((r * w).sum() for r, w in zip([out.data, *_flat(h)], weights)).backward()
    sum((r * torch.tensor(w)).sum() for r, w in zip([t_out.data, *_flat(t_h)], weights)
        ).backward()
    for a, b in zip(ins, t_ins):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), **TOL)
