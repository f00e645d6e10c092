"""Optimizer hooks and clips without torch: order, timing, skipping, errors, bad settings."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tinygrad_rnn import Tensor, optim
from tinygrad_rnn.nn.module import Module, Parameter


class Affine(Module):
    def __init__(self, n_in: int, n_out: int, seed: int = 0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.weight = Parameter(rng.normal(size=(n_out, n_in)))
        self.bias = Parameter(rng.normal(size=(n_out,)))

    def forward(self, x: Tensor) -> Tensor:
        return x @ self.weight.T + self.bias


class TwoLayer(Module):
    def __init__(self):
        super().__init__()
        self.encoder = Affine(3, 4, seed=0)
        self.head = Affine(4, 2, seed=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.encoder(x).tanh())


def backward_once(model: Module, seed: int = 2) -> None:
    rng = np.random.default_rng(seed)
    x, y = Tensor(rng.normal(size=(5, 3))), Tensor(rng.normal(size=(5, 2)))
    (((model(x) - y) ** 2).sum() * 10.0).backward()  # x10: big enough grads to be clipped


def with_grads(*grads) -> list[Parameter]:
    params = [Parameter(np.ones_like(np.asarray(g, np.float64))) for g in grads]
    for p, g in zip(params, grads):
        p.grad = np.array(g, np.float64)
    return params


class Recorder:
    """A user-written hook: copies of what it saw, per call."""

    def __init__(self):
        self.data, self.grads, self.seen = [], [], []

    def __call__(self, params):
        self.seen.append(list(params))
        self.data.append([p.data.copy() for p in params])
        self.grads.append([p.grad.copy() for p in params])


def test_hooks_run_in_order_before_the_update():
    model = TwoLayer()
    backward_once(model)
    before = [p.data.copy() for p in model.parameters()]
    raw = [p.grad.copy() for p in model.parameters()]
    first, clip, last = Recorder(), optim.ClipGlobalNorm(0.1), Recorder()
    opt = optim.SGD(model.parameters(), lr=0.5, hooks=[first, clip])
    opt.add_hook(last)
    assert opt.hooks == [first, clip, last]
    opt.step()
    for seen, b in zip(first.data[0], before):  # pre-update params, then pre-clip grads
        np.testing.assert_array_equal(seen, b)
    for seen, g in zip(first.grads[0], raw):
        np.testing.assert_array_equal(seen, g)
    scale = 0.1 / (math.sqrt(sum(float((g**2).sum()) for g in raw)) + 1e-6)
    for seen, g in zip(last.grads[0], raw):  # the later hook sees the clipped grads
        np.testing.assert_allclose(seen, g * scale, rtol=1e-12)
    for p, b, g in zip(model.parameters(), before, last.grads[0]):
        np.testing.assert_allclose(p.data, b - 0.5 * g, rtol=1e-12)
    assert first.seen[0] == list(model.parameters())  # the optimizer's list, in order


def test_last_norm_is_taken_before_clipping():
    grads = [[3.0, -4.0], [[12.0], [-5.0]]]  # L2 norms 5 and 13, global 13.928...
    hook = optim.ClipGlobalNorm(1.0)
    params = with_grads(*grads)
    hook(params)
    assert hook.last_norm == pytest.approx(math.sqrt(25 + 169))
    assert math.sqrt(sum(float((p.grad**2).sum()) for p in params)) == pytest.approx(1.0, 1e-5)
    hook = optim.ClipNorm(4.0)  # each tensor alone: 5 -> 4 and 13 -> 4
    params = with_grads(*grads)
    hook(params)
    assert hook.last_norm == pytest.approx([5.0, 13.0])
    np.testing.assert_allclose(params[0].grad, [2.4, -3.2])
    assert float(np.linalg.norm(params[1].grad)) == pytest.approx(4.0)
    hook = optim.ClipValue(1.5)
    params = with_grads(*grads)
    hook(params)
    assert hook.last_norm == 12.0
    np.testing.assert_array_equal(params[1].grad, [[1.5], [-1.5]])


def test_clips_leave_small_grads_alone_and_inf_norm_is_max_abs():
    params = with_grads([0.1, -0.2], [0.3])
    optim.ClipNorm(1.0)(params)
    optim.ClipGlobalNorm(1.0)(params)
    optim.ClipValue(1.0)(params)
    np.testing.assert_array_equal(params[0].grad, [0.1, -0.2])
    params = with_grads([0.5, -3.0], [2.0])
    assert optim.clip_grad_norm_(params, 1.0, norm_type=float("inf")) == 3.0
    assert optim.clip_grad_norm_(params[0], 10.0) == pytest.approx(np.hypot(0.5, 3.0) / 3)


def test_params_without_grad_are_skipped_and_frozen_ones_not_updated():
    a, b, frozen = Parameter([1.0, 2.0]), Parameter([3.0]), Parameter([5.0], requires_grad=False)
    a.grad, frozen.grad = np.array([1.0, 1.0], np.float32), np.array([1.0], np.float32)
    rec = Recorder()
    opt = optim.Adam([a, b, frozen], lr=0.1, hooks=[rec, optim.ClipGlobalNorm(1.0)])
    opt.step()
    assert rec.seen[0] == [a, frozen]  # b has no grad: the hooks never see it
    np.testing.assert_array_equal(b.data, [3.0])
    np.testing.assert_array_equal(frozen.data, [5.0])
    assert not np.array_equal(a.data, [1.0, 2.0])
    assert opt.state[0]["step"] == 1 and opt.state[1] == {} and opt.state[2] == {}
    opt.zero_grad()
    assert a.grad is None and frozen.grad is None


@pytest.mark.parametrize("hook_cls", [optim.ClipValue, optim.ClipNorm, optim.ClipGlobalNorm])
def test_error_if_nonfinite_names_the_parameter(hook_cls):
    model = TwoLayer()
    backward_once(model)
    model.head.bias.grad[1] = np.nan
    opt = optim.SGD(model.named_parameters(), lr=0.1,
                    hooks=[hook_cls(1.0, error_if_nonfinite=True)])
    with pytest.raises(RuntimeError, match=r"'head\.bias' \(index 3, shape \(2,\)\).*1 NaN"):
        opt.step()
    hook = hook_cls(1.0, error_if_nonfinite=True, names=model)  # names given to the hook itself
    with pytest.raises(RuntimeError, match=r"head\.bias"):
        hook(list(model.parameters()))
    with pytest.raises(RuntimeError, match=r"parameter \(index 3"):  # unnamed: its position
        hook_cls(1.0, error_if_nonfinite=True)(list(model.parameters()))
    before = model.head.weight.data.copy()
    hook_cls(1.0)(list(model.parameters()))  # the default does not raise
    np.testing.assert_array_equal(model.head.weight.data, before)


def test_user_written_logging_hook():
    model = TwoLayer()
    log: list[dict[str, float]] = []
    names = {id(p): n for n, p in model.named_parameters()}

    def log_grad_norms(params):
        log.append({names[id(p)]: float(np.linalg.norm(p.grad)) for p in params})

    opt = optim.RMSprop(model.parameters(), lr=1e-3, hooks=[log_grad_norms])
    for seed in range(3):
        opt.zero_grad()
        backward_once(model, seed)
        opt.step()
    assert len(log) == 3
    assert list(log[0]) == ["encoder.weight", "encoder.bias", "head.weight", "head.bias"]
    assert all(v > 0 for entry in log for v in entry.values())


@pytest.mark.parametrize(("cls", "kw"), [
    (optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1}),
    (optim.Adam, {"amsgrad": True, "weight_decay": 0.1}),
    (optim.RMSprop, {"centered": True, "momentum": 0.9, "weight_decay": 0.1}),
    (optim.Adagrad, {"lr_decay": 0.1, "weight_decay": 0.1}),
])
def test_updates_keep_float32_in_place(cls, kw):
    p = Parameter(np.array([[1.0, -2.0]], np.float32))
    buffer = p.data
    opt = cls([p], **kw)
    for _ in range(2):
        p.grad = np.array([[0.5, 0.25]], np.float64)  # a float64 grad is cast to the param's
        opt.step()
    assert p.data is buffer and p.dtype == np.float32
    assert all(v.dtype == np.float32 for v in opt.state[0].values() if isinstance(v, np.ndarray))


def test_lr_can_change_between_steps():
    p = Parameter([0.0])
    opt = optim.SGD([p], lr=1.0)
    p.grad = np.array([1.0])
    opt.step()
    opt.lr = 0.5
    opt.step()
    np.testing.assert_allclose(p.data, [-1.5])
    assert opt.defaults["lr"] == 1.0


@pytest.mark.parametrize("make", [
    lambda ps: optim.SGD(ps, lr=-0.1),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=-0.5),
    lambda ps: optim.SGD(ps, lr=0.1, weight_decay=-1.0),
    lambda ps: optim.SGD(ps, lr=0.1, nesterov=True),
    lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
    lambda ps: optim.Adam(ps, lr=float("nan")),
    lambda ps: optim.Adam(ps, betas=(1.0, 0.999)),
    lambda ps: optim.Adam(ps, betas=(0.9, -0.1)),
    lambda ps: optim.Adam(ps, eps=-1e-8),
    lambda ps: optim.RMSprop(ps, alpha=-0.9),
    lambda ps: optim.RMSprop(ps, momentum=-0.1),
    lambda ps: optim.Adagrad(ps, lr_decay=-0.1),
    lambda ps: optim.Adagrad(ps, initial_accumulator_value=-1.0),
    lambda ps: optim.SGD([], lr=0.1),
    lambda ps: optim.SGD(ps + ps, lr=0.1),
    lambda ps: optim.ClipValue(-1.0),
    lambda ps: optim.ClipNorm(-1.0),
    lambda ps: optim.ClipGlobalNorm(-1.0),
])
def test_bad_settings_raise_value_error(make):
    with pytest.raises(ValueError):
        make([Parameter([1.0])])


def test_bad_types_raise_type_error():
    with pytest.raises(TypeError, match="expected Parameters"):
        optim.SGD([np.zeros(3)], lr=0.1)
    with pytest.raises(TypeError, match="callable"):
        optim.SGD([Parameter([1.0])], lr=0.1).add_hook("not a hook")


def test_module_generator_and_module_are_accepted():
    model = TwoLayer()
    assert optim.Adagrad(model.parameters()).params == list(model.parameters())
    assert optim.Adagrad(model).names[-1] == "head.bias"


def test_training_reduces_a_quadratic_loss():
    model = Affine(3, 1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]]) + 0.3
    opt = optim.Adam(model.parameters(), lr=0.1, hooks=[optim.ClipGlobalNorm(5.0)])
    losses = []
    for _ in range(100):
        opt.zero_grad()
        loss = ((model(Tensor(x)) - Tensor(y)) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 1e-2 * losses[0]
