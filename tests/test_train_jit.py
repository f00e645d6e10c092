"""fit(jit=True), the default: each training batch's forward and backward are recorded once per
batch shape and replayed; the run equals fit(jit=False), the eager loop, step for step."""

from __future__ import annotations

import inspect
import math
import warnings

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import functional as F
from tinygrad_rnn import nn, optim, train


class Tagger(nn.Module):
    """(B, T, 3) -> LSTM(8) -> [dropout] -> Linear -> (B, 2) logits of the last step."""

    def __init__(self, p=0.0):
        super().__init__()
        self.lstm = nn.LSTM(3, 8, batch_first=True)
        self.drop = nn.Dropout(p)
        self.drop.rng = np.random.default_rng(5)
        self.head = nn.Linear(8, 2)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(self.drop(out[:, -1]))


def task(n, seed):
    X = np.random.default_rng(seed).standard_normal((n, 5, 3)).astype(np.float32)
    return X, (X[:, :, 0].sum(axis=1) > 0).astype(np.int64)


def run(jit, p=0.0, **kwargs):
    np.random.seed(0)
    model = Tagger(p)
    opt = optim.Adam(model.parameters(), lr=0.02)
    hist = train.fit(model, F.cross_entropy, opt, task(50, 0), epochs=3, batch_size=16,
                     validation=task(20, 1), metrics={"acc": train.accuracy}, progress=False,
                     rng=0, jit=jit, **kwargs)
    return hist, model, opt


@pytest.mark.parametrize("p", [0.0, 0.3])
def test_jit_and_eager_fits_give_the_same_history_and_parameters(p):
    # 50 rows in batches of 16: three full batches and one of 2 (its own recording); with
    # dropout the replay draws the same masks from the same generator as the eager loop
    with warnings.catch_warnings():
        warnings.simplefilter("error", tg.ReplayFallbackWarning)  # nothing falls back
        (h1, m1, o1), (h0, m0, o0) = run(True, p), run(False, p)
    # the replay runs the same primitives in the same order: identical, not merely close
    assert h1.history == h0.history and h1.best_epoch == h0.best_epoch
    for (name, a), (_, b) in zip(m1.named_parameters(), m0.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)
    for s1, s0 in zip(o1.state, o0.state):
        for k in s0:
            np.testing.assert_array_equal(s1[k], s0[k])


def test_jit_is_the_last_argument_and_on_by_default():
    params = inspect.signature(train.fit).parameters
    assert list(params)[-1] == "jit" and params["jit"].default is True


@pytest.mark.parametrize("bad", [1, 0, "yes", None, np.float32(1.0)])
def test_a_bad_jit_value_is_a_type_error_naming_fit_and_jit(bad):
    np.random.seed(0)
    model = Tagger()
    before = {k: v.copy() for k, v in model.state_dict().items()}
    opt = optim.Adam(model.parameters(), lr=0.02)
    with pytest.raises(TypeError, match=r"fit: jit must be a bool"):
        train.fit(model, F.cross_entropy, opt, task(8, 0), 1, 4, progress=False, jit=bad)
    for k, v in model.state_dict().items():  # nothing ran
        np.testing.assert_array_equal(v, before[k])
    assert all(p.grad is None for p in model.parameters())


@pytest.mark.parametrize("at_step", [1, 2, 3, 4])
def test_a_non_finite_loss_of_a_replayed_step_stops_fit_naming_the_step(at_step):
    # a NaN in the rows of batch `at_step` (shuffle off, batches of 4): step 1 is the
    # recording, step 2 the first replay, steps 3 and 4 the generated replay; the update of
    # the bad step never happens, so the model is the eager run's after at_step - 1 steps
    X, y = task(16, 0)
    np.random.seed(0)
    good = Tagger()
    if at_step > 1:
        n = 4 * (at_step - 1)
        train.fit(good, F.cross_entropy, optim.SGD(good.parameters(), lr=0.1), (X[:n], y[:n]),
                  1, 4, shuffle=False, progress=False, jit=False)
    X[4 * (at_step - 1), 2, 1] = math.nan
    np.random.seed(0)
    model = Tagger()
    with pytest.raises(train.NonFiniteError,
                       match=rf"fit: the loss is nan at step {at_step} \(epoch 1/2, batch "
                             rf"{at_step}/4\) \(this batch's X holds NaN or inf\); training "
                             rf"stopped before that update") as info:
        train.fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.1), (X, y), 2, 4,
                  shuffle=False, progress=False)
    assert (info.value.epoch, info.value.batch, info.value.step) == (0, at_step - 1, at_step)
    for (name, a), (_, b) in zip(model.named_parameters(), good.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data, err_msg=name)


@pytest.mark.parametrize("at_step", [1, 3])
def test_a_non_finite_gradient_of_a_replayed_step_stops_before_the_update(at_step):
    # sqrt(p * p) at p = 0: a finite loss (0) and a NaN gradient; the rows of batch `at_step`
    # are zeros, so there p = 0 exactly
    X = np.random.default_rng(0).standard_normal((12, 2)).astype(np.float32)
    y = np.zeros((12, 1), np.float32)

    def loss_fn(pred, target):
        return (pred * pred).sqrt().mean()

    def fresh():
        model = nn.Linear(2, 1, bias=False)
        model.weight._assign(np.full((1, 2), 0.5, np.float32))
        return model
    good = fresh()
    if at_step > 1:
        n = 4 * (at_step - 1)
        train.fit(good, loss_fn, optim.SGD(good.parameters(), lr=0.1), (X[:n], y[:n]), 1, 4,
                  shuffle=False, progress=False, jit=False)
    X[4 * (at_step - 1):4 * at_step] = 0.0
    model = fresh()
    with np.errstate(divide="ignore", invalid="ignore"), pytest.raises(
            train.NonFiniteError, match=rf"fit: the gradient of weight holds NaN or inf \(the "
                                        rf"loss is 0\) at step {at_step} \(epoch 1/1, batch "
                                        rf"{at_step}/3\)"):
        train.fit(model, loss_fn, optim.SGD(model.parameters(), lr=0.1), (X, y), 1, 4,
                  shuffle=False, progress=False)
    np.testing.assert_array_equal(model.weight.data, good.weight.data)


def test_a_model_that_cannot_be_replayed_trains_eagerly_with_a_warning():
    def fit(jit):
        np.random.seed(0)
        model = Tagger()
        model.lstm.step_observers.append(lambda *a: None)
        return train.fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.1),
                         task(8, 0), 1, 4, progress=False, shuffle=False, jit=jit)
    with pytest.warns(tg.ReplayFallbackWarning, match="step observers"):
        h1 = fit(True)
    assert h1.history == fit(False).history
