"""Parity with torch.optim and torch.nn.utils clipping: same start, same grads, same path."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_rnn import Tensor, optim
from tinygrad_rnn.nn import Parameter

torch = pytest.importorskip("torch")

SHAPES = [(3, 4), (4,), (2, 1, 3)]
SCALES = [3.0, 1.0, 0.2, 2.0, 0.5]  # grad size changes each step, so AMSGrad's max matters


def initial_arrays(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.normal(size=s) for s in SHAPES]


def synthetic_grads(seed: int = 1) -> list[list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [[scale * rng.normal(size=s) for s in SHAPES] for scale in SCALES]


def ours_trajectory(cls, kwargs: dict) -> list[list[np.ndarray]]:
    params = [Parameter(a.copy()) for a in initial_arrays()]
    opt = cls(params, **kwargs)
    path = []
    for grads in synthetic_grads():
        for p, g in zip(params, grads):
            p.grad = g.copy()
        opt.step()
        path.append([p.data.copy() for p in params])
    return path


def torch_trajectory(cls, kwargs: dict) -> list[list[np.ndarray]]:
    params = [torch.tensor(a, requires_grad=True) for a in initial_arrays()]
    opt = cls(params, **kwargs)
    path = []
    for grads in synthetic_grads():
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g)
        opt.step()
        path.append([p.detach().numpy().copy() for p in params])
    return path


CASES = [
    ("SGD", {"lr": 0.1}),
    ("SGD", {"lr": 0.1, "momentum": 0.9}),
    ("SGD", {"lr": 0.1, "momentum": 0.9, "nesterov": True}),
    ("SGD", {"lr": 0.1, "weight_decay": 0.05}),
    ("SGD", {"lr": 0.05, "momentum": 0.8, "dampening": 0.3, "weight_decay": 0.1}),
    ("Adam", {}),
    ("Adam", {"lr": 0.01, "weight_decay": 0.1}),
    ("Adam", {"lr": 0.01, "amsgrad": True}),
    ("Adam", {"lr": 0.02, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.05,
              "amsgrad": True}),
    ("RMSprop", {}),
    ("RMSprop", {"centered": True}),
    ("RMSprop", {"momentum": 0.9}),
    ("RMSprop", {"lr": 0.005, "alpha": 0.9, "centered": True, "momentum": 0.5,
                 "weight_decay": 0.1}),
    ("Adagrad", {}),
    ("Adagrad", {"lr_decay": 0.1}),
    ("Adagrad", {"lr": 0.1, "lr_decay": 0.05, "weight_decay": 0.1,
                 "initial_accumulator_value": 0.5, "eps": 1e-8}),
]


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=[f"{n}-{k}" for n, k in CASES])
def test_five_step_trajectory_matches_torch(name, kwargs):
    ours = ours_trajectory(getattr(optim, name), kwargs)
    theirs = torch_trajectory(getattr(torch.optim, name), kwargs)
    for step, (mine, ref) in enumerate(zip(ours, theirs)):
        for i, (a, b) in enumerate(zip(mine, ref)):
            np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12,
                                       err_msg=f"{name} {kwargs}: step {step}, param {i}")


def test_quadratic_loss_with_global_clip_matches_torch():
    """End to end: backward on a least-squares loss, ClipGlobalNorm hook, Adam, five steps."""
    rng = np.random.default_rng(3)
    w0, x, y = rng.normal(size=(2, 3)), rng.normal(size=(5, 3)), rng.normal(size=(5, 2))
    w = Parameter(w0.copy())
    clip = optim.ClipGlobalNorm(0.5)
    opt = optim.Adam([w], lr=0.05, hooks=[clip])
    tw = torch.tensor(w0, requires_grad=True)
    topt = torch.optim.Adam([tw], lr=0.05)
    for _ in range(5):
        opt.zero_grad()
        (((Tensor(x) @ w.T - Tensor(y)) ** 2).sum()).backward()
        opt.step()
        topt.zero_grad()
        ((torch.tensor(x) @ tw.T - torch.tensor(y)) ** 2).sum().backward()
        total = torch.nn.utils.clip_grad_norm_([tw], 0.5)
        topt.step()
        assert clip.last_norm == pytest.approx(total.item(), rel=1e-12)
        np.testing.assert_allclose(w.data, tw.detach().numpy(), rtol=1e-10, atol=1e-12)


def grad_pairs(seed: int = 4, scale: float = 2.0):
    """The same gradients on our Parameters and on torch leaves."""
    rng = np.random.default_rng(seed)
    grads = [scale * rng.normal(size=s) for s in SHAPES]
    ours = [Parameter(np.zeros(s)) for s in SHAPES]
    theirs = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES]
    for p, t, g in zip(ours, theirs, grads):
        p.grad, t.grad = g.copy(), torch.tensor(g)
    return ours, theirs


def assert_same_grads(ours, theirs, rtol=1e-12):
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=rtol, atol=1e-14)


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
@pytest.mark.parametrize("max_norm", [0.5, 1e3])
def test_clip_grad_norm_matches_torch(norm_type, max_norm):
    ours, theirs = grad_pairs()
    total = optim.clip_grad_norm_(ours, max_norm, norm_type=norm_type)
    ref = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    assert total == pytest.approx(ref.item(), rel=1e-12)
    assert_same_grads(ours, theirs)


@pytest.mark.parametrize("norm_type", [2.0, float("inf")])
def test_clip_global_norm_hook_matches_torch(norm_type):
    ours, theirs = grad_pairs()
    hook = optim.ClipGlobalNorm(0.7, norm_type=norm_type)
    hook(ours)
    ref = torch.nn.utils.clip_grad_norm_(theirs, 0.7, norm_type=norm_type)
    assert hook.last_norm == pytest.approx(ref.item(), rel=1e-12)
    assert_same_grads(ours, theirs)


def test_clip_grad_value_and_clip_value_hook_match_torch():
    ours, theirs = grad_pairs()
    optim.clip_grad_value_(ours, 0.8)
    torch.nn.utils.clip_grad_value_(theirs, 0.8)
    assert_same_grads(ours, theirs)
    ours, theirs = grad_pairs(seed=5)
    optim.ClipValue(0.3)(ours)
    torch.nn.utils.clip_grad_value_(theirs, 0.3)
    assert_same_grads(ours, theirs)


def test_clip_norm_hook_matches_per_tensor_torch_clip():
    """Keras clipnorm = torch clip_grad_norm_ on each tensor alone (up to torch's 1e-6)."""
    ours, theirs = grad_pairs()
    hook = optim.ClipNorm(1.0)
    hook(ours)
    refs = [torch.nn.utils.clip_grad_norm_([t], 1.0).item() for t in theirs]
    np.testing.assert_allclose(hook.last_norm, refs, rtol=1e-12)
    assert_same_grads(ours, theirs, rtol=1e-6)


def test_nonfinite_grads_follow_torch_without_error_and_raise_with_it():
    ours, theirs = grad_pairs()
    ours[1].grad[2] = np.inf
    theirs[1].grad[2] = float("inf")
    total = optim.clip_grad_norm_(ours, 1.0)
    ref = torch.nn.utils.clip_grad_norm_(theirs, 1.0)
    assert total == ref.item() == float("inf")
    for p, t in zip(ours, theirs):  # finite entries scaled to 0, the inf one to NaN, as torch
        np.testing.assert_array_equal(p.grad, t.grad.numpy())
    with pytest.raises(RuntimeError):
        torch.nn.utils.clip_grad_norm_(theirs, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="index 1"):
        optim.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
