"""History: what `fit` logged per epoch and where its best checkpoint is; plot_history."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any, cast

from tinygrad_rnn.serialization import load


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


def plot_history(history: History | Mapping[str, list[float]], path: str | os.PathLike) -> None:
    """Write a PNG, one panel per logged quantity (loss first, validation dashed); uses
    matplotlib (the `plot` extra) off-screen, without pyplot's global state."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError as err:
        raise ImportError("plot_history needs matplotlib: pip install tinygrad-rnn[plot]") from err
    logs = history.history if isinstance(history, History) else dict(history)
    names = [key for key in logs if not key.startswith("val_")]
    if not names:
        raise ValueError("plot_history: the history is empty: nothing was logged")
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
        ticks = cast(MaxNLocator, ax.xaxis.get_major_locator())  # the default, AutoLocator
        ticks.set_params(integer=True)
        ax.legend()
    fig.tight_layout()
    fig.savefig(os.fspath(path), format="png", dpi=100)
