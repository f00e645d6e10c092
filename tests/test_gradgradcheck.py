"""gradgradcheck (torch's) and gradgradcheck_module (Hessian-vector products through unrolled
nets): they pass on correct second derivatives, name what is wrong when one is not, answer
misuse with an error naming the argument, and change nothing they are given."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from helpers import FAILURE_LINE

import tinygrad_rnn as tg
from tinygrad_rnn import GradcheckError, Tensor, gradgradcheck, gradgradcheck_module
from tinygrad_rnn.nn import (
    GRU,
    LSTM,
    RNN,
    Cell,
    GRUCell,
    Linear,
    LSTMCell,
    Parameter,
    Recurrent,
    RNNCell,
    Sequential,
)
from tinygrad_rnn.ops import OPS, Op, primitive
from tinygrad_rnn.tensor import apply

B, T, I, H = 2, 4, 2, 3
X = np.random.default_rng(0).standard_normal((B, T, I))
LENGTHS = [4, 2]


def _x(*shape, seed=0):
    return Tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


# ---- gradgradcheck ------------------------------------------------------------------------

def test_passes_on_a_composite_and_leaves_inputs_alone():
    x, w = _x(2, 3), _x(3, 4, seed=1)
    before = x.data.copy()
    assert gradgradcheck(lambda a, b: ((a @ b).tanh() * a.sum()).sigmoid(), [x, w]) is True
    np.testing.assert_array_equal(x.data, before)
    assert x.grad is None and w.grad is None and tg.get_default_dtype() == np.float32


def test_tuple_outputs_given_grad_outputs_and_constants():
    x, y = _x(3), _x(3, seed=1)
    v0 = Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)  # checked
    v1 = np.array(1.5)  # a constant: not checked
    assert gradgradcheck(lambda a, b, k: (a * b * k, (a.exp() * b).sum()), [x, y, 3.0],
                         grad_outputs=[v0, v1])
    assert gradgradcheck(lambda a: a.tanh(), x, grad_outputs=v0)  # one Tensor, one output
    pieces = _x(4, seed=2)
    assert gradgradcheck(lambda a: (a * a).split([1, 3]), [pieces])  # a multi-output op's
    assert gradgradcheck(lambda a: (a * a).split([1, 3])[1].sigmoid(), pieces)


def test_unused_input_and_linear_function_pass():
    x, y = _x(3), _x(2, seed=1)
    assert gradgradcheck(lambda a, b: a * 2.0, [x, y])  # y unused, second derivative 0


@pytest.fixture
def planted_tanh():
    """tanh whose backward reads its output as an array: first order right, second order
    wrong (the recorded gradient treats 1 - tanh^2 as a constant)."""
    @primitive("planted_tanh")
    class PlantedTanh(Op):
        def forward(self, x):
            self.out = np.tanh(x)
            return self.out

        def backward(self, g):
            return (g * (1.0 - self.out * self.out),)
    try:
        yield PlantedTanh
    finally:
        del OPS["planted_tanh"]


def test_failure_names_fn_primitives_input_and_values(planted_tanh):
    x = _x(2, 3)

    def double_tanh(a):
        return apply(planted_tanh, a) * 2.0
    with pytest.raises(GradcheckError) as info:
        gradgradcheck(double_tanh, [x])
    head = "gradgradcheck: double_tanh (primitives: planted_tanh, mul): "
    assert str(info.value).startswith(head)
    m = FAILURE_LINE.fullmatch(str(info.value).removeprefix(head).replace("input 0", "input_0"))
    assert m and m[1] == "input_0" and m[2] == "2, 3", str(info.value)
    assert len(m[3].split(",")) == 2
    assert float(m[4]) == 0.0 and abs(float(m[5])) > 0.1  # the lost -2 tanh (1 - tanh^2) term
    assert gradgradcheck(double_tanh, [x], raise_exception=False) is False


BAD_SETTINGS = [
    ({"eps": 0.0}, ValueError, "eps"), ({"eps": "1e-6"}, TypeError, "eps"),
    ({"atol": -1.0}, ValueError, "atol"), ({"rtol": float("nan")}, ValueError, "rtol"),
    ({"raise_exception": 1}, TypeError, "raise_exception"),
]


@pytest.mark.parametrize(("kwargs", "error", "arg"), BAD_SETTINGS)
def test_bad_settings_name_the_argument(kwargs, error, arg):
    with pytest.raises(error, match=rf"^gradgradcheck: {arg}"):
        gradgradcheck(lambda a: a.tanh(), [_x(2)], **kwargs)


def test_bad_fn_and_inputs():
    x = _x(3)
    with pytest.raises(TypeError, match=r"^gradgradcheck: fn must be callable"):
        gradgradcheck(3, [x])
    with pytest.raises(TypeError, match=r"^gradgradcheck: inputs must be a Tensor"):
        gradgradcheck(lambda a: a, np.ones(3))
    with pytest.raises(ValueError, match=r"^gradgradcheck: expects at least one input"):
        gradgradcheck(lambda a: a, [Tensor(np.ones(3))])
    with pytest.raises(TypeError, match=r"^gradgradcheck: fn must return a Tensor or a tuple"):
        gradgradcheck(lambda a: a.data, [x])
    with pytest.raises(TypeError, match=r"^gradgradcheck: fn must return .* got list"):
        gradgradcheck(lambda a: [a, 2.0], [x])
    with pytest.raises(ValueError, match=r"^gradgradcheck: no output of fn requires grad"):
        gradgradcheck(lambda a: a.detach(), [x])


def test_bad_grad_outputs():
    x = _x(3)
    with pytest.raises(ValueError, match=r"^gradgradcheck: grad_outputs has 2 entries for "
                                          r"fn's 1 outputs"):
        gradgradcheck(lambda a: a.tanh(), [x], grad_outputs=[np.ones(3), np.ones(3)])
    with pytest.raises(ValueError, match=r"^gradgradcheck: grad_outputs\[0\] has shape \(2,\) "
                                          r"for output 0 of shape \(3,\)"):
        gradgradcheck(lambda a: a.tanh(), [x], grad_outputs=np.ones(2))
    with pytest.raises(TypeError, match=r"^gradgradcheck: grad_outputs\[0\] must be"):
        gradgradcheck(lambda a: a.tanh(), [x], grad_outputs=["abc"])
    with pytest.raises(TypeError, match=r"^gradgradcheck: grad_outputs\[0\] must hold real"):
        gradgradcheck(lambda a: a.tanh(), [x], grad_outputs=np.array(["a", "b", "c"]))
    with pytest.raises(ValueError, match=r"^gradgradcheck: grad_outputs\[0\] is not finite"):
        gradgradcheck(lambda a: a.tanh(), [x], grad_outputs=np.array([1.0, np.nan, 0.0]))
    assert x.grad is None and tg.get_default_dtype() == np.float32


def test_nondeterministic_and_nonfinite_fn():
    x = _x(3)
    with pytest.raises(ValueError, match=r"^gradgradcheck: fn is not deterministic"):
        gradgradcheck(lambda a: (a * Tensor(np.random.rand(3))).tanh(), [x])
    with np.errstate(all="ignore"), pytest.raises(
            ValueError, match=r"^gradgradcheck: fn's output is not finite"):
        gradgradcheck(lambda a: (a * 0.0).log(), [x])  # log 0 = -inf
    with np.errstate(all="ignore"), pytest.raises(
            ValueError, match=r"^gradgradcheck: fn's gradient is not finite"):
        gradgradcheck(lambda a: (a * a).sqrt(), [Tensor(np.zeros(2), requires_grad=True)])


def test_float32_input_is_checked_as_float64_with_a_warning():
    x = Tensor(np.array([0.1, 0.2], np.float32), requires_grad=True)
    with pytest.warns(UserWarning, match=r"^gradgradcheck: input 0 is float32"):
        assert gradgradcheck(lambda a: a.tanh() * a, [x])
    assert x.dtype == np.float32


# ---- gradgradcheck_module ---------------------------------------------------------------

def _stack_loss(stack):
    def loss():
        out, h_n = stack(Tensor(X), lengths=LENGTHS)
        h_n = h_n if isinstance(h_n, Tensor) else h_n[0] * h_n[1]  # LSTM: c_n matters too
        return (out * out.tanh()).sum() + (h_n * h_n).sum()
    return loss


def _state(module):
    return ([(n, p._data, p._data.copy(), p.grad, p.requires_grad)
             for n, p in module.named_parameters()], [m.training for _, m in
                                                      module.named_modules()])


def _assert_unchanged(module, state):
    params, flags = state
    now = dict(module.named_parameters())
    assert set(now) == {n for n, *_ in params}
    for n, arr, values, grad, requires_grad in params:
        p = now[n]
        assert p._data is arr and p.dtype == values.dtype, n
        np.testing.assert_array_equal(p._data, values)
        assert p.grad is grad and p.requires_grad is requires_grad
    assert [m.training for _, m in module.named_modules()] == flags
    assert tg.get_default_dtype() == np.float32


@pytest.mark.parametrize("cls", [RNN, LSTM, GRU])
def test_passes_on_two_layer_bidirectional_stacks_with_lengths(cls):
    np.random.seed(0)
    stack = cls(I, H, num_layers=2, bidirectional=True, batch_first=True)
    stack.weight_ih_l0.grad = np.ones(stack.weight_ih_l0.shape, np.float32)  # kept as it was
    state = _state(stack)
    assert gradgradcheck_module(stack, _stack_loss(stack), directions=2) is True
    _assert_unchanged(stack, state)


class ScaledCell(Cell):
    """A custom Elman-like cell: h' = op(x W + h U) * s, op tanh unless another is planted."""

    def __init__(self, op=None):
        super().__init__()
        rng = np.random.default_rng(3)
        self.hidden_size, self.op = H, op
        self.weight_x = Parameter(rng.standard_normal((I, H)) * 0.5)
        self.weight_h = Parameter(rng.standard_normal((H, H)) * 0.5)
        self.scale = Parameter(np.full(H, 0.9))

    def forward(self, x_t, h):
        pre = x_t @ self.weight_x + h @ self.weight_h
        act = pre.tanh() if self.op is None else apply(self.op, pre)
        return act * self.scale


@pytest.mark.parametrize("cell", [ScaledCell, lambda: LSTMCell(I, H), lambda: GRUCell(I, H),
                                  lambda: RNNCell(I, H)])
def test_passes_on_recurrent_over_a_cell(cell):
    np.random.seed(0)
    model = Sequential(Recurrent(cell(), return_sequences=True), Linear(H, 1))
    model.eval()
    state = _state(model)
    assert gradgradcheck_module(model, lambda: (model(Tensor(X)) ** 2).sum())
    _assert_unchanged(model, state)


def test_planted_second_derivative_in_a_cell_names_parameter_and_steps(planted_tanh):
    model = Sequential(Recurrent(ScaledCell(planted_tanh), return_sequences=True), Linear(H, 1))
    state = _state(model)
    with pytest.raises(GradcheckError) as info:
        gradgradcheck_module(model, lambda: (model(Tensor(X)) ** 2).sum())
    _assert_unchanged(model, state)
    message = str(info.value)
    assert message.startswith("gradgradcheck_module: Hessian-vector product along random "
                              "direction 1 of 3: ")
    lines = message.split(": ", 2)[2].split("\n  ")
    fails = {m[1]: m for m in map(FAILURE_LINE.fullmatch, lines) if m}
    assert len(fails) == len(lines), message
    # only the cell's own block of the Hessian holds the planted op's second derivative
    assert "0.cell.weight_h" in fails and set(fails) <= {"0.cell.weight_x", "0.cell.weight_h",
                                                         "0.cell.scale"}
    for m in fails.values():
        assert m[7] == f", used in steps t=0..{T - 1} of layer 0 direction forward of '0'"
        assert float(m[4]) != pytest.approx(float(m[5]), rel=1e-3)
    assert gradgradcheck_module(model, lambda: (model(Tensor(X)) ** 2).sum(),
                                raise_exception=False) is False
    _assert_unchanged(model, state)
    assert model[0].step_observers == []


def test_linear_loss_has_zero_hessian_and_passes():
    lin = Linear(3, 2)
    x = Tensor(np.ones((4, 3)))
    assert gradgradcheck_module(lin, lambda: lin(x).sum())


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"directions": 0}, ValueError, r"directions must be >= 1, got 0"),
    ({"directions": 1.5}, TypeError, r"directions must be an integer"),
    ({"directions": True}, TypeError, r"directions must be an integer"),
    ({"eps": -1e-6}, ValueError, r"eps must be a finite number > 0"),
    ({"raise_exception": "yes"}, TypeError, r"raise_exception must be a bool"),
])
def test_module_bad_settings(kwargs, error, match):
    lin = Linear(3, 2)
    state = _state(lin)
    with pytest.raises(error, match=rf"^gradgradcheck_module: {match}"):
        gradgradcheck_module(lin, lambda: (lin(Tensor(np.ones((1, 3)))) ** 2).sum(), **kwargs)
    _assert_unchanged(lin, state)


def test_module_misuse_changes_nothing():
    lin = Linear(3, 2)
    x = Tensor(np.ones((1, 3)))
    state = _state(lin)
    with pytest.raises(TypeError, match=r"^gradgradcheck_module: module must be a Module"):
        gradgradcheck_module(lambda: 0, lambda: lin(x).sum())
    with pytest.raises(TypeError, match=r"^gradgradcheck_module: loss_fn must be a callable"):
        gradgradcheck_module(lin, lin(x).sum())
    with pytest.raises(ValueError, match=r"^gradgradcheck_module: loss_fn is not deterministic"):
        gradgradcheck_module(lin, lambda: (lin(x) * Tensor(np.random.rand(1, 2))).sum())
    with pytest.raises(ValueError, match=r"^gradgradcheck_module: loss_fn's loss does not "
                                         r"require grad"):
        gradgradcheck_module(lin, lambda: lin(x).sum().detach())
    with pytest.raises(ValueError, match=r"^gradgradcheck_module: loss_fn must return a scalar"):
        gradgradcheck_module(lin, lambda: lin(x))
    lin.weight.requires_grad = lin.bias.requires_grad = False
    state = _state(lin)
    with pytest.raises(ValueError, match=r"^gradgradcheck_module: module Linear has no "
                                         r"trainable parameter"):
        gradgradcheck_module(lin, lambda: lin(x).sum())
    _assert_unchanged(lin, state)


def test_exported_at_top_level():
    assert tg.gradgradcheck is gradgradcheck and tg.gradgradcheck_module is gradgradcheck_module
    assert {"gradgradcheck", "gradgradcheck_module"} <= set(tg.__all__)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert gradgradcheck(lambda a: a.exp(), _x(2))


def test_module_comes_back_after_loss_fn_raises():
    np.random.seed(0)
    model = Sequential(Recurrent(GRUCell(I, H)), Linear(H, 1))
    state = _state(model)
    calls = []

    def loss():
        model.eval()  # undone afterwards, as every attribute loss_fn changes
        calls.append(1)
        if len(calls) > 3:
            raise KeyError("boom")
        return (model(Tensor(X)) ** 2).sum()
    with pytest.raises(KeyError, match="boom"):
        gradgradcheck_module(model, loss)
    _assert_unchanged(model, state)
    assert model.training is True
