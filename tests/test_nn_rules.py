"""What the layers accept, as torch does: Parameter slots and their assignment rules, parameters
replaced on a stack reaching its cells, Bidirectional's frozen parameters, sizes of 0, empty
batches, integer pretrained embeddings."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn.nn import (
    GRU,
    LSTM,
    RNN,
    Bidirectional,
    Embedding,
    GRUCell,
    Linear,
    LSTMCell,
    Parameter,
    Recurrent,
    RNNCell,
    Sequential,
)


def test_a_parameter_over_a_parameter_replaces_it_in_place():
    lin = Linear(3, 2)
    new = Parameter(np.ones((2, 3), np.float32))
    lin.weight = new
    assert lin.weight is new and list(lin.state_dict()) == ["weight", "bias"]  # order kept
    assert next(lin.parameters()) is new


def test_none_over_a_parameter_leaves_an_empty_slot_that_a_parameter_refills():
    lin = Linear(3, 2)
    lin.bias = None
    assert lin.bias is None and list(lin.state_dict()) == ["weight"]
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    assert "Total params: 6" in lin.summary(print_fn=None)  # the empty slot counts nothing
    out = lin(np.ones((1, 3), np.float32))  # forward without a bias, as torch
    np.testing.assert_allclose(out.data, np.ones((1, 3)) @ lin.weight.data.T, rtol=1e-6)
    lin.bias = Parameter(np.zeros(2, np.float32))
    assert list(lin.state_dict()) == ["weight", "bias"]
    with pytest.raises(TypeError, match=r"Linear: cannot assign ndarray to parameter 'bias'"):
        lin.bias = np.zeros(2)
    assert isinstance(lin.bias, Parameter)


def test_a_parameter_over_a_plain_attribute_or_a_module_registers_it():
    seq = Sequential(Linear(1, 1))
    seq.extra = Parameter(np.zeros(3, np.float32))
    assert "extra" in seq.state_dict()
    seq.__setattr__("0", Parameter(np.zeros(1, np.float32)))  # replaces the child module
    assert list(seq.state_dict()) == ["extra", "0"] and len(seq) == 0


def test_deleting_a_parameter_unregisters_it_and_frees_the_name():
    lin = Linear(3, 2)
    del lin.weight
    assert list(lin.state_dict()) == ["bias"]
    lin.weight = tg.Tensor(np.zeros((2, 3), np.float32))  # a plain attribute now, as torch
    assert list(lin.state_dict()) == ["bias"]


def test_a_none_child_is_skipped():
    seq = Sequential(Linear(1, 1), Linear(1, 1))
    seq.__setattr__("1", None)
    assert len(seq) == 1 and list(seq.state_dict()) == ["0.weight", "0.bias"]
    assert [n for n, _ in seq.named_modules()] == ["", "0"]


@pytest.mark.parametrize("make", [lambda: LSTM(2, 3, 2), lambda: GRU(2, 3, bidirectional=True),
                                  lambda: RNN(2, 3)])
def test_a_parameter_replaced_on_a_stack_reaches_its_cell(make):
    np.random.seed(0)
    net = make()
    x = np.random.randn(4, 2, 2).astype(np.float32)
    before = net(x)[0].data.copy()
    new = Parameter(net.weight_hh_l0.data * 3.0)
    net.weight_hh_l0 = new
    assert net._cells[0].weight_hh is new
    assert not np.allclose(net(x)[0].data, before)
    net.weight_hh_l0 = Parameter(net.weight_hh_l0.data / 3.0)
    np.testing.assert_allclose(net(x)[0].data, before, rtol=1e-5, atol=1e-6)


def test_a_parameter_of_the_wrong_shape_is_named_at_the_call():
    net = LSTM(2, 3)
    net.weight_hh_l0 = Parameter(np.zeros((12, 4), np.float32))
    with pytest.raises(ValueError, match=r"LSTM: parameter weight_hh has shape \(12, 4\), "
                                         r"expected \(12, 3\) \(4 gates, input_size 2, hidden"):
        net(np.zeros((5, 2, 2), np.float32))
    cell = GRUCell(2, 3)
    cell.bias_ih = None
    with pytest.raises(ValueError, match=r"GRUCell: parameter bias_ih has None, expected \(9,\)"):
        cell(np.zeros((1, 2), np.float32))
    lin = Linear(2, 3)
    lin.bias = Parameter(np.zeros(2, np.float32))
    with pytest.raises(ValueError, match=r"Linear: bias has shape \(2,\), expected \(3,\)"):
        lin(np.zeros((1, 2), np.float32))


def test_bidirectional_keeps_frozen_parameters_and_redraws_the_rest():
    np.random.seed(1)
    layer = Recurrent(LSTMCell(2, 3), return_sequences=True)
    fixed = np.arange(36, dtype=np.float32).reshape(12, 3) / 36
    layer.cell.weight_hh.data = fixed.copy()
    layer.cell.weight_hh.requires_grad = False
    bi = Bidirectional(layer)
    back = bi.backward_layer.cell
    assert back.weight_hh is not layer.cell.weight_hh  # its own copy
    assert not back.weight_hh.requires_grad
    np.testing.assert_array_equal(back.weight_hh.data, fixed)
    np.testing.assert_array_equal(layer.cell.weight_hh.data, fixed)  # the original untouched
    assert not np.array_equal(back.weight_ih.data, layer.cell.weight_ih.data)  # redrawn
    assert back.weight_ih.requires_grad
    out = bi(np.random.randn(2, 4, 2).astype(np.float32))
    out.sum().backward()
    assert back.weight_hh.grad is None and back.weight_ih.grad is not None


@pytest.mark.parametrize("cls", [RNNCell, LSTMCell, GRUCell])
@pytest.mark.parametrize("sizes", [(2, 0), (0, 3)])
def test_cells_take_sizes_of_zero_as_torch(cls, sizes):
    cell = cls(*sizes)
    x = tg.Tensor(np.random.randn(3, 4, sizes[0]).astype(np.float32), requires_grad=True)
    out = Recurrent(cell, return_sequences=True)(x)
    assert out.shape == (3, 4, sizes[1])
    (out.sum() + 1.0).backward()
    assert x.grad.shape == x.shape
    state = cell(np.zeros((3, sizes[0]), np.float32))
    assert Recurrent(cell).cell.step_output(state).shape == (3, sizes[1])


@pytest.mark.parametrize("make, hx", [
    (lambda: LSTM(2, 3, 2, bidirectional=True), (np.zeros((4, 0, 3)), np.zeros((4, 0, 3)))),
    (lambda: GRU(2, 3), np.zeros((1, 0, 3))),
    (lambda: RNN(2, 3, batch_first=True), None),
])
def test_stacks_take_a_batch_of_zero_sequences(make, hx):
    net = make()
    x = np.zeros((0, 5, 2) if net.batch_first else (5, 0, 2), np.float32)
    x = tg.Tensor(x, requires_grad=True)
    out, h = net(x, hx)
    parts = h if isinstance(h, tuple) else (h,)
    assert out.shape == x.shape[:2] + (3 * net.num_directions,)
    assert all(p.shape == (net.num_layers * net.num_directions, 0, 3) for p in parts)
    (out.sum() + sum(p.sum() for p in parts)).backward()
    assert x.grad.shape == x.shape
    assert all(p.grad is not None and not p.grad.any() for p in net.parameters())


def test_recurrent_and_bidirectional_take_a_batch_of_zero_sequences():
    bi = Bidirectional(Recurrent(GRUCell(2, 3), return_sequences=True, return_state=True))
    out, (f, b) = bi(np.zeros((0, 4, 2), np.float32), lengths=np.zeros(0, int))
    assert out.shape == (0, 4, 6) and f.shape == b.shape == (0, 3)


def test_an_integer_pretrained_table_keeps_its_dtype_frozen():
    table = np.array([[1, 2], [3, 4], [5, 6]])
    emb = Embedding.from_pretrained(table)
    assert emb.weight.dtype == table.dtype and not emb.weight.requires_grad
    np.testing.assert_array_equal(emb(np.array([2, 0])).data, [[5, 6], [1, 2]])
    emb.to(np.float64)  # as torch, to() casts floating parameters only
    assert emb.weight.dtype == table.dtype
    table[0, 0] = 99  # a copy: the caller's array stays theirs
    assert emb.weight.data[0, 0] == 1
    assert Embedding.from_pretrained(table.astype(np.float64)).weight.dtype == np.float64


def test_sizes_may_be_numpy_integers():
    cell = LSTMCell(np.int64(2), np.int32(3))
    assert cell.hidden_size == 3 and type(cell.hidden_size) is int
    assert LSTM(np.int64(2), np.int64(3), num_layers=np.int8(2)).num_layers == 2
    assert Linear(np.int64(2), 3).weight.shape == (3, 2)


def test_dropout_with_one_layer_warns_as_torch():
    with pytest.warns(UserWarning, match=r"GRU: dropout=0.5 acts between layers"):
        GRU(2, 3, dropout=0.5)
