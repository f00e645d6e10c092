"""fit: a Keras-like training loop with a History, a progress bar, validation and a best checkpoint.

`loss_fn(prediction, target) -> scalar Tensor`, prediction = model(Tensor(xb)), target = the numpy
batch yb (torch's `criterion(output, target)`), so functional's losses plug in as they are.
Training that turns non-finite stops with a NonFiniteError naming the step (docs/training.md).
By default each training batch's forward and backward run through `tinygrad_rnn.jit`: recorded
on the first batch of each shape, replayed after; `jit=False` runs them eagerly.
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

from tinygrad_rnn import fit_args as args
from tinygrad_rnn.data import batches
from tinygrad_rnn.history import History, plot_history, restore_best
from tinygrad_rnn.jit import jit as _jit
from tinygrad_rnn.metrics import accuracy, binary_accuracy, binary_accuracy_logits
from tinygrad_rnn.serialization import save
from tinygrad_rnn.tensor import Tensor, no_grad
from tinygrad_rnn.validate import check_bool

__all__ = ["History", "NonFiniteError", "accuracy", "binary_accuracy", "binary_accuracy_logits",
           "evaluate", "fit", "plot_history", "predict", "restore_best"]

LossFn = Callable[[Any, np.ndarray], Tensor]
Metric = Callable[[np.ndarray, np.ndarray], float]


class NonFiniteError(FloatingPointError, RuntimeError):
    """`fit` stopped because training turned non-finite: a batch's loss, a gradient (checked
    before the optimizer's step, so the bad update is never applied) or val_loss. Both a
    FloatingPointError and a RuntimeError. Attributes: `epoch` and `batch` (0-based, as
    History.epoch; batch is None for val_loss), `step` (1-based count of training batches,
    the failed one included), `history` (the History so far: the finished epochs, and the
    failed one when only its val_loss was non-finite).
    """

    def __init__(self, message: str, epoch: int, batch: int | None, step: int,
                 history: History):
        super().__init__(message)
        self.epoch, self.batch, self.step, self.history = epoch, batch, step, history


def _scalar(who: str, loss: Any) -> Tensor:
    if not isinstance(loss, Tensor) or loss._data.size != 1:
        what = f"shape {loss.shape}" if isinstance(loss, Tensor) else type(loss).__name__
        raise TypeError(f"{who}: loss_fn(prediction, target) must return a scalar Tensor: {what}")
    return loss


def _numpy(pred: Any) -> Any:
    return pred._data if isinstance(pred, Tensor) else pred


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
    args.require_model("predict", model)
    batch_size = args.count("predict", "batch_size", batch_size, 1)
    X = args.array("predict", "X", X)
    if X.ndim == 0 or len(X) == 0:
        raise ValueError(f"predict: X needs at least one sample along axis 0, got shape {X.shape}")
    X = args.cast(X, _dtype(model))
    with _evaluating(model):
        return np.concatenate([model(Tensor(xb)).data
                               for (xb,) in batches(X, batch_size=batch_size)])


def evaluate(model: Any, loss_fn: LossFn, data: Any, batch_size: int = 256,
             metrics: Mapping[str, Metric] | None = None) -> dict[str, float]:
    """{"loss": ..., "<metric>": ...} over `data` = (X, y) in eval mode under no_grad: each the
    batch-size-weighted mean of per-batch values. Shape: X (N, ...), y (N, ...)."""
    args.require_model("evaluate", model)
    args.require_callable("evaluate", "loss_fn", loss_fn, "a function loss_fn(prediction, target)")
    batch_size = args.count("evaluate", "batch_size", batch_size, 1)
    metrics = args.metrics_dict("evaluate", metrics)
    X, y = args.pair("evaluate", "data", data, _dtype(model))
    return _evaluate(model, loss_fn, (X, y), batch_size, metrics)


def _evaluate(model: Any, loss_fn: LossFn, data: tuple[np.ndarray, ...], batch_size: int,
              metrics: Mapping[str, Metric], who: str = "evaluate") -> dict[str, float]:
    X, y = data
    sums: dict[str, float] = {}
    with _evaluating(model):
        for xb, yb in batches(X, y, batch_size=batch_size):
            pred = model(Tensor(xb))
            _add(sums, "loss", _scalar(who, loss_fn(pred, yb)).item(), len(xb))
            for key, fn in metrics.items():
                _add(sums, key, fn(_numpy(pred), yb), len(xb))
    return {key: value / len(X) for key, value in sums.items()}


def _add(sums: dict[str, float], key: str, value: float, n: int) -> None:
    sums[key] = sums.get(key, 0.0) + float(value) * n


def _named(model: Any, optimizer: Any) -> list[tuple[str, Any]]:
    """The parameters whose gradients fit checks: the model's, then any other the optimizer
    updates (by its `params`/`names` when it has them)."""
    named = (list(model.named_parameters()) if hasattr(model, "named_parameters")
             else [(f"parameter {i}", p) for i, p in enumerate(model.parameters())])
    seen = {id(p) for _, p in named}
    params = list(getattr(optimizer, "params", []) or [])
    names = list(getattr(optimizer, "names", []) or [None] * len(params))
    for i, (name, p) in enumerate(zip(names, params)):
        if id(p) not in seen:
            named.append((name or f"optimizer parameter {i}", p))
    return named


def _nonfinite_grad(named: list[tuple[str, Any]]) -> str | None:
    """The name of the first parameter whose gradient holds a NaN or an inf, else None."""
    for name, p in named:
        g = getattr(p, "grad", None)
        if g is None:
            continue
        # a finite sum proves every entry finite; only a non-finite sum (maybe an overflow of
        # finite entries) pays for the exact test
        with np.errstate(over="ignore", invalid="ignore"):
            if not np.isfinite(g.sum()) and not np.isfinite(g).all():
                return name
    return None


def _diverged(what: str, where: str, history: History,
              stopped: str = "training stopped before that update was applied") -> str:
    """The message of a NonFiniteError: what turned non-finite, where, and the checkpoint."""
    if history.checkpoint is None:
        kept = "fit ran without a checkpoint"
    elif history.best_epoch is None:
        kept = f"no checkpoint was written to {history.checkpoint}"
    else:
        kept = (f"the best checkpoint {history.checkpoint} (epoch {history.best_epoch + 1}, "
                f"{history.monitor} {history.best:.4g}) is intact")
    return f"fit: {what} {where}; {stopped}; {kept}"


def _hint(xb: np.ndarray, yb: np.ndarray) -> str:
    bad = [name for name, a in (("X", xb), ("y", yb))
           if a.dtype.kind == "f" and not np.isfinite(a).all()]
    return f" (this batch's {' and '.join(bad)} holds NaN or inf)" if bad else ""


def _forward_backward(model: Any, loss_fn: LossFn) -> Callable[[Tensor, np.ndarray], Any]:
    """The training step fit replays: (x Tensor, y batch) -> (loss, prediction), after the
    loss's backward (the optimizer's step stays outside, eager)."""
    def step(x: Tensor, yb: np.ndarray) -> tuple[Tensor, Any]:
        pred = model(x)
        loss = _scalar("fit", loss_fn(pred, yb))
        loss.backward()
        return loss, pred
    return step


def _check_loss(value: float, where: str, xb: np.ndarray, yb: np.ndarray, history: History,
                epoch: int, i: int, step: int) -> None:
    if not math.isfinite(value):
        raise NonFiniteError(_diverged(f"the loss is {value}", where + _hint(xb, yb), history),
                             epoch, i, step, history)


def fit(model: Any, loss_fn: LossFn, optimizer: Any, train: Any, epochs: int,
        batch_size: int = 32, validation: Any = None,
        metrics: Mapping[str, Metric] | None = None, checkpoint: str | os.PathLike | None = None,
        progress: bool = True, shuffle: bool = True, rng: Any = None,
        jit: bool = True) -> History:
    """Train `model` with mini-batch gradient descent; returns a History.

    Args:
        loss_fn: `loss_fn(model(Tensor(xb)), yb) -> scalar Tensor`; e.g. F.cross_entropy.
        optimizer: anything with zero_grad() and step() (tinygrad_rnn.optim).
        train, validation: tuples (X, y) of arrays with equal first dimensions; floating X is
            cast to the model's parameter dtype, integer X (token indices) is kept.
        epochs: >= 1. metrics: name -> fn(prediction ndarray, target ndarray) -> float, logged
            per epoch on the training batches (before each update, as Keras) and on validation.
        checkpoint: path; the parameters are saved there (atomically) each time the monitored
            loss improves: val_loss with validation, else the training loss.
        progress: a tqdm bar with the running loss. rng: seed or Generator for the shuffle.
        jit: run each training batch's forward, loss and backward through tinygrad_rnn.jit
            (one recording per batch shape, then replays: same results, faster); model and
            loss_fn then run as Python only when a batch is recorded, so their side effects
            and value-dependent branches are not repeated (the caller's contract, as
            torch.jit.trace's). What cannot be replayed (a stateful layer, step observers)
            runs eagerly with a ReplayFallbackWarning. False: every batch eagerly.
    Shape: X (N, ...), y (N, ...); batches of batch_size rows, reshuffled every epoch.
    Raises: NonFiniteError when a loss, a gradient or val_loss is NaN or inf, naming the step,
        before the bad update; the checkpoint keeps the best parameters seen before it.
    """
    args.require_model("fit", model)
    args.require_callable("fit", "loss_fn", loss_fn, "a function loss_fn(prediction, target)")
    for method in ("zero_grad", "step"):
        args.require_callable("fit", f"optimizer.{method}", getattr(optimizer, method, None),
                  "a method (pass a tinygrad_rnn.optim optimizer)")
    epochs, batch_size = args.count("fit", "epochs", epochs, 1), args.count("fit", "batch_size",
                                                                    batch_size, 1)
    X, y = args.pair("fit", "train", train, _dtype(model))
    val = None if validation is None else args.pair("fit", "validation", validation, _dtype(model))
    metrics = args.metrics_dict("fit", metrics)
    checkpoint = args.checkpoint_path(checkpoint)
    for name, flag in (("progress", progress), ("shuffle", shuffle), ("jit", jit)):
        check_bool("fit", name, flag)
    gen, named = args.generator(rng), _named(model, optimizer)
    replay = _jit(_forward_backward(model, loss_fn)) if jit else None
    history = History("loss" if val is None else "val_loss", checkpoint)
    n_batches = math.ceil(len(X) / batch_size)
    bar = tqdm(total=epochs * n_batches, disable=not progress, unit="batch", dynamic_ncols=True)
    was, step = model.training, 0
    shown: dict[str, Any] = {}  # the last validation scores (str), on the bar
    try:
        for epoch in range(epochs):
            start, seen = time.perf_counter(), 0
            sums: dict[str, float] = {}
            model.train()
            bar.set_description(f"epoch {epoch + 1}/{epochs}", refresh=False)
            for i, (xb, yb) in enumerate(batches(X, y, batch_size=batch_size, shuffle=shuffle,
                                                 rng=gen)):
                step += 1
                where = f"at step {step} (epoch {epoch + 1}/{epochs}, batch {i + 1}/{n_batches})"
                optimizer.zero_grad()
                if replay is None:
                    pred = model(Tensor(xb))
                    loss = _scalar("fit", loss_fn(pred, yb))
                    value = loss.item()
                    _check_loss(value, where, xb, yb, history, epoch, i, step)
                    loss.backward()
                else:  # forward and backward replayed; the update is what must not happen
                    loss, pred = replay(Tensor(xb), yb)
                    value = loss.item()
                    _check_loss(value, where, xb, yb, history, epoch, i, step)
                bad = _nonfinite_grad(named)
                if bad is not None:
                    raise NonFiniteError(_diverged(f"the gradient of {bad} holds NaN or inf "
                                                   f"(the loss is {value:.4g})", where, history),
                                         epoch, i, step, history)
                optimizer.step()
                seen += len(xb)
                _add(sums, "loss", value, len(xb))
                for key, fn in metrics.items():
                    _add(sums, key, fn(_numpy(pred), yb), len(xb))
                bar.update(1)
                bar.set_postfix(loss=f"{sums['loss'] / seen:.4g}", **shown, refresh=False)
            logs = {key: value / seen for key, value in sums.items()}
            if val is not None:
                scores = _evaluate(model, loss_fn, val, batch_size, metrics, "fit")
                logs.update({f"val_{key}": value for key, value in scores.items()})
            history._record(epoch, logs, time.perf_counter() - start)
            if not math.isfinite(logs[history.monitor]):  # only val_loss can get here
                raise NonFiniteError(_diverged(f"val_loss is {logs['val_loss']}", f"after epoch "
                                               f"{epoch + 1}/{epochs} (step {step})", history,
                                               "training stopped there"),
                                     epoch, None, step, history)
            if checkpoint and history.best_epoch == epoch:
                save(model, checkpoint)
            shown = {key: f"{value:.4g}" for key, value in logs.items() if key.startswith("val_")}
            bar.set_postfix(loss=f"{logs['loss']:.4g}", **shown, refresh=False)
    finally:  # an exception leaves the last saved checkpoint as it was
        bar.close()
        model.train(was)
    return history
