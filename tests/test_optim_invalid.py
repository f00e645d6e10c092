"""Invalid use of the optimizers, hooks and clip functions: each case raises the error type
torch (or Python) would, naming the argument; a failed call changes nothing (parameters,
gradients, optimizer state, the hooks given)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinygrad_rnn import Tensor, optim
from tinygrad_rnn.nn import Linear, Parameter

OPTIMIZERS = {"SGD": optim.SGD, "Adam": optim.Adam, "RMSprop": optim.RMSprop,
              "Adagrad": optim.Adagrad}


def param():
    return Parameter(np.ones(3, np.float32))


# hyper-parameter values that every numeric setting refuses: (value, error, message tail)
BAD_NUMBERS = [
    (-0.1, ValueError, r"must be >= 0 and finite, got -0.1"),
    (np.float32(-0.5), ValueError, r"must be >= 0 and finite, got -0.5"),
    (np.float64(-1.0), ValueError, r"must be >= 0 and finite, got -1"),
    (np.array(-0.25), ValueError, r"must be >= 0 and finite, got -0.25"),
    (np.int64(-2), ValueError, r"must be >= 0 and finite, got -2"),
    (Tensor(np.array(-0.1)), ValueError, r"must be >= 0 and finite, got -0.1"),
    (float("nan"), ValueError, r"must be a number, got nan"),
    (np.float32("nan"), ValueError, r"must be a number, got nan"),
    (float("inf"), ValueError, r"must be >= 0 and finite, got inf"),
    (True, TypeError, r"must be a real number, got bool"),
    ("0.1", TypeError, r"must be a real number, got str"),
    (None, TypeError, r"must be a real number, got NoneType"),
    ([0.1], TypeError, r"must be a real number, got list"),
    (np.array([0.1]), TypeError, r"must be a real number, got ndarray"),
    (1 + 2j, TypeError, r"must be a real number, got complex"),
]
SETTINGS = [("SGD", "lr"), ("SGD", "momentum"), ("SGD", "weight_decay"), ("SGD", "dampening"),
            ("Adam", "lr"), ("Adam", "eps"), ("Adam", "weight_decay"),
            ("RMSprop", "lr"), ("RMSprop", "alpha"), ("RMSprop", "eps"),
            ("RMSprop", "momentum"), ("RMSprop", "weight_decay"),
            ("Adagrad", "lr"), ("Adagrad", "lr_decay"), ("Adagrad", "eps"),
            ("Adagrad", "weight_decay"), ("Adagrad", "initial_accumulator_value")]


@pytest.mark.parametrize("opt, key", SETTINGS, ids=[f"{o}.{k}" for o, k in SETTINGS])
@pytest.mark.parametrize("value, error, tail", BAD_NUMBERS,
                         ids=[repr(v)[:20] for v, _, _ in BAD_NUMBERS])
def test_every_numeric_setting_is_checked_for_any_real_type(opt, key, value, error, tail):
    kwargs = {"lr": 0.1} if opt == "SGD" else {}
    kwargs[key] = value
    with pytest.raises(error, match=rf"{opt}: {key} {tail}"):
        OPTIMIZERS[opt]([param()], **kwargs)


OTHER_SETTINGS = [
    ("Adam", {"betas": 0.9}, TypeError, r"Adam: betas must be a pair \(beta1, beta2\), got float"),
    ("Adam", {"betas": (0.9,)}, ValueError, r"Adam: betas must be a pair .* got 1 values"),
    ("Adam", {"betas": (0.9, 0.99, 0.9)}, ValueError, r"Adam: betas must be a pair .* got 3"),
    ("Adam", {"betas": (1.0, 0.9)}, ValueError, r"Adam: betas\[0\] must be in \[0, 1\), got 1"),
    ("Adam", {"betas": (0.9, np.float32(1.5))}, ValueError, r"Adam: betas\[1\] must be in \[0, "),
    ("Adam", {"betas": (-0.1, 0.9)}, ValueError, r"Adam: betas\[0\] must be in \[0, 1\), got -0.1"),
    ("Adam", {"betas": (0.9, float("nan"))}, ValueError, r"Adam: betas\[1\] must be a number"),
    ("Adam", {"betas": ("a", 0.9)}, TypeError, r"Adam: betas\[0\] must be a real number, got str"),
    ("Adam", {"amsgrad": "yes"}, TypeError, r"Adam: amsgrad must be a bool, got str"),
    ("Adam", {"amsgrad": 1}, TypeError, r"Adam: amsgrad must be a bool, got int"),
    ("RMSprop", {"centered": None}, TypeError, r"RMSprop: centered must be a bool"),
    ("SGD", {"lr": 0.1, "nesterov": 1}, TypeError, r"SGD: nesterov must be a bool, got int"),
    ("SGD", {"lr": 0.1, "nesterov": True}, ValueError,
     r"SGD: Nesterov momentum requires a momentum and zero dampening"),
    ("SGD", {"lr": 0.1, "nesterov": True, "momentum": 0.9, "dampening": 0.1}, ValueError,
     r"SGD: Nesterov momentum requires"),
    ("SGD", {"lr": 0.1, "nesterov": True, "momentum": "0.9"}, TypeError,
     r"SGD: momentum must be a real number"),
]


@pytest.mark.parametrize("opt, kwargs, error, match", OTHER_SETTINGS,
                         ids=[f"{o}-{sorted(k.items())}"[:40] for o, k, _, _ in OTHER_SETTINGS])
def test_betas_and_flags_are_checked(opt, kwargs, error, match):
    with pytest.raises(error, match=match):
        OPTIMIZERS[opt]([param()], **kwargs)


def _non_leaf():
    x = Tensor(np.ones(3), requires_grad=True)
    return x * 2.0


PARAM_LISTS = [
    ("None", lambda: None, TypeError, r"SGD: params must be Parameters, a Module or \(name, "),
    ("an int", lambda: 3, TypeError, r"SGD: params must be Parameters, .*got int"),
    ("a set", lambda: {param()}, TypeError, r"SGD: params must be an ordered collection"),
    ("an empty list", list, ValueError, r"SGD: got an empty parameter list"),
    ("a spent generator", lambda: (p for p in []), ValueError, r"SGD: got an empty parameter"),
    ("a duplicate", lambda: [p := param(), p], ValueError, r"SGD: the parameter list holds a "),
    ("a non-leaf tensor", lambda: [_non_leaf()], ValueError,
     r"SGD: can't optimize a non-leaf Tensor \(parameter 0, made by mul\)"),
    ("a named non-leaf", lambda: [("h", _non_leaf())], ValueError,
     r"can't optimize a non-leaf Tensor \(parameter h"),
    ("an ndarray inside", lambda: [np.zeros(3)], TypeError,
     r"SGD: expected Parameters in params, got ndarray"),
    ("an int inside", lambda: [param(), 1], TypeError, r"SGD: expected Parameters in params, got"),
    ("a named ndarray", lambda: [("w", np.zeros(2))], TypeError,
     r"SGD: expected Parameters in params, got ndarray \('w'\)"),
    ("a parameter group", lambda: [{"params": [param()]}], TypeError,
     r"SGD: parameter groups \(dicts\) are not supported"),
    ("a group dict", lambda: {"params": [param()], "lr": 0.1}, TypeError,
     r"SGD: parameter groups \(dicts with 'params'\) are not supported"),
    ("a dict of arrays", lambda: {"w": np.zeros(2)}, TypeError, r"expected Parameters in params"),
]


@pytest.mark.parametrize("what, make, error, match", PARAM_LISTS, ids=[c[0] for c in PARAM_LISTS])
def test_parameter_lists_are_checked(what, make, error, match):
    with pytest.raises(error, match=match):
        optim.SGD(make(), lr=0.1)


HOOK_ARGS = [
    ("a single hook", lambda: optim.ClipNorm(1.0), TypeError,
     r"SGD: hooks must be a list of callables, got one ClipNorm \(wrap it in a list\)"),
    ("a function", lambda: print, TypeError, r"SGD: hooks must be a list of callables, got one"),
    ("an int", lambda: 3, TypeError, r"SGD: hooks must be a list of callables, got int"),
    ("a non-callable inside", lambda: [optim.ClipNorm(1.0), 3], TypeError,
     r"SGD: hooks\[1\] is a int, expected a callable hook\(params\)"),
    ("None inside", lambda: [None], TypeError, r"SGD: hooks\[0\] is a NoneType"),
]


@pytest.mark.parametrize("what, make, error, match", HOOK_ARGS, ids=[c[0] for c in HOOK_ARGS])
def test_hook_arguments_are_checked(what, make, error, match):
    with pytest.raises(error, match=match):
        optim.SGD([param()], lr=0.1, hooks=make())


def test_a_failed_optimizer_leaves_its_hooks_unnamed():
    lin = Linear(2, 2)
    clip = optim.ClipGlobalNorm(1.0)
    with pytest.raises(TypeError, match=r"hooks\[1\]"):
        optim.SGD(lin.named_parameters(), lr=0.1, hooks=[clip, "not a hook"])
    assert clip.names == {}
    with pytest.raises(ValueError, match=r"SGD: lr must be >= 0"):
        optim.SGD(lin.named_parameters(), lr=-1.0, hooks=[clip])
    assert clip.names == {}


def test_add_hook_rejects_a_non_callable():
    opt = optim.SGD([param()], lr=0.1)
    with pytest.raises(TypeError, match=r"add_hook: expected a callable, got int"):
        opt.add_hook(3)
    assert opt.hooks == []


CLIPS = [
    ("ClipValue negative", lambda: optim.ClipValue(-1.0), ValueError,
     r"ClipValue: clip_value must be >= 0, got -1"),
    ("ClipValue nan", lambda: optim.ClipValue(float("nan")), ValueError,
     r"ClipValue: clip_value must be a number, got nan"),
    ("ClipValue str", lambda: optim.ClipValue("1"), TypeError,
     r"ClipValue: clip_value must be a real number, got str"),
    ("ClipValue numpy negative", lambda: optim.ClipValue(np.float32(-2)), ValueError,
     r"ClipValue: clip_value must be >= 0, got -2"),
    ("ClipNorm negative", lambda: optim.ClipNorm(-0.5), ValueError,
     r"ClipNorm: max_norm must be >= 0, got -0.5"),
    ("ClipNorm None", lambda: optim.ClipNorm(None), TypeError,
     r"ClipNorm: max_norm must be a real number, got NoneType"),
    ("ClipNorm error flag", lambda: optim.ClipNorm(1.0, error_if_nonfinite="yes"), TypeError,
     r"ClipNorm: error_if_nonfinite must be a bool, got str"),
    ("ClipGlobalNorm negative", lambda: optim.ClipGlobalNorm(np.array(-1.0)), ValueError,
     r"ClipGlobalNorm: max_norm must be >= 0, got -1"),
    ("ClipGlobalNorm norm_type str", lambda: optim.ClipGlobalNorm(1.0, "2"), TypeError,
     r"ClipGlobalNorm: norm_type must be a real number, got str"),
    ("ClipGlobalNorm norm_type nan", lambda: optim.ClipGlobalNorm(1.0, float("nan")), ValueError,
     r"ClipGlobalNorm: norm_type must be a number, got nan"),
    ("ClipGlobalNorm names str", lambda: optim.ClipGlobalNorm(1.0, names="abc"), TypeError,
     r"ClipGlobalNorm: expected Parameters in names, got str"),
    ("ClipGlobalNorm names int", lambda: optim.ClipGlobalNorm(1.0, names=3), TypeError,
     r"ClipGlobalNorm: names must be Parameters"),
    ("ClipGlobalNorm error flag", lambda: optim.ClipGlobalNorm(1.0, error_if_nonfinite=1),
     TypeError, r"ClipGlobalNorm: error_if_nonfinite must be a bool, got int"),
]


@pytest.mark.parametrize("what, make, error, match", CLIPS, ids=[c[0] for c in CLIPS])
def test_clip_hooks_check_their_settings(what, make, error, match):
    with pytest.raises(error, match=match):
        make()


def _with_grad(*values):
    ps = []
    for v in values:
        p = Parameter(np.zeros(len(v)))
        p.grad = np.array(v, np.float64)
        ps.append(p)
    return ps


CLIP_CALLS = [
    ("norm of None", lambda ps: optim.clip_grad_norm_(None, 1.0), TypeError,
     r"clip_grad_norm_: params must be Parameters"),
    ("norm of ints", lambda ps: optim.clip_grad_norm_([1, 2], 1.0), TypeError,
     r"clip_grad_norm_: expected Parameters in params, got int"),
    ("norm max_norm negative", lambda ps: optim.clip_grad_norm_(ps, -1.0), ValueError,
     r"clip_grad_norm_: max_norm must be >= 0, got -1"),
    ("norm max_norm str", lambda ps: optim.clip_grad_norm_(ps, "1"), TypeError,
     r"clip_grad_norm_: max_norm must be a real number, got str"),
    ("norm norm_type None", lambda ps: optim.clip_grad_norm_(ps, 1.0, None), TypeError,
     r"clip_grad_norm_: norm_type must be a real number, got NoneType"),
    ("norm error flag", lambda ps: optim.clip_grad_norm_(ps, 1.0, error_if_nonfinite=None),
     TypeError, r"clip_grad_norm_: error_if_nonfinite must be a bool"),
    ("value of None", lambda ps: optim.clip_grad_value_(None, 1.0), TypeError,
     r"clip_grad_value_: params must be Parameters"),
    ("value negative", lambda ps: optim.clip_grad_value_(ps, -0.5), ValueError,
     r"clip_grad_value_: clip_value must be >= 0, got -0.5"),
    ("value nan", lambda ps: optim.clip_grad_value_(ps, float("nan")), ValueError,
     r"clip_grad_value_: clip_value must be a number, got nan"),
    ("hook given one Parameter", lambda ps: optim.ClipGlobalNorm(1.0)(ps[0]), TypeError,
     r"ClipGlobalNorm: a hook is called with the list of parameters, got Parameter"),
    ("hook given a generator", lambda ps: optim.ClipNorm(1.0)(p for p in ps), TypeError,
     r"ClipNorm: a hook is called with the list of parameters, got generator"),
    ("nonfinite L2", lambda ps: optim.clip_grad_norm_(ps, 1.0, error_if_nonfinite=True),
     RuntimeError, (r"clip_grad_norm_: the gradient of parameter \(index 1, shape \(2,\)\) is "
                    r"not finite \(0 NaN, 1 inf\), so its norm of order 2.0 is inf")),
    ("nonfinite named", lambda ps: optim.clip_grad_norm_(
        [("a", ps[0]), ("b", ps[1])], 1.0, 1, error_if_nonfinite=True), RuntimeError,
     r"clip_grad_norm_: the gradient of parameter 'b' \(index 1"),
    ("nonfinite inf norm", lambda ps: optim.ClipGlobalNorm(1.0, math.inf, True)(ps),
     RuntimeError, r"ClipGlobalNorm: the gradient of parameter \(index 1"),
    ("nonfinite ClipNorm", lambda ps: optim.ClipNorm(1.0, True, [("a", ps[0]), ("b", ps[1])])(ps),
     RuntimeError, r"ClipNorm: the gradient of parameter 'b' \(index 1, shape \(2,\)\) is not "),
    ("nonfinite ClipValue", lambda ps: optim.ClipValue(1.0, True)(ps), RuntimeError,
     r"ClipValue: the gradient of parameter \(index 1, shape \(2,\)\) is not finite"),
]


@pytest.mark.parametrize("what, call, error, match", CLIP_CALLS, ids=[c[0] for c in CLIP_CALLS])
def test_clip_calls_reject_and_leave_the_gradients(what, call, error, match):
    ps = _with_grad([3.0, 4.0], [1.0, math.inf])
    before = [p.grad.copy() for p in ps]
    with pytest.raises(error, match=match):
        call(ps)
    for p, g in zip(ps, before):
        np.testing.assert_array_equal(p.grad, g)


def test_a_step_whose_hook_raises_changes_no_parameter_and_no_state():
    lin = Linear(2, 2)
    opt = optim.Adam(lin.named_parameters(), lr=0.1, hooks=[optim.ClipGlobalNorm(1.0, 2.0, True)])
    for p in lin.parameters():
        p.grad = np.ones(p.shape, p.dtype)
    opt.step()
    data = [p.data.copy() for p in lin.parameters()]
    state = [{k: (v.copy() if isinstance(v, np.ndarray) else v) for k, v in s.items()}
             for s in opt.state]
    lin.bias.grad = np.array([np.nan, 0.0], np.float32)
    with pytest.raises(RuntimeError, match=r"ClipGlobalNorm: the gradient of parameter 'bias'"):
        opt.step()
    for p, d in zip(lin.parameters(), data):
        np.testing.assert_array_equal(p.data, d)
    for s, before in zip(opt.state, state):
        assert s["step"] == before["step"] == 1
        np.testing.assert_array_equal(s["exp_avg"], before["exp_avg"])


def test_numpy_and_tensor_settings_are_plain_floats_that_train():
    p = param()
    opt = optim.SGD([p], lr=np.float32(0.5), momentum=np.array(0.0), weight_decay=np.int64(0))
    assert type(opt.lr) is float and opt.lr == 0.5 and opt.momentum == 0.0
    p.grad = np.ones(3, np.float32)
    opt.step()
    np.testing.assert_allclose(p.data, 0.5)
    assert optim.Adam([param()], lr=Tensor(np.array(0.01))).lr == pytest.approx(0.01)
    assert optim.Adam([param()], betas=[0.8, np.float64(0.9)]).betas == (0.8, 0.9)


def test_a_named_mapping_works_as_named_parameters():
    lin = Linear(2, 2)
    opt = optim.SGD(dict(lin.named_parameters()), lr=0.1)
    assert opt.names == ["weight", "bias"] and opt.params == list(lin.parameters())


def test_an_infinite_max_norm_measures_without_clipping():
    ps = _with_grad([3.0, 4.0])
    assert optim.clip_grad_norm_(ps, math.inf) == pytest.approx(5.0)
    np.testing.assert_array_equal(ps[0].grad, [3.0, 4.0])
    clip = optim.ClipValue(math.inf)
    clip(ps)
    assert clip.last_norm == 4.0 and ps[0].grad.tolist() == [3.0, 4.0]


@pytest.mark.parametrize("norm_type, expected", [(0, 2.0), (-1, 2 / 3), (-math.inf, 1.0)])
def test_error_if_nonfinite_raises_only_when_the_total_is_not_finite(norm_type, expected):
    ps = _with_grad([1.0, math.inf], [2.0])  # torch: these totals are finite, so no error
    assert optim.clip_grad_norm_(ps, 1.0, norm_type, error_if_nonfinite=True) == \
        pytest.approx(expected)


@pytest.mark.parametrize("bad, error, match", [
    (np.ones(3), ValueError, r"SGD: the grad of parameter 'bias' \(index 1, .*\) has shape \(3,"),
    (np.ones(2, int), TypeError, r"SGD: the grad of parameter 'bias' .* is of dtype int64, expect"),
    ([1.0, 2.0], TypeError, r"SGD: the grad of parameter 'bias' .* is list, expected a float"),
])
def test_a_bad_grad_anywhere_stops_the_step_before_any_parameter_changes(bad, error, match):
    lin = Linear(2, 2)
    opt = optim.SGD(lin.named_parameters(), lr=0.1, momentum=0.9)
    lin.weight.grad = np.ones((2, 2), np.float32)
    lin.bias.grad = bad
    before = [p.data.copy() for p in lin.parameters()]
    with pytest.raises(error, match=match):
        opt.step()
    for p, b in zip(lin.parameters(), before):
        np.testing.assert_array_equal(p.data, b)
    assert opt.state == [{}, {}]
