"""A user-written recurrent cell: a minimal gated unit, unrolled by Recurrent, gradient-checked
in float64 and trained with plain SGD on the echo task (repeat the previous input).

    python examples/custom_cell.py [--steps 300] [--hidden 8] [--seq-len 10]
"""

from __future__ import annotations

import argparse

import numpy as np

import tinygrad_rnn as tg
from tinygrad_rnn.data import echo_task
from tinygrad_rnn.nn import Cell, Linear, Module, Parameter, Recurrent


class MGU(Cell):
    """Minimal gated unit (Zhou et al. 2016), one forget gate f; (B, I), (B, H) -> (B, H).

    f = sigmoid(x W_f + h U_f + b_f),  n = tanh(x W_n + (f * h) U_n + b_n),  h' = h + f (n - h).
    """

    def __init__(self, input_size: int, hidden_size: int):
        super().__init__()
        self.hidden_size, k = hidden_size, 1 / np.sqrt(hidden_size)

        def init(*shape):  # torch's U(-1/sqrt(H), 1/sqrt(H)), in the default dtype
            return Parameter(np.random.uniform(-k, k, shape).astype(tg.get_default_dtype()))
        self.w, self.b = init(input_size, 2 * hidden_size), init(2 * hidden_size)
        self.u_f, self.u_n = init(hidden_size, hidden_size), init(hidden_size, hidden_size)

    def initial_state(self, batch_size: int) -> tg.Tensor:
        return tg.Tensor(np.zeros((batch_size, self.hidden_size), self.w.dtype))

    def forward(self, x: tg.Tensor, h: tg.Tensor) -> tg.Tensor:
        xf, xn = (x @ self.w + self.b).chunk(2, axis=1)
        f = (xf + h @ self.u_f).sigmoid()
        return h + f * ((xn + (f * h) @ self.u_n).tanh() - h)


class Echo(Module):
    """MGU over the sequence, a Linear readout at every step: (B, T, 1) -> (B, T, 1)."""

    def __init__(self, hidden: int):
        super().__init__()
        self.rnn = Recurrent(MGU(1, hidden), return_sequences=True)
        self.head = Linear(hidden, 1)

    def forward(self, x: np.ndarray) -> tg.Tensor:
        return self.head(self.rnn(x))


def mse(model: Echo, x: np.ndarray, y: np.ndarray) -> tg.Tensor:
    return ((model(x) - y) ** 2).mean()


def main(steps: int = 300, hidden: int = 8, seq_len: int = 10, lr: float = 0.5) -> float:
    np.random.seed(0)
    model = Echo(hidden)
    x_check, y_check = echo_task(2, 4, rng=1)
    ok = tg.gradcheck_module(model, lambda: mse(model, x_check, y_check))  # float64 inside
    print(f"gradcheck_module over the unrolled MGU + readout: {'passed' if ok else 'FAILED'}")

    x_val, y_val = echo_task(64, seq_len, rng=2)
    with tg.no_grad():
        first = mse(model, x_val, y_val).item()
    rng = np.random.default_rng(3)
    for step in range(steps):
        x, y = echo_task(32, seq_len, rng=rng)
        model.zero_grad()
        loss = mse(model, x, y)
        loss.backward()
        for p in model.parameters():  # plain SGD, written out
            p.data -= lr * p.grad
        if step % max(steps // 5, 1) == 0:
            print(f"step {step:4d}  train mse {loss.item():.4f}")
    with tg.no_grad():
        last = mse(model, x_val, y_val).item()
    print(f"validation mse fell from {first:.4f} to {last:.4f} ({last / first:.1%} of the start)")
    return last / first


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.5)
    args = parser.parse_args()
    main(args.steps, args.hidden, args.seq_len, args.lr)
