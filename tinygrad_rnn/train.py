"""fit: a Keras-like training loop with a History, a progress bar, validation and a best checkpoint.

`loss_fn(prediction, target) -> scalar Tensor`, prediction = model(Tensor(xb)), target = the numpy
batch yb (torch's `criterion(output, target)`), so functional's losses plug in as they are.
"""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from tinygrad_rnn.data import batches
from tinygrad_rnn.serialization import load, save
from tinygrad_rnn.tensor import Tensor, no_grad

LossFn = Callable[[Any, np.ndarray], Tensor]
Metric = Callable[[np.ndarray, np.ndarray], float]


def accuracy(prediction: np.ndarray, target: np.ndarray) -> float:
    """Fraction of rows whose argmax over the last axis equals the target class. Shape:
    prediction (..., C) scores; target (...) classes, or (..., C) one-hot (its argmax)."""
    p, t = np.asarray(prediction), np.asarray(target)
    if t.shape == p.shape:
        t = t.argmax(axis=-1)
    if t.shape != p.shape[:-1]:
        raise ValueError(f"accuracy: target {t.shape} does not fit prediction {p.shape}")
    return float((p.argmax(axis=-1) == t).mean())


def binary_accuracy(prediction: np.ndarray, target: np.ndarray, threshold: float = 0.5) -> float:
    """Fraction of entries where (prediction > threshold) equals (target > 0.5), as Keras;
    0.5 suits probabilities (`binary_accuracy_logits` for logits). Shape: both (*), alike."""
    p, t = np.asarray(prediction), np.asarray(target)
    if p.size != t.size:
        raise ValueError(f"binary_accuracy: prediction {p.shape} and target {t.shape} differ")
    return float(((p.reshape(t.shape) > threshold) == (t > 0.5)).mean())


def binary_accuracy_logits(prediction: np.ndarray, target: np.ndarray) -> float:
    """binary_accuracy on logits: threshold 0, since sigmoid(0) = 0.5. Shape: as binary_accuracy."""
    return binary_accuracy(prediction, target, threshold=0.0)


class History:
    """What `fit` returns, as Keras' History. `history` maps "loss", each metric name and, with
    validation, "val_loss" and "val_<name>" to one float per epoch; `epoch` lists the epoch
    indices (0-based, as Keras); `seconds` the wall time of each. `monitor` ("val_loss" with
    validation, else "loss") chose `best_epoch` and its value `best`; `checkpoint` holds them.
    """

    def __init__(self, monitor: str, checkpoint: str | None):
        self.history: dict[str, list[float]] = {}
        self.epoch: list[int] = []
        self.seconds: list[float] = []
        self.monitor, self.checkpoint = monitor, checkpoint
        self.best_epoch: int | None = None
        self.best = math.inf

    def _record(self, epoch: int, logs: Mapping[str, float], seconds: float) -> None:
        self.epoch.append(epoch)
        self.seconds.append(seconds)
        for key, value in logs.items():
            self.history.setdefault(key, []).append(value)
        if logs[self.monitor] < self.best:  # NaN never improves
            self.best, self.best_epoch = logs[self.monitor], epoch

    def restore_best(self, model: Any) -> Any:
        """Load the best checkpoint of this run into `model`; returns the model."""
        if self.checkpoint is None:
            raise ValueError("History.restore_best: fit ran without checkpoint=path")
        return restore_best(model, self.checkpoint)


def restore_best(model: Any, path: str | os.PathLike) -> Any:
    """Load the parameters saved by `fit(..., checkpoint=path)` into `model`; returns it."""
    model.load_state_dict(load(path))
    return model


def _pair(name: str, data: Any, dtype: np.dtype | None) -> tuple[np.ndarray, np.ndarray]:
    """(X, y) as arrays of equal length; floating X is cast to the model's dtype."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"fit: {name} must be a tuple (X, y) of arrays, got {type(data)}")
    X, y = (np.asarray(a.data if isinstance(a, Tensor) else a) for a in data)
    if X.ndim == 0 or y.ndim == 0 or len(X) != len(y) or len(X) == 0:
        raise ValueError(f"fit: {name} X has {len(X) if X.ndim else 'no'} samples (shape "
                         f"{X.shape}) and y has {len(y) if y.ndim else 'no'} (shape {y.shape}); "
                         f"they need the same number, at least one")
    if dtype is not None and X.dtype.kind == "f" and X.dtype != dtype:
        X = X.astype(dtype)
    return X, y


def _scalar(loss: Any) -> Tensor:
    if not isinstance(loss, Tensor) or loss.data.size != 1:
        what = f"shape {loss.shape}" if isinstance(loss, Tensor) else type(loss).__name__
        raise TypeError(f"fit: loss_fn(prediction, target) must return a scalar Tensor: {what}")
    return loss


def _numpy(pred: Any) -> Any:
    return pred.data if isinstance(pred, Tensor) else pred


def _dtype(model: Any) -> np.dtype | None:
    return next((p.dtype for p in model.parameters()), None)


@contextlib.contextmanager
def _evaluating(model: Any) -> Iterator[Any]:
    """Eval mode and no_grad inside; the model's previous mode is restored on the way out."""
    was = model.training
    try:
        with no_grad():
            yield model.eval()
    finally:
        model.train(was)


def predict(model: Any, X: Any, batch_size: int = 256) -> np.ndarray:
    """model(X) in eval mode under no_grad, in batches. Shape: X (N, ...) -> output (N, ...)."""
    X = _pair("predict", (X, np.zeros(len(X))), _dtype(model))[0]
    with _evaluating(model):
        return np.concatenate([model(Tensor(xb)).data
                               for (xb,) in batches(X, batch_size=batch_size)])


def evaluate(model: Any, loss_fn: LossFn, data: Any, batch_size: int = 256,
             metrics: Mapping[str, Metric] | None = None) -> dict[str, float]:
    """{"loss": ..., "<metric>": ...} over `data` = (X, y) in eval mode under no_grad: each the
    batch-size-weighted mean of per-batch values. Shape: X (N, ...), y (N, ...)."""
    X, y = _pair("evaluate", data, _dtype(model))
    sums: dict[str, float] = {}
    with _evaluating(model):
        for xb, yb in batches(X, y, batch_size=batch_size):
            pred = model(Tensor(xb))
            _add(sums, "loss", _scalar(loss_fn(pred, yb)).item(), len(xb))
            for key, fn in (metrics or {}).items():
                _add(sums, key, fn(_numpy(pred), yb), len(xb))
    return {key: value / len(X) for key, value in sums.items()}


def _add(sums: dict[str, float], key: str, value: float, n: int) -> None:
    sums[key] = sums.get(key, 0.0) + float(value) * n


def fit(model: Any, loss_fn: LossFn, optimizer: Any, train: Any, epochs: int,
        batch_size: int = 32, validation: Any = None,
        metrics: Mapping[str, Metric] | None = None, checkpoint: str | os.PathLike | None = None,
        progress: bool = True, shuffle: bool = True, rng: Any = None) -> History:
    """Train `model` with mini-batch gradient descent; returns a History.

    Args:
        loss_fn: `loss_fn(model(Tensor(xb)), yb) -> scalar Tensor`; e.g. F.cross_entropy.
        optimizer: anything with zero_grad() and step() (tinygrad_rnn.optim).
        train, validation: tuples (X, y) of arrays with equal first dimensions; floating X is
            cast to the model's parameter dtype, integer X (token indices) is kept.
        metrics: name -> fn(prediction ndarray, target ndarray) -> float, logged per epoch on
            the training batches (before each update, as Keras) and on validation.
        checkpoint: path; the parameters are saved there (atomically) each time the monitored
            loss improves: val_loss with validation, else the training loss.
        progress: a tqdm bar with the running loss. rng: seed or Generator for the shuffle.
    Shape: X (N, ...), y (N, ...); batches of batch_size rows, reshuffled every epoch.
    """
    for key, value, low in (("epochs", epochs, 0), ("batch_size", batch_size, 1)):
        if int(value) != value or value < low:
            raise ValueError(f"fit: {key} must be an integer >= {low}, got {value!r}")
    epochs, batch_size = int(epochs), int(batch_size)
    X, y = _pair("train", train, _dtype(model))
    val = None if validation is None else _pair("validation", validation, _dtype(model))
    metrics = dict(metrics or {})
    if "loss" in metrics or any(key.startswith("val_") for key in metrics):
        raise ValueError(f"fit: metric names can't be 'loss' or 'val_*', got {sorted(metrics)}")
    if checkpoint is not None:
        checkpoint = os.fspath(checkpoint)
        folder = os.path.dirname(os.path.abspath(checkpoint))
        if not os.path.isdir(folder):  # fail now, not after the first epoch's work
            raise FileNotFoundError(f"fit: the checkpoint folder {folder} does not exist "
                                    f"(checkpoint={checkpoint!r}); create it first")
    history = History("loss" if val is None else "val_loss", checkpoint)
    gen = np.random.default_rng(rng)
    bar = tqdm(total=epochs * math.ceil(len(X) / batch_size), disable=not progress,
               unit="batch", dynamic_ncols=True)
    was, shown = model.training, {}  # shown: the last validation scores, kept on the bar
    try:
        for epoch in range(epochs):
            start, seen, sums = time.perf_counter(), 0, {}
            model.train()
            bar.set_description(f"epoch {epoch + 1}/{epochs}", refresh=False)
            for xb, yb in batches(X, y, batch_size=batch_size, shuffle=shuffle, rng=gen):
                optimizer.zero_grad()
                pred = model(Tensor(xb))
                loss = _scalar(loss_fn(pred, yb))
                loss.backward()
                optimizer.step()
                seen += len(xb)
                _add(sums, "loss", loss.item(), len(xb))
                for key, fn in metrics.items():
                    _add(sums, key, fn(_numpy(pred), yb), len(xb))
                bar.update(1)
                bar.set_postfix(loss=f"{sums['loss'] / seen:.4g}", **shown, refresh=False)
            logs = {key: value / seen for key, value in sums.items()}
            if val is not None:
                scores = evaluate(model, loss_fn, val, batch_size, metrics)
                logs.update({f"val_{key}": value for key, value in scores.items()})
            history._record(epoch, logs, time.perf_counter() - start)
            if checkpoint and history.best_epoch == epoch:
                save(model, checkpoint)
            shown = {key: f"{value:.4g}" for key, value in logs.items() if key.startswith("val_")}
            bar.set_postfix(loss=f"{logs['loss']:.4g}", **shown, refresh=False)
    finally:  # an exception leaves the last saved checkpoint as it was
        bar.close()
        model.train(was)
    return history


def plot_history(history: History | Mapping[str, list[float]], path: str | os.PathLike) -> None:
    """Write a PNG, one panel per logged quantity (loss first, validation dashed); uses
    matplotlib (the `plot` extra) off-screen, without pyplot's global state."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("plot_history needs matplotlib: pip install tinygrad-rnn[plot]") from err
    logs = history.history if isinstance(history, History) else dict(history)
    names = [key for key in logs if not key.startswith("val_")]
    if not names:
        raise ValueError("plot_history: the history is empty (fit ran for 0 epochs?)")
    fig = Figure(figsize=(4.2 * len(names), 3.4))
    FigureCanvasAgg(fig)  # attaches itself to fig
    for i, name in enumerate(names):
        ax = fig.add_subplot(1, len(names), i + 1)
        for key, style in ((name, "-"), (f"val_{name}", "--")):
            if key in logs:
                ax.plot(range(1, len(logs[key]) + 1), logs[key], style, label=key)
        if name == "loss" and min(min(v) for k, v in logs.items() if k.endswith("loss")) > 0:
            ax.set_yscale("log")
        ax.set(xlabel="epoch", title=name)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png", dpi=100)
