"""fit stops when training turns non-finite: the error names the step, the bad update is never
applied, the best checkpoint stays as it was, and the History so far rides on the error."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from tinygrad_rnn import Tensor, load, nn, optim, save, train
from tinygrad_rnn import functional as F


def regression(n=12, seed=0):
    """y = x @ w with a fixed w; (n, 3) float32 -> (n, 1)."""
    X = np.random.default_rng(seed).standard_normal((n, 3)).astype(np.float32)
    return X, X @ np.array([[1.0], [-2.0], [0.5]], np.float32)


def linear():
    model = nn.Linear(3, 1, bias=False)
    model.weight.data[:] = 0.0
    return model


class Snapshots(optim.Adam):
    """Adam that keeps a copy of the model's state after every step."""

    def __init__(self, model, lr=0.05):
        super().__init__(model.parameters(), lr=lr)
        self.model, self.states = model, []

    def step(self):
        super().step()
        self.states.append(self.model.state_dict())


def poisoned(at_step, value=math.nan):
    """mse_loss, except that the loss of training call number `at_step` (1-based) is `value`;
    calls under no_grad (validation) are not counted. A Python side effect: the fits that use
    it pass jit=False (a replay does not run loss_fn; test_train_jit.py poisons the data)."""
    calls = []

    def loss_fn(prediction, target):
        loss = F.mse_loss(prediction, target)
        if prediction.requires_grad:
            calls.append(1)
            if len(calls) == at_step:
                return loss * value
        return loss
    return loss_fn


def state(model, opt):
    return ({k: v.copy() for k, v in model.state_dict().items()},
            [{k: (np.copy(v) if isinstance(v, np.ndarray) else v) for k, v in s.items()}
             for s in opt.state])


def assert_same(before, after):
    (params0, opt0), (params1, opt1) = before, after
    assert params0.keys() == params1.keys()
    for k in params0:
        np.testing.assert_array_equal(params0[k], params1[k])
    assert len(opt0) == len(opt1)
    for s0, s1 in zip(opt0, opt1):
        assert s0.keys() == s1.keys()
        for k in s0:
            np.testing.assert_array_equal(s0[k], s1[k])


# ---------------------------------------------------------------- the loss


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("at_step, epoch, batch", [(1, 1, 1), (2, 1, 2), (3, 1, 3), (4, 2, 1),
                                                   (8, 3, 2)])
def test_a_non_finite_loss_stops_fit_naming_the_step(value, at_step, epoch, batch):
    model = linear()
    opt = Snapshots(model)
    with pytest.raises(train.NonFiniteError,
                       match=rf"fit: the loss is {value} at step {at_step} \(epoch {epoch}/5, "
                             rf"batch {batch}/3\); training stopped before that update") as info:
        train.fit(model, poisoned(at_step, value), opt, regression(12), 5, 4, progress=False, jit=False)
    err = info.value
    assert isinstance(err, FloatingPointError) and isinstance(err, RuntimeError)
    assert (err.epoch, err.batch, err.step) == (epoch - 1, batch - 1, at_step)
    assert len(opt.states) == at_step - 1  # the failed step never reached the optimizer
    expected = opt.states[-1]["weight"] if opt.states else np.zeros((1, 3), np.float32)
    np.testing.assert_array_equal(model.weight.data, expected)
    assert err.history.epoch == list(range(epoch - 1))  # the finished epochs, logged
    assert all(math.isfinite(v) for v in err.history.history.get("loss", []))


def test_the_optimizer_state_is_that_of_the_last_good_step():
    model = linear()
    opt = optim.Adam(model.parameters(), lr=0.05)
    good = linear()
    good_opt = optim.Adam(good.parameters(), lr=0.05)
    data = regression(12)
    train.fit(good, F.mse_loss, good_opt, data, 1, 4, shuffle=False, progress=False)
    with pytest.raises(train.NonFiniteError, match="step 4"):
        train.fit(model, poisoned(4), opt, data, 2, 4, shuffle=False, progress=False, jit=False)
    assert_same(state(good, good_opt), state(model, opt))


def test_the_best_checkpoint_stays_intact(tmp_path):
    path = tmp_path / "best.npz"
    model = linear()
    opt = Snapshots(model)
    with pytest.raises(train.NonFiniteError,
                       match=rf"the best checkpoint {path} \(epoch 3, loss [\d.e+-]+\) is intact"):
        train.fit(model, poisoned(10), opt, regression(12), 6, 4, checkpoint=path,
                  progress=False, rng=0, jit=False)
    np.testing.assert_array_equal(load(path)["weight"], opt.states[8]["weight"])  # epoch 3's end
    assert os.listdir(tmp_path) == ["best.npz"]  # no temporary file left behind


def test_a_checkpoint_from_an_older_run_is_left_as_it_was(tmp_path):
    path = tmp_path / "best.npz"
    save({"weight": np.full((1, 3), 7.0, np.float32)}, path)
    before = path.read_bytes()
    with pytest.raises(train.NonFiniteError, match=rf"no checkpoint was written to {path}"):
        train.fit(linear(), poisoned(2), optim.SGD(linear().parameters(), lr=0.1),
                  regression(12), 3, 4, checkpoint=path, progress=False, jit=False)
    assert path.read_bytes() == before


def test_without_a_checkpoint_the_message_says_so():
    with pytest.raises(train.NonFiniteError, match="fit ran without a checkpoint"):
        train.fit(linear(), poisoned(1), optim.SGD(linear().parameters(), lr=0.1),
                  regression(8), 1, 4, progress=False, jit=False)


@pytest.mark.parametrize("part, row", [("X", 5), ("y", 6)])
def test_a_nan_in_the_data_is_pointed_out(part, row):
    X, y = regression(8)
    (X if part == "X" else y)[row, 0] = np.nan
    model = linear()
    opt = Snapshots(model)
    with pytest.raises(train.NonFiniteError, match=rf"batch 2/2\) \(this batch's {part} holds "
                                                   "NaN or inf\\)"):
        train.fit(model, F.mse_loss, opt, (X, y), 1, 4, shuffle=False, progress=False)
    assert len(opt.states) == 1  # batch 1's update only
    np.testing.assert_array_equal(model.weight.data, opt.states[0]["weight"])


def test_a_diverging_run_stops_at_the_first_non_finite_loss():
    model = linear()
    opt = optim.SGD(model.parameters(), lr=3.0)  # far past the stable step size of this MSE
    with np.errstate(over="ignore", invalid="ignore"), pytest.raises(train.NonFiniteError) as info:
        train.fit(model, F.mse_loss, opt, regression(12), 100, 4, progress=False)
    err = info.value
    assert np.isfinite(model.weight.data).all()  # the overflowing update was never applied
    assert err.step > 3 and f"step {err.step} " in str(err)
    losses = err.history.history["loss"]
    assert len(losses) == err.epoch and all(map(math.isfinite, losses))


# ---------------------------------------------------------------- the gradients


class SqrtAtZero(nn.Module):
    """A Linear whose output goes through sqrt(0 * z): finite loss, NaN gradient (0 * inf)."""

    def __init__(self):
        super().__init__()
        self.fc = linear()

    def forward(self, x):
        return (self.fc(x) * 0.0).sqrt()


def test_a_non_finite_gradient_with_a_finite_loss_stops_before_the_step():
    model = SqrtAtZero()
    opt = optim.Adam(model.parameters(), lr=0.1)
    before = state(model, opt)
    with np.errstate(divide="ignore", invalid="ignore"), pytest.raises(
            train.NonFiniteError, match=r"fit: the gradient of fc\.weight holds NaN or inf "
                                        r"\(the loss is [\d.e+-]+\) at step 1 \(epoch 1/2, "
                                        r"batch 1/2\)") as info:
        train.fit(model, F.mse_loss, opt, regression(8), 2, 4, progress=False)
    assert (info.value.epoch, info.value.batch, info.value.step) == (0, 0, 1)
    assert_same(before, state(model, opt))


def test_gradients_of_parameters_only_the_optimizer_holds_are_checked():
    model = linear()
    extra = nn.Parameter(np.zeros(1, np.float32))

    def loss_fn(prediction, target):
        return F.mse_loss(prediction, target) + (extra * 0.0).sqrt().sum()
    opt = optim.SGD([("weight", model.weight), ("extra", extra)], lr=0.1)
    with np.errstate(divide="ignore", invalid="ignore"), pytest.raises(
            train.NonFiniteError, match="the gradient of extra holds NaN"):
        train.fit(model, loss_fn, opt, regression(8), 1, 4, progress=False)
    np.testing.assert_array_equal(model.weight.data, 0.0)


class Grads:
    def __init__(self, *grads):
        self.grad = None
        self.grads = grads


@pytest.mark.parametrize("grad, bad", [
    (np.full(4, 60000.0, np.float16), False),  # the float16 sum overflows; every entry is finite
    (np.full(3, 1e308), False),
    (np.array([1.0, np.inf, -np.inf]), True),  # the sum is NaN
    (np.array([np.nan], np.float32), True),
    (np.array([[0.0, -np.inf]]), True),
    (np.zeros((0, 3)), False),
])
def test_the_gradient_check_is_exact(grad, bad):
    p = Tensor(np.zeros_like(grad))
    p.grad = grad
    assert train._nonfinite_grad([("w", p)]) == ("w" if bad else None)


# ---------------------------------------------------------------- validation


def test_a_non_finite_val_loss_stops_after_the_epoch(tmp_path):
    path = tmp_path / "best.npz"
    Xv, yv = regression(4, seed=1)
    Xv[0, 0] = np.inf
    model = linear()
    with np.errstate(invalid="ignore"), pytest.raises(
            train.NonFiniteError, match=rf"fit: val_loss is inf after epoch 1/3 \(step 2\); "
                                        rf"training stopped there; no checkpoint was written "
                                        rf"to {path}") as info:
        train.fit(model, F.mse_loss, optim.SGD(model.parameters(), lr=0.1), regression(8), 3, 4,
                  validation=(Xv, yv), checkpoint=path, progress=False)
    err = info.value
    assert (err.epoch, err.batch, err.step) == (0, None, 2)
    assert err.history.epoch == [0] and math.isinf(err.history.history["val_loss"][0])
    assert math.isfinite(err.history.history["loss"][0]) and not path.exists()


def test_a_metric_may_be_nan_without_stopping():
    hist = train.fit(linear(), F.mse_loss, optim.SGD(linear().parameters(), lr=0.1),
                     regression(8), 2, 4, metrics={"odd": lambda p, t: math.nan}, progress=False)
    assert len(hist.history["odd"]) == 2 and all(map(math.isnan, hist.history["odd"]))


def test_the_model_mode_is_restored_and_the_bar_closed(capfd):
    model = linear()
    model.eval()
    with pytest.raises(train.NonFiniteError):
        train.fit(model, poisoned(2), optim.SGD(model.parameters(), lr=0.1), regression(8), 1, 4,
                  progress=True, jit=False)
    assert not model.training
    err = capfd.readouterr().err
    assert err.count("epoch 1/1") >= 1 and err.endswith("\n")  # the bar ended its line


def test_the_history_on_the_error_restores_the_best_checkpoint(tmp_path):
    model = linear()
    opt = Snapshots(model)
    with pytest.raises(train.NonFiniteError) as info:
        train.fit(model, poisoned(7), opt, regression(12), 4, 4, checkpoint=tmp_path / "b.npz",
                  shuffle=False, progress=False, jit=False)
    best = info.value.history.best_epoch
    assert best in (0, 1)
    info.value.history.restore_best(model)
    np.testing.assert_array_equal(model.weight.data, opt.states[3 * best + 2]["weight"])
