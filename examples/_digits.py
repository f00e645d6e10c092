"""The digits task that sequence_digits.py, dynamics.py and curvature.py share: scikit-learn's
8x8 digits read row by row (8 steps of 8 pixels) by a recurrent stack, with a Linear head on
the last state."""

from __future__ import annotations

import numpy as np

import tinygrad_rnn as tg
from tinygrad_rnn import nn

STACKS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class RowClassifier(nn.Module):
    """A one-layer recurrent stack over the image rows, then Linear on the last hidden state.

    Shape: x (B, 8, 8) -> logits (B, 10).
    """

    def __init__(self, cell: str, hidden: int, features: int = 8, classes: int = 10):
        super().__init__()
        self.rnn = STACKS[cell](features, hidden, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: np.ndarray) -> tg.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def load(limit: int | None, seed: int) -> tuple[np.ndarray, ...]:
    """Stratified 75/25 split of the digits as (N, 8 rows, 8 pixels) float32 in [0, 1]."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x, y = (digits.images / 16.0).astype(np.float32), digits.target.astype(np.int64)
    if limit:
        x, y = x[:limit], y[:limit]
    return train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)


def accuracy(model: RowClassifier, x: np.ndarray, y: np.ndarray) -> float:
    """The fraction of x's images classified as y says, in eval mode (then back to train)."""
    model.eval()
    with tg.no_grad():
        pred = model(x).data.argmax(axis=-1)
    model.train()
    return float((pred == y).mean())
