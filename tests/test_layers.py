"""nn.layers (Linear, Embedding, Dropout, Sequential) and the Module behaviours they rely on."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_rnn import Tensor, get_default_dtype, gradcheck_module, set_default_dtype
from tinygrad_rnn import functional as F
from tinygrad_rnn.nn import Dropout, Embedding, Linear, Module, Parameter, Sequential
from tinygrad_rnn.nn.module import StateDictError

RNG = np.random.default_rng(0)


def mlp() -> Sequential:
    return Sequential(Linear(3, 4, rng=np.random.default_rng(1)), Dropout(0.5),
                      Linear(4, 2, rng=np.random.default_rng(2)))


# ---- Linear -----------------------------------------------------------------------------------

def test_linear_shapes_init_bounds_and_dtype():
    lin = Linear(16, 5)
    assert lin.weight.shape == (5, 16) and lin.bias.shape == (5,)
    assert lin.weight.dtype == get_default_dtype() == np.float32
    assert np.abs(lin.weight.data).max() <= 0.25 and np.abs(lin.bias.data).max() <= 0.25
    assert lin(Tensor(np.ones((2, 7, 16), np.float32))).shape == (2, 7, 5)
    assert lin(Tensor(np.ones(16, np.float32))).shape == (5,)


def test_linear_math_and_no_bias():
    lin = Linear(3, 2, bias=False)
    assert lin.bias is None and [n for n, _ in lin.named_parameters()] == ["weight"]
    x = RNG.standard_normal((4, 3)).astype(np.float32)
    np.testing.assert_allclose(lin(Tensor(x)).data, x @ lin.weight.data.T, rtol=1e-6)


def test_linear_follows_default_dtype_and_seeding():
    set_default_dtype(np.float64)
    try:
        assert Linear(2, 2).weight.dtype == np.float64
    finally:
        set_default_dtype(np.float32)
    np.random.seed(3)
    a = Linear(3, 3).weight.data
    np.random.seed(3)
    np.testing.assert_array_equal(a, Linear(3, 3).weight.data)


def test_linear_wrong_input_size():
    with pytest.raises(ValueError, match=r"Linear: input of shape \(2, 5\) needs a last dim of 3"):
        Linear(3, 2)(Tensor(np.ones((2, 5))))


def test_linear_gradcheck_module():
    lin = Linear(3, 2)
    x = Tensor(RNG.standard_normal((4, 3)))
    assert gradcheck_module(lin, lambda: F.mse_loss(lin(x), np.zeros((4, 2))))


# ---- Embedding --------------------------------------------------------------------------------

def test_embedding_shapes_and_tensor_input():
    emb = Embedding(10, 3)
    assert emb.weight.shape == (10, 3) and emb.weight.dtype == np.float32
    assert emb(np.array([[1, 2, 3], [4, 5, 6]])).shape == (2, 3, 3)
    assert emb(Tensor(np.array([7]))).shape == (1, 3)
    assert emb(np.array(4)).shape == (3,)
    assert emb([[0, 1]]).shape == (1, 2, 3)


def test_embedding_repeated_indices_accumulate():
    emb = Embedding(4, 2)
    emb(np.array([[1, 1, 3], [1, 0, 3]])).sum().backward()
    np.testing.assert_array_equal(emb.weight.grad[:, 0], [1, 3, 0, 2])


def test_embedding_padding_row_zero_at_init_and_no_grad():
    emb = Embedding(5, 3, padding_idx=2)
    np.testing.assert_array_equal(emb.weight.data[2], 0.0)
    assert np.all(emb.weight.data[[0, 1, 3, 4]] != 0)
    out = emb(np.array([2, 2, 0]))
    (out * out + out).sum().backward()
    np.testing.assert_array_equal(emb.weight.grad[2], 0.0)
    assert np.all(emb.weight.grad[0] != 0)
    assert Embedding(5, 3, padding_idx=-1).padding_idx == 4


def test_embedding_index_errors():
    emb = Embedding(6, 2)
    with pytest.raises(IndexError, match=r"index 6 is out of range for a table of 6 rows"):
        emb(np.array([0, 6]))
    with pytest.raises(IndexError, match=r"index -2 is out of range for a table of 6 rows"):
        emb(np.array([-2]))
    with pytest.raises(IndexError, match="indices must be integers, got float"):
        emb(np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match="padding_idx 6 is out of range"):
        Embedding(6, 2, padding_idx=6)


def test_embedding_from_pretrained_freeze():
    w = RNG.standard_normal((4, 3))
    frozen = Embedding.from_pretrained(w)
    assert not frozen.weight.requires_grad and frozen.weight.dtype == np.float64
    np.testing.assert_array_equal(frozen(np.array([2])).data[0], w[2])
    w[2] = 0.0  # the layer holds a copy
    assert np.all(frozen.weight.data[2] != 0)
    assert "Frozen params: 12" in frozen.summary(print_fn=None)
    tuned = Embedding.from_pretrained(w, freeze=False, padding_idx=1)
    tuned(np.array([1, 3])).sum().backward()
    assert tuned.weight.requires_grad and tuned.padding_idx == 1
    np.testing.assert_array_equal(tuned.weight.grad[:, 0], [0, 0, 0, 1])
    with pytest.raises(ValueError, match=r"weights must be 2-D, got shape \(3,\)"):
        Embedding.from_pretrained(np.ones(3))


# ---- Dropout ----------------------------------------------------------------------------------

def test_dropout_module_follows_training_flag():
    drop = Dropout(0.5, rng=np.random.default_rng(0))
    x = Tensor(np.ones((50, 40)))
    assert np.any(drop(x).data == 0)
    drop.eval()
    assert drop(x) is x
    with pytest.raises(ValueError, match=r"Dropout: p must be in \[0, 1\], got 2"):
        Dropout(2)


# ---- Sequential -------------------------------------------------------------------------------

def test_sequential_naming_indexing_and_forward():
    net = mlp()
    assert list(net.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert len(net) == 3 and isinstance(net[1], Dropout) and net[-1] is net[2]
    assert [type(m).__name__ for m in net] == ["Linear", "Dropout", "Linear"]
    assert isinstance(net[:2], Sequential) and len(net[:2]) == 2
    net.eval()
    x = Tensor(RNG.standard_normal((5, 3)).astype(np.float32))
    np.testing.assert_allclose(net(x).data, net[2](net[0](x)).data)
    with pytest.raises(IndexError, match="index 3 is out of range for 3 modules"):
        net[3]
    with pytest.raises(TypeError, match="argument 0 is a int"):
        Sequential(3)


# ---- Module behaviours ------------------------------------------------------------------------

class Net(Module):
    def __init__(self):
        super().__init__()
        self.emb = Embedding(5, 3)
        self.body = mlp()
        self.scale = Parameter(np.ones(2, np.float32))


def test_named_parameters_in_torch_order():
    # torch: a module's own parameters first, then each child's in registration order
    assert [n for n, _ in Net().named_parameters()] == [
        "scale", "emb.weight", "body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias"]


def test_load_state_dict_roundtrip_and_casting():
    a, b = Net(), Net()
    b.load_state_dict({k: v.astype(np.float64) for k, v in a.state_dict().items()})
    for (_, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        np.testing.assert_array_equal(pa.data, pb.data)
        assert pb.dtype == np.float32


def test_failed_load_lists_every_problem_and_changes_nothing():
    net = Net()
    before = net.state_dict()
    bad = dict(before)
    bad["body.0.weight"] = np.zeros((9, 9))
    bad["body.0.bias"] = np.zeros(4)  # valid, yet must not be applied
    del bad["scale"]
    bad["extra"] = np.zeros(1)
    with pytest.raises(StateDictError) as err:
        net.load_state_dict(bad)
    msg = str(err.value)
    assert "body.0.weight" in msg and "missing key scale" in msg and "unexpected key extra" in msg
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_load_state_dict_non_strict():
    net = Net()
    partial = {"emb.weight": np.zeros((5, 3)), "other": np.ones(1)}
    result = net.load_state_dict(partial, strict=False)
    assert "other" in result.unexpected_keys and "scale" in result.missing_keys
    np.testing.assert_array_equal(net.emb.weight.data, 0.0)


def test_to_float64_casts_every_parameter():
    net = Net()
    net.body[0](Tensor(np.ones((1, 3), np.float32))).sum().backward()
    assert net.to(np.float64) is net
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net.body[0].weight.grad.dtype == np.float64
    out = net.body.eval()(Tensor(np.ones((1, 3))))
    assert out.dtype == np.float64


def test_train_eval_propagate_to_children():
    net = Net()
    net.eval()
    assert not net.training and not net.body[1].training and not net.emb.training
    net.train()
    assert all(m.training for _, m in net.named_modules())


def test_summary_reports_trainable_and_frozen_totals():
    net = Net()
    net.emb.weight.requires_grad = False
    text = net.summary(print_fn=None)
    trainable = 3 * 4 + 4 + 4 * 2 + 2 + 2
    assert f"Trainable params: {trainable:,}" in text
    assert "Frozen params: 15" in text and f"Total params: {trainable + 15:,}" in text
    assert "body.0" in text and "Linear" in text and "Embedding" in text


def test_zero_grad_clears_every_grad():
    net = Net()
    net.eval()
    loss = net.body(Tensor(np.ones((2, 3), np.float32))).sum() + net.emb(np.array([1])).sum()
    loss.backward()
    assert net.body[0].weight.grad is not None and net.emb.weight.grad is not None
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
