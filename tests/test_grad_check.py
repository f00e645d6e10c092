"""gradcheck, gradcheck_report and gradcheck_module: they pass right gradients and name wrong ones."""

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import GradcheckError, Tensor, gradcheck, gradcheck_report
from tinygrad_rnn.nn import Module, Parameter
from tinygrad_rnn.ops import OPS, primitive
from tinygrad_rnn.tensor import apply


@pytest.fixture
def wrong_square():
    """A primitive with a planted wrong derivative (2x + 0.1 instead of 2x)."""
    @primitive("wrong_square_for_test")
    class WrongSquare(tg.ops.Op):
        def forward(self, x):
            self.x = x
            return x * x

        def backward(self, g):
            return (g * (2 * self.x + 0.1),)
    yield WrongSquare
    del OPS["wrong_square_for_test"]


def test_gradcheck_passes_a_composite():
    x = Tensor(np.random.default_rng(0).standard_normal((3, 4)), requires_grad=True)
    w = Tensor(np.random.default_rng(1).standard_normal((4, 2)), requires_grad=True)
    assert gradcheck(lambda a, b: (a @ b).tanh().log_softmax(-1), [x, w])


def test_gradcheck_error_names_input_shape_index_and_values(wrong_square):
    x = Tensor(np.array([[0.5, -1.0], [2.0, 1.0]]), requires_grad=True)
    with pytest.raises(GradcheckError) as info:
        gradcheck(lambda t: apply(wrong_square, t).sum(), [x])
    msg = str(info.value)
    assert "input 0" in msg and "(2, 2)" in msg and "worst at" in msg
    assert "analytic" in msg and "numeric" in msg and "abs err" in msg
    assert gradcheck(lambda t: apply(wrong_square, t).sum(), [x], raise_exception=False) is False


def test_gradcheck_warns_and_upcasts_float32_inputs():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    with pytest.warns(UserWarning, match="float32"):
        assert gradcheck(lambda t: (t * t).sum(), [x])


def test_gradcheck_report_fields(wrong_square):
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    c = Tensor(np.array([3.0, 4.0]))  # no requires_grad: no record
    (rec,) = gradcheck_report(lambda t, k: (apply(wrong_square, t) * k).sum(), [x, c])
    assert rec.index == 0 and rec.shape == (2,)
    assert rec.max_abs_err == pytest.approx(0.4, rel=1e-4)  # 0.1 * k, worst k = 4
    # worst = furthest beyond atol + rtol*|numeric|: element 0 (err 0.3 on 6) beats 0.4 on 16
    assert rec.worst_index == (0,)
    assert rec.analytic == pytest.approx(rec.numeric + 0.3, rel=1e-4)
    assert rec.max_rel_err > 0


class Affine(Module):
    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.weight = Parameter(rng.standard_normal((3, 2)).astype(np.float32))
        self.bias = Parameter(np.zeros(2, np.float32))
        self.frozen = Parameter(np.ones(2, np.float32), requires_grad=False)

    def forward(self, x):
        return (x @ self.weight + self.bias).tanh() * self.frozen


def test_gradcheck_module_checks_in_float64_and_restores():
    m = Affine()
    before = m.state_dict()
    x = np.random.default_rng(2).standard_normal((4, 3))
    assert tg.gradcheck_module(m, lambda: (m(Tensor(x)) ** 2).mean())
    assert m.weight.dtype == np.float32 and m.weight.grad is None
    for k, v in m.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_gradcheck_module_names_the_failing_parameter(wrong_square):
    m = Affine()
    x = np.ones((2, 3))
    with pytest.raises(GradcheckError, match="bias"):
        tg.gradcheck_module(m, lambda: apply(wrong_square, m(Tensor(x))).sum())


def test_gradcheck_module_rejects_a_random_loss():
    m = Affine()
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="deterministic"):
        tg.gradcheck_module(m, lambda: (m(Tensor(rng.standard_normal((2, 3))))).sum())
