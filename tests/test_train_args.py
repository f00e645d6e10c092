"""fit, evaluate and predict answer bad arguments with an error naming the function and the
argument, before anything runs: parameters, optimizer state, mode and files stay as they were."""

from __future__ import annotations

import os

import numpy as np
import pytest

from tinygrad_rnn import Tensor, nn, optim, train
from tinygrad_rnn import functional as F

X = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
Y = X @ np.array([[1.0], [-2.0], [0.5]], np.float32)


class NoEval:
    """Callable with parameters(), train() and .training, but no eval(): not a Module."""

    training = True

    def __call__(self, x):
        return x

    def parameters(self):
        return iter(())

    def train(self, mode=True):
        return self


class NoMode(NoEval):
    """Has eval() too, but no .training flag to restore."""

    training = property(lambda self: (_ for _ in ()).throw(AttributeError("training")))

    def eval(self):
        return self


class HalfOptimizer:
    def zero_grad(self):
        pass

    step = None  # not callable


def ragged():
    return [[1.0, 2.0, 3.0], [1.0]] * 4


# (argument changed, its bad value, error type, regex the message must match)
FIT_CASES = [
    ("model", None, TypeError, r"fit: model must be a Module"),
    ("model", 3, TypeError, r"fit: model must be a Module .*got int"),
    ("model", NoEval(), TypeError, r"fit: model must be a Module .*got NoEval"),
    ("model", NoMode(), TypeError, r"fit: model must be a Module .*\.training\), got NoMode"),
    ("model", np.zeros(3), TypeError, r"fit: model must be a Module .*got ndarray"),
    ("loss_fn", None, TypeError, r"fit: loss_fn must be a function"),
    ("loss_fn", "mse", TypeError, r"fit: loss_fn must be a function .*got str"),
    ("optimizer", None, TypeError, r"fit: optimizer\.zero_grad must be a method"),
    ("optimizer", object(), TypeError, r"fit: optimizer\.zero_grad must be a method"),
    ("optimizer", HalfOptimizer(), TypeError, r"fit: optimizer\.step must be a method"),
    ("epochs", 0, ValueError, r"fit: epochs must be an int >= 1, got 0"),
    ("epochs", -1, ValueError, r"fit: epochs must be an int >= 1, got -1"),
    ("epochs", np.int64(0), ValueError, r"fit: epochs must be an int >= 1"),
    ("epochs", 1.5, TypeError, r"fit: epochs must be an int >= 1, got float 1.5"),
    ("epochs", 2.0, TypeError, r"fit: epochs must be an int >= 1, got float 2.0"),
    ("epochs", "3", TypeError, r"fit: epochs must be an int >= 1, got str '3'"),
    ("epochs", True, TypeError, r"fit: epochs must be an int >= 1, got bool True"),
    ("epochs", None, TypeError, r"fit: epochs must be an int >= 1, got NoneType"),
    ("epochs", float("nan"), TypeError, r"fit: epochs must be an int >= 1, got float nan"),
    ("batch_size", 0, ValueError, r"fit: batch_size must be an int >= 1, got 0"),
    ("batch_size", -4, ValueError, r"fit: batch_size must be an int >= 1, got -4"),
    ("batch_size", 2.5, TypeError, r"fit: batch_size must be an int >= 1, got float"),
    ("batch_size", "8", TypeError, r"fit: batch_size must be an int >= 1, got str"),
    ("batch_size", None, TypeError, r"fit: batch_size must be an int >= 1, got NoneType"),
    ("batch_size", False, TypeError, r"fit: batch_size must be an int >= 1, got bool"),
    ("batch_size", float("inf"), TypeError, r"fit: batch_size must be an int >= 1, got float"),
    ("train", X, TypeError, r"fit: train must be a tuple \(X, y\) of arrays, got ndarray"),
    ("train", (X,), TypeError, r"fit: train must be a tuple \(X, y\)"),
    ("train", (X, Y, Y), TypeError, r"fit: train must be a tuple \(X, y\)"),
    ("train", {"X": X, "y": Y}, TypeError, r"fit: train must be a tuple \(X, y\).*dict"),
    ("train", None, TypeError, r"fit: train must be a tuple \(X, y\).*NoneType"),
    ("train", (X, Y[:7]), ValueError, r"fit: train X has 8 samples.*y has 7"),
    ("train", (X[:0], Y[:0]), ValueError, r"fit: train X has 0 samples.*at least one"),
    ("train", (np.float32(1.0), Y), ValueError, r"fit: train X has no samples"),
    ("train", (X, np.float32(1.0)), ValueError, r"fit: train X has 8 samples.*y has no"),
    ("train", (np.array(["a"] * 8), Y), TypeError, r"fit: train X must hold numbers.*<U1"),
    ("train", (X, np.array(["a"] * 8)), TypeError, r"fit: train y must hold numbers.*<U1"),
    ("train", (np.array([None] * 8), Y), TypeError, r"fit: train X must hold numbers.*object"),
    ("train", (X.astype(np.complex64), Y), TypeError, r"fit: train X must hold numbers.*complex"),
    ("train", (ragged(), Y), ValueError, r"fit: train X is not a rectangular array"),
    ("train", (X, ragged()), ValueError, r"fit: train y is not a rectangular array"),
    ("validation", X, TypeError, r"fit: validation must be a tuple \(X, y\)"),
    ("validation", (X, Y[:3]), ValueError, r"fit: validation X has 8 samples.*y has 3"),
    ("validation", (X[:, None], np.array(["b"] * 8)), TypeError,
     r"fit: validation y must hold numbers"),
    ("validation", (ragged(), Y), ValueError, r"fit: validation X is not a rectangular"),
    ("metrics", [train.accuracy], TypeError, r"fit: metrics must be a dict name -> fn.*list"),
    ("metrics", "accuracy", TypeError, r"fit: metrics must be a dict.*str"),
    ("metrics", {"acc": "accuracy"}, TypeError, r"fit: metrics\['acc'\] must be a function"),
    ("metrics", {"acc": None}, TypeError, r"fit: metrics\['acc'\] must be a function"),
    ("metrics", {1: train.accuracy}, TypeError, r"fit: metric names must be str, got 1"),
    ("metrics", {"loss": train.accuracy}, ValueError, r"fit: metric names can't be 'loss'"),
    ("metrics", {"val_acc": train.accuracy}, ValueError, r"fit: metric names can't be .*val_"),
    ("checkpoint", 123, TypeError, r"fit: checkpoint must be a path .*int"),
    ("checkpoint", ["a.npz"], TypeError, r"fit: checkpoint must be a path .*list"),
    ("checkpoint", "{tmp}/missing/best.npz", FileNotFoundError,
     r"fit: the checkpoint folder .*missing does not exist"),
    ("checkpoint", "{tmp}", IsADirectoryError, r"fit: checkpoint=.* is a folder"),
    ("progress", "yes", TypeError, r"fit: progress must be a bool, got str 'yes'"),
    ("progress", None, TypeError, r"fit: progress must be a bool, got None"),
    ("progress", 1, TypeError, r"fit: progress must be a bool, got int 1"),
    ("shuffle", "no", TypeError, r"fit: shuffle must be a bool, got str 'no'"),
    ("shuffle", 0, TypeError, r"fit: shuffle must be a bool, got int 0"),
    ("rng", -1, ValueError, r"fit: rng must be None, an int >= 0 or a np.random.Generator, got -1"),
    ("rng", "seed", TypeError, r"fit: rng must be None, an int >= 0 .*'seed'"),
    ("rng", 1.5, TypeError, r"fit: rng must be None, an int >= 0 .*1.5"),
]


def setup(tmp_path):
    np.random.seed(0)
    model = nn.Linear(3, 1)
    opt = optim.Adam(model.parameters(), lr=0.1)
    model.eval()  # fit must leave the mode as it found it
    args = {"model": model, "loss_fn": F.mse_loss, "optimizer": opt, "train": (X, Y),
            "epochs": 2, "batch_size": 4, "validation": None, "metrics": None,
            "checkpoint": str(tmp_path / "best.npz"), "progress": False, "shuffle": True,
            "rng": 0}
    return model, opt, args


def snapshot(model, opt, tmp_path):
    return (model.state_dict(), model.training, [dict(s) for s in opt.state],
            sorted(os.listdir(tmp_path)))


def same(a, b):
    (p0, mode0, opt0, files0), (p1, mode1, opt1, files1) = a, b
    assert p0.keys() == p1.keys() and all(np.array_equal(p0[k], p1[k]) for k in p0)
    assert (mode0, files0) == (mode1, files1)
    assert all(not s for s in opt0) and all(not s for s in opt1)  # no step was taken


@pytest.mark.parametrize("name, value, error, match", FIT_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(FIT_CASES)])
def test_fit_rejects_bad_arguments_before_anything_runs(tmp_path, name, value, error, match):
    model, opt, args = setup(tmp_path)
    if isinstance(value, str) and "{tmp}" in value:
        value = value.format(tmp=tmp_path)
    args[name] = value
    before = snapshot(model, opt, tmp_path)
    with pytest.raises(error, match=match):
        train.fit(**args)
    same(before, snapshot(model, opt, tmp_path))


@pytest.mark.parametrize("loss_fn, match", [
    (lambda p, t: 0.5, r"fit: loss_fn\(prediction, target\) must return a scalar Tensor: float"),
    (lambda p, t: None, r"must return a scalar Tensor: NoneType"),
    (lambda p, t: np.float32(0.5), r"must return a scalar Tensor: float32"),
    (lambda p, t: F.mse_loss(p, t, reduction="none"), r"must return a scalar Tensor: shape"),
    (lambda p, t: Tensor(np.zeros(2)), r"must return a scalar Tensor: shape \(2,\)"),
])
def test_a_loss_fn_that_returns_no_scalar_tensor_fails_before_the_first_update(
        tmp_path, loss_fn, match):
    model, opt, args = setup(tmp_path)
    before = snapshot(model, opt, tmp_path)
    with pytest.raises(TypeError, match=match):
        train.fit(**{**args, "loss_fn": loss_fn})
    same(before, snapshot(model, opt, tmp_path))


def test_valid_edge_values_are_accepted(tmp_path):
    model, _, args = setup(tmp_path)
    hist = train.fit(**{**args, "epochs": np.int64(1), "batch_size": np.int32(100),
                        "train": (Tensor(X), Y.tolist()), "progress": np.bool_(False),
                        "rng": np.random.default_rng(1), "checkpoint": tmp_path / "b.npz"})
    assert hist.epoch == [0] and (tmp_path / "b.npz").is_file() and not model.training


# ---------------------------------------------------------------- evaluate and predict


def model_and_data():
    np.random.seed(0)
    return nn.Linear(3, 1), (X, Y)


@pytest.mark.parametrize("kwargs, error, match", [
    ({"batch_size": 0}, ValueError, r"evaluate: batch_size must be an int >= 1, got 0"),
    ({"batch_size": 2.0}, TypeError, r"evaluate: batch_size must be an int >= 1, got float"),
    ({"batch_size": None}, TypeError, r"evaluate: batch_size must be an int >= 1"),
    ({"loss_fn": None}, TypeError, r"evaluate: loss_fn must be a function"),
    ({"model": "net"}, TypeError, r"evaluate: model must be a Module"),
    ({"data": X}, TypeError, r"evaluate: data must be a tuple \(X, y\)"),
    ({"data": (X, Y[:2])}, ValueError, r"evaluate: data X has 8 samples.*y has 2"),
    ({"data": (np.array(["x"] * 8), Y)}, TypeError, r"evaluate: data X must hold numbers"),
    ({"metrics": [train.accuracy]}, TypeError, r"evaluate: metrics must be a dict"),
    ({"metrics": {"loss": train.accuracy}}, ValueError, r"evaluate: metric names can't"),
    ({"metrics": {"m": 3}}, TypeError, r"evaluate: metrics\['m'\] must be a function"),
    ({"loss_fn": lambda p, t: 1.0}, TypeError, r"evaluate: loss_fn\(prediction, target\) must"),
])
def test_evaluate_rejects_bad_arguments(kwargs, error, match):
    model, data = model_and_data()
    model.train()
    args = {"model": model, "loss_fn": F.mse_loss, "data": data, **kwargs}
    with pytest.raises(error, match=match):
        train.evaluate(**args)
    assert model.training


@pytest.mark.parametrize("kwargs, error, match", [
    ({"batch_size": 0}, ValueError, r"predict: batch_size must be an int >= 1, got 0"),
    ({"batch_size": -1}, ValueError, r"predict: batch_size must be an int >= 1, got -1"),
    ({"batch_size": "all"}, TypeError, r"predict: batch_size must be an int >= 1, got str"),
    ({"model": None}, TypeError, r"predict: model must be a Module"),
    ({"X": np.float32(1.0)}, ValueError, r"predict: X needs at least one sample.*shape \(\)"),
    ({"X": X[:0]}, ValueError, r"predict: X needs at least one sample.*shape \(0, 3\)"),
    ({"X": np.array(["a", "b"])}, TypeError, r"predict: X must hold numbers"),
    ({"X": ragged()}, ValueError, r"predict: X is not a rectangular array"),
    ({"X": None}, TypeError, r"predict: X must hold numbers .*object"),
])
def test_predict_rejects_bad_arguments(kwargs, error, match):
    model, _ = model_and_data()
    with pytest.raises(error, match=match):
        train.predict(**{"model": model, "X": X, **kwargs})
    assert model.training
