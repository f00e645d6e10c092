"""tinygrad_rnn.train: fit's History, validation, metrics, checkpoints, errors, bar and plot."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from tinygrad_rnn import Tensor, load, nn, optim, train
from tinygrad_rnn import functional as F
from tinygrad_rnn.tensor import is_grad_enabled


def regression(n=12, scale=1.0, seed=0):
    """y = scale * (x @ w) with a fixed w; (n, 3) float32 -> (n, 1)."""
    X = np.random.default_rng(seed).standard_normal((n, 3)).astype(np.float32)
    return X, scale * (X @ np.array([[1.0], [-2.0], [0.5]], np.float32))


def zero_linear():
    model = nn.Linear(3, 1, bias=False)
    model.weight.data[:] = 0.0  # a deterministic start
    return model


class Snapshots(optim.SGD):
    """SGD that keeps a copy of the model's state after every step."""

    def __init__(self, model, lr):
        super().__init__(model.parameters(), lr=lr)
        self.model, self.states = model, []

    def step(self):
        super().step()
        self.states.append(self.model.state_dict())


class Probe(nn.Module):
    """A Linear that records (training, grad enabled, batch size) at every call."""

    def __init__(self):
        super().__init__()
        self.fc, self.calls = zero_linear(), []

    def forward(self, x):
        self.calls.append((self.training, is_grad_enabled(), len(x)))
        return self.fc(x)


def classification(n=30, seed=0):
    X = np.random.default_rng(seed).standard_normal((n, 2)).astype(np.float32)
    return X, (X[:, 0] > 0).astype(np.int64)


# ---------------------------------------------------------------- History and metrics


def test_history_keys_lengths_and_best_epoch_as_keras():
    (X, y), (Xv, yv) = classification(40), classification(20, seed=1)
    np.random.seed(0)
    model = nn.Linear(2, 2)
    hist = train.fit(model, F.cross_entropy, optim.Adam(model.parameters(), lr=0.05), (X, y),
                     epochs=4, batch_size=8, validation=(Xv, yv),
                     metrics={"acc": train.accuracy}, progress=False, rng=0)
    assert list(hist.history) == ["loss", "acc", "val_loss", "val_acc"]
    assert all(len(v) == 4 for v in hist.history.values())
    assert hist.epoch == [0, 1, 2, 3] and len(hist.seconds) == 4
    assert hist.monitor == "val_loss"
    assert hist.best_epoch == int(np.argmin(hist.history["val_loss"]))
    assert hist.best == min(hist.history["val_loss"])
    assert hist.checkpoint is None


def test_loss_and_metrics_are_batch_size_weighted_means():
    # lr=0: nothing changes, so every epoch's mean over uneven batches (4, 4, 2) must equal the
    # loss and accuracy of the whole set
    X, y = classification(10)
    np.random.seed(1)
    model = nn.Linear(2, 2)
    hist = train.fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.0), (X, y),
                     epochs=2, batch_size=4, metrics={"acc": train.accuracy}, progress=False)
    logits = model(Tensor(X))
    np.testing.assert_allclose(hist.history["loss"], [F.cross_entropy(logits, y).item()] * 2,
                               rtol=1e-5)
    assert hist.history["acc"] == [train.accuracy(logits.data, y)] * 2


def test_validation_runs_in_eval_mode_without_grad_and_training_resumes():
    X, y = regression(10)
    model = Probe()
    hist = train.fit(model, F.mse_loss, optim.SGD(model.parameters(), lr=0.01), (X, y),
                     epochs=2, batch_size=4, validation=regression(6, seed=1), progress=False,
                     jit=False)  # Probe notes each call: a replay runs no forward
    train_calls = [c for c in model.calls if c[0]]
    val_calls = [c for c in model.calls if not c[0]]
    assert train_calls == [(True, True, 4), (True, True, 4), (True, True, 2)] * 2
    assert val_calls == [(False, False, 4), (False, False, 2)] * 2
    assert model.calls[3:5] == val_calls[:2]  # after epoch 0's batches, before epoch 1's
    assert model.training
    expected = train.evaluate(model, F.mse_loss, regression(6, seed=1), batch_size=4)
    assert hist.history["val_loss"][-1] == pytest.approx(expected["loss"])


def test_fit_restores_eval_mode_it_started_in():
    model = Probe()
    model.eval()
    train.fit(model, F.mse_loss, optim.SGD(model.parameters(), lr=0.01), regression(4),
              epochs=1, batch_size=4, progress=False)
    assert model.calls == [(True, True, 4)] and not model.training


def test_accuracy_helpers():
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.1, 3.0], [1.0, 5.0, 0.0], [0.0, 0.0, 1.0]])
    assert train.accuracy(logits, np.array([0, 2, 1, 0])) == 0.75
    assert train.accuracy(logits, np.eye(3)[[0, 2, 1, 0]]) == 0.75  # one-hot targets
    seq = np.zeros((2, 5, 3))
    seq[..., 1] = 1.0
    assert train.accuracy(seq, np.ones((2, 5), np.int64)) == 1.0
    with pytest.raises(ValueError, match=r"\(3,\).*\(4, 3\)"):
        train.accuracy(logits, np.array([0, 1, 2]))
    probs, target = np.array([0.9, 0.4, 0.6, 0.1]), np.array([1.0, 1.0, 0.0, 0.0])
    assert train.binary_accuracy(probs, target) == 0.5
    assert train.binary_accuracy(probs, target, threshold=0.35) == 0.75
    assert train.binary_accuracy_logits(np.array([2.0, -1.0, -3.0, 0.5]), target) == 0.5
    assert train.binary_accuracy(probs.reshape(4, 1), target) == 0.5  # (N, 1) vs (N,)


def test_shuffle_is_reproducible_with_a_seed_and_every_row_is_seen():
    def run(seed):
        np.random.seed(0)
        model = nn.Linear(2, 2)
        return train.fit(model, F.cross_entropy, optim.SGD(model.parameters(), lr=0.1),
                         classification(20), epochs=3, batch_size=3, progress=False,
                         rng=seed).history["loss"]
    assert run(5) == run(5)
    assert run(5) != run(6)


def test_float64_inputs_are_cast_to_the_model_dtype_and_integer_inputs_kept():
    seen = []

    class Embed(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.fc = nn.Embedding(5, 2), nn.Linear(2, 1)

        def forward(self, x):
            seen.append(x.dtype)
            return self.fc(self.emb(x) if x.dtype.kind == "i" else x).reshape(-1)

    model = Embed()
    ints, floats = np.arange(5).repeat(2), np.ones((10, 2))
    opt = optim.SGD(model.parameters(), lr=0.1)
    train.fit(model, F.mse_loss, opt, (ints, np.zeros(10)), 1, 10, progress=False)
    train.fit(model, F.mse_loss, opt, (floats, np.zeros(10)), 1, 10, progress=False)
    assert seen == [np.dtype(np.int64), np.dtype(np.float32)]


# ---------------------------------------------------------------- checkpoints


def half_target_fit(tmp_path, epochs=8, loss_fn=F.mse_loss, validation=True):
    """Train toward y; validation wants y / 2, so val_loss falls and then rises again."""
    model = zero_linear()
    opt = Snapshots(model, lr=0.1)  # one step per epoch: states[e] = parameters after epoch e
    path = tmp_path / "best.npz"
    val = regression(12, scale=0.5) if validation else None
    hist = train.fit(model, loss_fn, opt, regression(12), epochs, batch_size=12,
                     validation=val, checkpoint=path, progress=False, shuffle=False)
    return model, opt, path, hist


def test_checkpoint_holds_the_best_by_validation_parameters(tmp_path):
    model, opt, path, hist = half_target_fit(tmp_path)
    val = hist.history["val_loss"]
    assert 0 < hist.best_epoch < len(val) - 1 and val[-1] > hist.best  # it went up again
    saved = load(path)
    np.testing.assert_array_equal(saved["weight"], opt.states[hist.best_epoch]["weight"])
    assert not np.array_equal(model.weight.data, saved["weight"])
    fresh = zero_linear()
    assert train.restore_best(fresh, path) is fresh
    np.testing.assert_array_equal(fresh.weight.data, saved["weight"])
    hist.restore_best(model)
    np.testing.assert_array_equal(model.weight.data, saved["weight"])
    assert os.listdir(tmp_path) == ["best.npz"]  # no temporary files left behind


def test_checkpoint_without_validation_follows_the_training_loss(tmp_path):
    _, opt, path, hist = half_target_fit(tmp_path, epochs=5, validation=False)
    assert hist.monitor == "loss" and "val_loss" not in hist.history
    assert hist.best_epoch == int(np.argmin(hist.history["loss"]))
    np.testing.assert_array_equal(load(path)["weight"], opt.states[hist.best_epoch]["weight"])


def test_restore_best_without_a_checkpoint_is_an_error():
    model = zero_linear()
    hist = train.fit(model, F.mse_loss, optim.SGD(model.parameters(), lr=0.1), regression(4),
                     1, 4, progress=False)
    with pytest.raises(ValueError, match="checkpoint"):
        hist.restore_best(model)


def test_checkpoint_in_a_missing_folder_fails_before_training(tmp_path):
    calls = []

    def loss_fn(pred, target):
        calls.append(1)
        return F.mse_loss(pred, target)
    model = zero_linear()
    missing = tmp_path / "no" / "such" / "best.npz"
    with pytest.raises(FileNotFoundError, match="such"):
        train.fit(model, loss_fn, optim.SGD(model.parameters(), lr=0.1), regression(4), 1, 4,
                  checkpoint=missing, progress=False)
    assert calls == []


@pytest.mark.parametrize("interrupt", [RuntimeError, KeyboardInterrupt])
def test_an_interrupted_fit_keeps_the_last_good_checkpoint(tmp_path, interrupt):
    calls = []

    def loss_fn(pred, target):  # training: one call per epoch; validation: one more
        calls.append(1)
        if len(calls) == 2 * 4 + 1:  # the first batch of epoch 4
            raise interrupt("stop")
        return F.mse_loss(pred, target)
    model = zero_linear()
    opt = Snapshots(model, lr=0.1)
    path = tmp_path / "best.npz"
    with pytest.raises(interrupt):
        train.fit(model, loss_fn, opt, regression(12), 8, batch_size=12,
                  validation=regression(12, scale=0.5), checkpoint=path, progress=False,
                  jit=False)  # loss_fn raises from Python: a replay would not run it
    assert len(opt.states) == 4  # epochs 0-3 finished
    # the same run uninterrupted is best at epoch >= 3, so the file holds epoch 3's parameters
    np.testing.assert_array_equal(load(path)["weight"], opt.states[3]["weight"])
    assert os.listdir(tmp_path) == ["best.npz"] and model.training


# ---------------------------------------------------------------- errors


def test_mismatched_x_and_y_name_both_lengths():
    model = zero_linear()
    opt = optim.SGD(model.parameters(), lr=0.1)
    X, y = regression(10)
    with pytest.raises(ValueError, match=r"train X has 10 samples.*y has 9"):
        train.fit(model, F.mse_loss, opt, (X, y[:9]), 1, 4, progress=False)
    with pytest.raises(ValueError, match=r"validation X has 10 samples.*y has 8"):
        train.fit(model, F.mse_loss, opt, (X, y), 1, 4, validation=(X, y[:8]), progress=False)
    with pytest.raises(TypeError, match=r"tuple \(X, y\)"):
        train.fit(model, F.mse_loss, opt, X, 1, 4, progress=False)


def test_bad_arguments_and_a_non_scalar_loss_are_clear_errors():
    model = zero_linear()
    opt = optim.SGD(model.parameters(), lr=0.1)
    data = regression(4)
    with pytest.raises(ValueError, match="batch_size"):
        train.fit(model, F.mse_loss, opt, data, 1, 0, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        train.fit(model, F.mse_loss, opt, data, -1, 2, progress=False)
    with pytest.raises(ValueError, match="metric names"):
        train.fit(model, F.mse_loss, opt, data, 1, 2, metrics={"loss": train.accuracy},
                  progress=False)
    def per_item(prediction, target):
        return F.mse_loss(prediction, target, reduction="none")
    with pytest.raises(TypeError, match=r"scalar Tensor.*\(2, 1\)"):
        train.fit(model, per_item, opt, data, 1, 2, progress=False)


# ---------------------------------------------------------------- progress bar and plot


def test_progress_false_prints_nothing_and_true_shows_the_bar(capfd):
    model = zero_linear()
    opt = optim.SGD(model.parameters(), lr=0.1)
    train.fit(model, F.mse_loss, opt, regression(8), 2, 4, progress=False)
    assert capfd.readouterr() == ("", "")
    train.fit(model, F.mse_loss, opt, regression(8), 2, 4, validation=regression(4),
              progress=True)
    err = capfd.readouterr().err
    assert "epoch 2/2" in err and "loss=" in err and "val_loss=" in err


def test_plot_history_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    _, _, _, hist = half_target_fit(tmp_path, epochs=3)
    path = tmp_path / "history.png"
    train.plot_history(hist, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    train.plot_history({"loss": [1.0, 0.5], "acc": [0.5, 0.9]}, tmp_path / "dict.png")
    with pytest.raises(ValueError, match="empty"):
        train.plot_history({}, tmp_path / "empty.png")


def test_plot_history_without_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    for name in ("matplotlib", "matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # makes the import fail
    with pytest.raises(ImportError, match=r"pip install tinygrad-rnn\[plot\]"):
        train.plot_history({"loss": [1.0]}, tmp_path / "h.png")


def test_predict_batches_in_eval_mode():
    model = Probe()
    out = train.predict(model, regression(5)[0], batch_size=2)
    assert out.shape == (5, 1) and model.training
    assert model.calls == [(False, False, 2), (False, False, 2), (False, False, 1)]
