"""gradcheck, gradcheck_report and gradcheck_module under misuse: every bad argument is an error
naming the function and the argument, raised before anything changes, and the module always
comes back exactly as it was (arrays, dtypes, grads, requires_grad, training flags)."""

from __future__ import annotations

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import (
    GradcheckError,
    Tensor,
    gradcheck,
    gradcheck_module,
    gradcheck_report,
    nn,
    no_grad,
)
from tinygrad_rnn.grad_check import numeric_grad
from tinygrad_rnn.nn import Module, Parameter


def square_sum(a: Tensor) -> Tensor:
    return (a * a).sum()


def an_input() -> Tensor:
    return Tensor(np.array([0.5, -1.0, 2.0]), requires_grad=True)


def state_of(tensors: list[Tensor]) -> list:
    return [(t.data.copy(), t.data.dtype, None if t.grad is None else t.grad.copy(),
             t.requires_grad) for t in tensors]


def assert_same_state(tensors: list[Tensor], before: list) -> None:
    for t, (data, dtype, grad, requires_grad) in zip(tensors, before, strict=True):
        assert t.data.dtype == dtype and t.requires_grad == requires_grad
        np.testing.assert_array_equal(t.data, data)
        assert (t.grad is None) == (grad is None)
        if grad is not None:
            np.testing.assert_array_equal(t.grad, grad)


# ---- eps, atol, rtol, raise_exception: the same rules for the three entry points ---------

BAD_NUMBERS = [  # (value, error type, what the message says)
    (0, ValueError, "finite number"), (0.0, ValueError, "finite number"),
    (-1e-6, ValueError, "finite number"), (float("nan"), ValueError, "finite number"),
    (float("inf"), ValueError, "finite number"), (-float("inf"), ValueError, "finite number"),
    (np.float32(0), ValueError, "finite number"), ("1e-6", TypeError, "real number, got str"),
    (None, TypeError, "real number, got NoneType"), (True, TypeError, "real number, got bool"),
    (1j, TypeError, "real number, got complex"), ([1e-6], TypeError, "real number, got list"),
    (np.array(1e-6), TypeError, "real number, got ndarray"),
]
BAD_TOLERANCES = [
    (-1, ValueError, ">= 0"), (-1e-12, ValueError, ">= 0"), (float("nan"), ValueError, ">= 0"),
    (float("inf"), ValueError, ">= 0"), ("0", TypeError, "real number, got str"),
    (None, TypeError, "real number, got NoneType"), (False, TypeError, "real number, got bool"),
]


def _call(entry: str, **kwargs):
    """Run one entry point on a correct problem, with the given keyword arguments."""
    if entry == "gradcheck_module":
        lin = nn.Linear(2, 2)
        return gradcheck_module(lin, lambda: (lin(Tensor(np.ones((1, 2)))) ** 2).sum(), **kwargs)
    return getattr(tg, entry)(square_sum, [an_input()], **kwargs)


@pytest.mark.parametrize("entry", ["gradcheck", "gradcheck_report", "gradcheck_module"])
@pytest.mark.parametrize(("eps", "error", "says"), BAD_NUMBERS, ids=repr)
def test_eps_must_be_a_finite_positive_number(entry, eps, error, says):
    with pytest.raises(error, match=rf"^{entry}: eps must be a .*{says}"):
        _call(entry, eps=eps)


@pytest.mark.parametrize("entry", ["gradcheck", "gradcheck_module"])
@pytest.mark.parametrize("arg", ["atol", "rtol"])
@pytest.mark.parametrize(("tol", "error", "says"), BAD_TOLERANCES, ids=repr)
def test_tolerances_must_be_finite_and_not_negative(entry, arg, tol, error, says):
    with pytest.raises(error, match=rf"^{entry}: {arg} must be a .*{says}"):
        _call(entry, **{arg: tol})


@pytest.mark.parametrize("entry", ["gradcheck", "gradcheck_module"])
@pytest.mark.parametrize("flag", ["no", 0, 1, None, "False"], ids=repr)
def test_raise_exception_must_be_a_bool(entry, flag):
    with pytest.raises(TypeError, match=rf"^{entry}: raise_exception must be a bool"):
        _call(entry, raise_exception=flag)


@pytest.mark.parametrize("entry", ["gradcheck", "gradcheck_report", "gradcheck_module"])
@pytest.mark.parametrize("kwargs", [{"eps": np.float64(1e-6)}, {"eps": np.float32(1e-3)},
                                    {"eps": 1e-4}, {"eps": 1}], ids=repr)
def test_numpy_and_int_settings_are_accepted(entry, kwargs):
    assert _call(entry, **kwargs)


@pytest.mark.parametrize("kwargs", [{"atol": 0, "rtol": 1e-3}, {"atol": 1e-5, "rtol": 0},
                                    {"raise_exception": np.True_}], ids=repr)
def test_zero_tolerances_and_numpy_bools_are_accepted(kwargs):
    assert _call("gradcheck", **kwargs) and _call("gradcheck_module", **kwargs)


# ---- fn and inputs ------------------------------------------------------------------------

@pytest.mark.parametrize("entry", ["gradcheck", "gradcheck_report"])
@pytest.mark.parametrize("fn", [None, 3, "square_sum", Tensor(np.ones(2))], ids=repr)
def test_fn_must_be_callable(entry, fn):
    x = an_input()
    before = state_of([x])
    with pytest.raises(TypeError, match=rf"^{entry}: fn must be callable, got \w+"):
        getattr(tg, entry)(fn, [x])
    assert_same_state([x], before)


RETURNS = {"float": lambda a: 3.0, "int": lambda a: 1, "None": lambda a: None,
           "ndarray": lambda a: a.data.sum(), "list": lambda a: [a.sum()],
           "tuple": lambda a: (a.sum(), a.sum()), "numpy float": lambda a: np.float64(1.0),
           "item": lambda a: square_sum(a).item()}


@pytest.mark.parametrize("entry", ["gradcheck", "gradcheck_report"])
@pytest.mark.parametrize("fn", RETURNS.values(), ids=RETURNS.keys())
def test_fn_must_return_a_tensor(entry, fn):
    x = an_input()
    before = state_of([x])
    with pytest.raises(TypeError, match=rf"^{entry}: fn must return a Tensor, got \w+"):
        getattr(tg, entry)(fn, [x])
    assert_same_state([x], before)
    assert tg.get_default_dtype() == np.float32  # the float64 check mode was left


NOT_FINITE = {"nan": lambda a: (a * np.nan).sum(), "inf": lambda a: (a * np.inf).sum(),
              "log of a negative": lambda a: a.log().sum(),
              "one nan in a non-scalar": lambda a: a / Tensor(np.array([1.0, 0.0, 1.0])) * 0.0}


@pytest.mark.parametrize("entry", ["gradcheck", "gradcheck_report"])
@pytest.mark.parametrize("fn", NOT_FINITE.values(), ids=NOT_FINITE.keys())
def test_a_non_finite_output_cannot_be_checked(entry, fn):
    x = an_input()
    with np.errstate(all="ignore"), pytest.raises(
            ValueError, match=rf"^{entry}: fn's output is not finite at these inputs"):
        getattr(tg, entry)(fn, [x])


@pytest.mark.parametrize("entry", ["gradcheck", "gradcheck_report"])
def test_a_random_fn_is_not_deterministic(entry):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match=rf"^{entry}: fn is not deterministic"):
        getattr(tg, entry)(lambda a: (a * rng.standard_normal(3)).sum(), [an_input()])


BAD_INPUTS = {"ndarray": np.ones(3), "dict": {"x": 1}, "str": "x", "None": None, "int": 3,
              "float": 1.5, "set": {1, 2}, "generator": (t for t in [1])}


@pytest.mark.parametrize("entry", ["gradcheck", "gradcheck_report"])
@pytest.mark.parametrize("inputs", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_inputs_must_be_a_tensor_or_a_list_or_tuple(entry, inputs):
    with pytest.raises(TypeError, match=rf"^{entry}: inputs must be a Tensor or a list or tuple"):
        getattr(tg, entry)(square_sum, inputs)


NOTHING_TO_CHECK = {
    "empty list": [], "empty tuple": (),
    "a tensor without grad": [Tensor(np.ones(3))],
    "an integer tensor": [Tensor(np.arange(3))],
    "a float ndarray": [np.ones(3)],
    "numbers": [1.0, 2.0],
    "a detached tensor": [Tensor(np.ones(3), requires_grad=True).detach()],
}


@pytest.mark.parametrize("entry", ["gradcheck", "gradcheck_report"])
@pytest.mark.parametrize("inputs", NOTHING_TO_CHECK.values(), ids=NOTHING_TO_CHECK.keys())
def test_no_input_requires_grad_as_torch(entry, inputs):
    """torch: "gradcheck expects at least one input tensor to require gradient"."""
    with pytest.raises(ValueError, match=rf"^{entry}: expects at least one input Tensor with "
                                         r"requires_grad=True, but none of the inputs has it"):
        getattr(tg, entry)(lambda *a: Tensor(np.ones(2)).sum(), inputs)


def test_misuse_raises_also_with_raise_exception_false():
    with pytest.raises(ValueError, match="gradcheck: expects at least one input"):
        gradcheck(square_sum, [Tensor(np.ones(3))], raise_exception=False)
    with pytest.raises(TypeError, match="gradcheck: fn must return a Tensor"):
        gradcheck(lambda a: 1.0, [an_input()], raise_exception=False)


def test_a_lone_tensor_and_non_tensor_inputs_as_torch():
    x = an_input()
    assert gradcheck(square_sum, x)  # one Tensor is one input
    assert gradcheck(lambda a, axis, k: (a.reshape(3, 1) * k).sum(axis=axis).tanh().sum(),
                     [x, 0, np.array([2.0])])  # an int and an array reach fn unchanged
    seen = []
    gradcheck(lambda a, flag: seen.append(flag) or square_sum(a), [x, "flag"])
    assert set(seen) == {"flag"}
    (rec,) = gradcheck_report(lambda a, n: square_sum(a) * n, (x, 3))
    assert rec.index == 0 and rec.ok


def test_an_output_that_needs_no_grad_is_checked_against_zero_as_torch():
    x = an_input()
    assert gradcheck(lambda a: Tensor(np.ones(2)).sum() + 0 * a.detach().sum(), [x])
    with pytest.raises(GradcheckError, match=r"input 0 \(3,\) .* output does not require grad"):
        gradcheck(lambda a: square_sum(a.detach()), [x])

    def under_no_grad(a):
        with no_grad():
            return square_sum(a)
    assert gradcheck(under_no_grad, [x], raise_exception=False) is False
    (rec,) = gradcheck_report(under_no_grad, [x])
    assert not rec.ok and rec.analytic == 0.0


def test_inputs_are_never_changed_and_the_default_dtype_is_restored():
    x = an_input()
    x.grad = np.array([9.0, 9.0, 9.0])
    k = Tensor(np.array([1.0, 2.0, 3.0], np.float32))
    before = state_of([x, k])
    for fn in (lambda a, b: (a * b).sum(), lambda a, b: 1.0, lambda a, b: (a * np.nan).sum()):
        try:
            gradcheck(fn, [x, k])
        except (TypeError, ValueError):
            pass
        assert_same_state([x, k], before)
        assert tg.get_default_dtype() == np.float32


def test_an_exception_from_fn_propagates_and_restores_the_default_dtype():
    def broken(a):
        raise KeyError("inside fn")
    with pytest.raises(KeyError, match="inside fn"):
        gradcheck(broken, [an_input()])
    assert tg.get_default_dtype() == np.float32


def test_gradcheck_error_is_a_runtime_error_as_torch():
    assert issubclass(GradcheckError, RuntimeError) and issubclass(GradcheckError, AssertionError)
    with pytest.raises(RuntimeError, match=r"input 0 \(3,\)"):
        gradcheck(lambda a: square_sum(a.detach()), [an_input()])


@pytest.mark.parametrize(("x", "eps", "error", "says"), [
    (np.ones(3), 0.0, ValueError, "eps must be a finite number > 0"),
    (np.ones(3), -1e-6, ValueError, "eps must be a finite number > 0"),
    (np.arange(3), 1e-6, TypeError, "x must be a writable float ndarray, got int64"),
    ([1.0, 2.0], 1e-6, TypeError, "x must be a writable float ndarray, got list"),
    (np.ones(3)[None].repeat(2, 0).T.copy().view(), "a", TypeError, "eps must be a real"),
])
def test_numeric_grad_checks_its_arguments(x, eps, error, says):
    with pytest.raises(error, match=f"numeric_grad: {says}"):
        numeric_grad(lambda: 0.0, x, eps)


def test_numeric_grad_refuses_a_read_only_array():
    x = np.ones(3)
    x.flags.writeable = False
    with pytest.raises(TypeError, match="numeric_grad: x must be a writable float ndarray"):
        numeric_grad(lambda: float(x.sum()), x, 1e-6)


# ---- gradcheck_module ---------------------------------------------------------------------

class Affine(Module):
    """float32, a frozen parameter, grads already set: everything gradcheck_module must keep."""

    def __init__(self):
        super().__init__()
        rng = np.random.default_rng(0)
        self.weight = Parameter(rng.standard_normal((3, 2)).astype(np.float32))
        self.bias = Parameter(np.zeros(2, np.float32))
        self.frozen = Parameter(np.ones(2, np.float32), requires_grad=False)
        self.weight.grad = np.full((3, 2), 7.0, np.float32)
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return (x @ self.weight + self.bias).tanh() * self.frozen


X = np.random.default_rng(2).standard_normal((4, 3))


def module_state(m: Module) -> tuple:
    return (state_of(list(m.parameters())), [p for p in m.parameters()],
            [(mod, mod.training, dict(vars(mod))) for _, mod in m.named_modules()])


def assert_module_unchanged(m: Module, before: tuple) -> None:
    params, objects, mods = before
    assert all(a is b for a, b in zip(m.parameters(), objects, strict=True))
    assert_same_state(list(m.parameters()), params)
    for (mod, training, attrs), (_, now) in zip(mods, m.named_modules(), strict=True):
        assert now is mod and now.training == training
        assert vars(now).keys() == attrs.keys()
        assert all(vars(now)[k] is v for k, v in attrs.items())


class Empty(Module):
    def forward(self, x):
        return x


class AllFrozen(Module):
    def __init__(self):
        super().__init__()
        self.w = Parameter(np.ones(2), requires_grad=False)
        self.v = Parameter(np.ones(2), requires_grad=False)


NOTHING_TRAINABLE = {
    "no parameters": (Empty, r"module Empty has no trainable parameter to check \(it has no "),
    "dropout": (lambda: nn.Dropout(0.5), r"module Dropout has no trainable parameter"),
    "empty sequential": (lambda: nn.Sequential(), r"module Sequential has no trainable"),
    "all frozen": (AllFrozen, (r"module AllFrozen has no trainable parameter to check \(all 2 "
                               r"of its parameters have requires_grad=False\)")),
    "frozen embedding": (lambda: nn.Embedding.from_pretrained(np.ones((3, 2))),
                         r"module Embedding has no trainable parameter .*requires_grad=False"),
    "frozen linear": (lambda: _frozen(nn.Linear(2, 2)), r"module Linear has no trainable"),
}


def _frozen(m: Module) -> Module:
    for p in m.parameters():
        p.requires_grad = False
    return m


@pytest.mark.parametrize(("make", "says"), NOTHING_TRAINABLE.values(),
                         ids=NOTHING_TRAINABLE.keys())
def test_a_module_without_trainable_parameters_is_an_error_not_true(make, says):
    m = make()
    before = module_state(m)
    with pytest.raises(ValueError, match=rf"^gradcheck_module: {says}"):
        gradcheck_module(m, lambda: Tensor(np.ones(1), requires_grad=True).sum())
    assert_module_unchanged(m, before)


@pytest.mark.parametrize("module", [None, Tensor(np.ones(2), requires_grad=True), square_sum,
                                    {"w": Parameter(np.ones(2))}, [nn.Linear(2, 2)], "Linear"],
                         ids=["None", "Tensor", "function", "dict", "list", "str"])
def test_module_must_be_a_module(module):
    with pytest.raises(TypeError, match=r"^gradcheck_module: module must be a Module, got \w+"):
        gradcheck_module(module, lambda: Tensor(1.0))


@pytest.mark.parametrize("loss_fn", [None, 3, "loss", Tensor(np.ones(1))], ids=repr)
def test_loss_fn_must_be_callable(loss_fn):
    m = Affine()
    before = module_state(m)
    with pytest.raises(TypeError, match=r"^gradcheck_module: loss_fn must be a callable"):
        gradcheck_module(m, loss_fn)
    assert_module_unchanged(m, before)


BAD_LOSSES = {  # name: (loss_fn given the module, error, what the message says)
    "float": (lambda m: lambda: 3.0, TypeError, "loss_fn must return a scalar Tensor, got float"),
    "None": (lambda m: lambda: None, TypeError, "loss_fn must return a scalar Tensor, got None"),
    "item": (lambda m: lambda: m(Tensor(X)).sum().item(), TypeError,
             "loss_fn must return a scalar Tensor, got float"),
    "ndarray": (lambda m: lambda: m(Tensor(X)).sum().data, TypeError,
                "loss_fn must return a scalar Tensor, got ndarray"),
    "tuple": (lambda m: lambda: (m(Tensor(X)).sum(),), TypeError,
              "loss_fn must return a scalar Tensor, got tuple"),
    "non-scalar": (lambda m: lambda: m(Tensor(X)), ValueError,
                   r"loss_fn must return a scalar, got shape \(4, 2\)"),
    "nan": (lambda m: lambda: m(Tensor(X)).sum() * np.nan, ValueError,
            r"loss_fn's loss is not finite \(nan\)"),
    "inf": (lambda m: lambda: m(Tensor(X)).sum() + np.inf, ValueError,
            r"loss_fn's loss is not finite \(inf\)"),
    "detached": (lambda m: lambda: m(Tensor(X)).sum().detach(), ValueError,
                 ("loss_fn's loss does not require grad, so it does not depend on any "
                  "trainable parameter of Affine")),
    "under no_grad": (lambda m: lambda: _no_grad(lambda: m(Tensor(X)).sum()), ValueError,
                      "loss_fn's loss does not require grad"),
    "without the module": (lambda m: lambda: (_OTHER * 2.0).sum(), ValueError,
                           "loss_fn's loss does not depend on any trainable parameter of Affine"),
    "random": (lambda m: lambda: (m(Tensor(np.random.standard_normal((2, 3))))).sum(),
               ValueError, "loss_fn is not deterministic"),
    "steps the weights": (lambda m: lambda: _step(m), ValueError, "loss_fn is not deterministic"),
}
_OTHER = Tensor(np.ones(2), requires_grad=True)


def _step(m: Affine) -> Tensor:
    """An optimizer-like update inside the loss: every call sees other weights."""
    m.weight.data = m.weight.data + 0.1
    return m(Tensor(X)).sum()


def _no_grad(f):
    with no_grad():
        return f()


@pytest.mark.parametrize(("make", "error", "says"), BAD_LOSSES.values(), ids=BAD_LOSSES.keys())
def test_a_bad_loss_is_named_and_the_module_comes_back_as_it_was(make, error, says):
    m = Affine()
    before = module_state(m)
    with np.errstate(all="ignore"), pytest.raises(error, match=rf"^gradcheck_module: {says}"):
        gradcheck_module(m, make(m))
    assert_module_unchanged(m, before)
    assert m.calls == 0 and tg.get_default_dtype() == np.float32


def test_what_loss_fn_changes_in_the_module_is_undone():
    m = Affine()
    before = module_state(m)

    def meddling():
        m.eval()
        m.weight.requires_grad = True
        m.frozen.requires_grad = True
        m.extra = Parameter(np.ones(1))
        return (m(Tensor(X)) ** 2).sum()
    assert gradcheck_module(m, meddling)
    assert_module_unchanged(m, before)
    assert m.training and not m.frozen.requires_grad and "extra" not in dict(m.named_parameters())


def test_an_exception_from_loss_fn_propagates_and_the_module_comes_back():
    m = Affine()
    before = module_state(m)

    def broken():
        m(Tensor(X))
        m.train(False)
        raise KeyError("inside loss_fn")
    with pytest.raises(KeyError, match="inside loss_fn"):
        gradcheck_module(m, broken)
    assert_module_unchanged(m, before)


class WrongTanh(Module):
    """A wrong gradient through a custom primitive-free trick: detach half the path."""

    def __init__(self):
        super().__init__()
        self.weight = Parameter(np.array([0.3, -0.7], np.float32))
        self.train(False)

    def forward(self, x):
        w = self.weight
        return (x * w).tanh() + (x * w.detach()) ** 2  # the square's gradient is missing


@pytest.mark.parametrize("raise_exception", [True, False])
def test_a_wrong_gradient_leaves_the_module_as_it_was(raise_exception):
    m = WrongTanh()
    m.weight.grad = np.array([5.0, 5.0], np.float32)
    before = module_state(m)

    def loss():
        return m(Tensor(np.array([1.0, 2.0]))).sum()
    if raise_exception:
        with pytest.raises(GradcheckError, match=r"^gradcheck_module: weight \(2,\) worst at"):
            gradcheck_module(m, loss)
    else:
        assert gradcheck_module(m, loss, raise_exception=False) is False
    assert_module_unchanged(m, before)
    assert not m.training


def test_success_also_leaves_the_module_as_it_was():
    m = Affine()
    before = module_state(m)
    assert gradcheck_module(m, lambda: (m(Tensor(X)) ** 2).mean())
    assert_module_unchanged(m, before)
    assert m.calls == 0  # the forward passes of the check are not counted by the module


def test_a_size_one_loss_of_any_rank_is_a_scalar_as_in_backward():
    m = Affine()
    assert gradcheck_module(m, lambda: (m(Tensor(X)) ** 2).sum().reshape(1, 1))
