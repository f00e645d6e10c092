"""A user-written recurrent cell: a minimal gated unit, unrolled by Recurrent, gradient-checked
in float64 and trained with plain SGD on the echo task (repeat the previous input).

    python examples/custom_cell.py [--steps 300] [--hidden 8] [--seq-len 10] [--lr 0.5]

Exits 1 if the gradient check fails, or if training diverges or does not lower the loss.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

import tinygrad_rnn as tg
from tinygrad_rnn.data import echo_task
from tinygrad_rnn.nn import Cell, Linear, Module, Parameter, Recurrent

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/_cli.py: flags, errors
import _cli


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


def run(steps: int = 300, hidden: int = 8, seq_len: int = 10, lr: float = 0.5) -> float:
    """Gradient-check, then train; returns final / initial validation MSE. Raises
    GradcheckError if a gradient is wrong, _cli.Diverged if a loss turns non-finite."""
    np.random.seed(0)
    model = Echo(hidden)
    x_check, y_check = echo_task(2, 4, rng=1)
    tg.gradcheck_module(model, lambda: mse(model, x_check, y_check))  # float64 inside
    print("gradcheck_module over the unrolled MGU + readout: passed")

    x_val, y_val = echo_task(64, seq_len, rng=2)
    with tg.no_grad():
        first = mse(model, x_val, y_val).item()
    rng = np.random.default_rng(3)
    for step in range(steps):
        x, y = echo_task(32, seq_len, rng=rng)
        model.zero_grad()
        loss = mse(model, x, y)
        _cli.check_loss(loss.item(), f"step {step}")
        loss.backward()
        for p in model.parameters():  # plain SGD, written out
            p.data -= lr * p.grad
        if step % max(steps // 5, 1) == 0:
            print(f"step {step:4d}  train mse {loss.item():.4f}")
    with tg.no_grad():
        last = mse(model, x_val, y_val).item()
    _cli.check_loss(last, "the end (validation)")
    verb = "fell" if last < first else "did not fall: it went"
    print(f"validation mse {verb} from {first:.4f} to {last:.4f} ({last / first:.1%} of the start)")
    return last / first


def main(argv: list[str] | None = None) -> int:
    parser = _cli.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=_cli.integer(1), default=300)
    parser.add_argument("--hidden", type=_cli.integer(1, 1024), default=8)
    parser.add_argument("--seq-len", type=_cli.integer(1, 10_000), default=10)
    parser.add_argument("--lr", type=_cli.number(0, above=True), default=0.5)
    args = parser.parse_args(argv)
    try:
        ratio = run(args.steps, args.hidden, args.seq_len, args.lr)
    except tg.GradcheckError as err:
        return _cli.fail(f"the gradient check failed: {err}")
    except _cli.Diverged as err:
        return _cli.fail(f"training diverged: {err}; try a lower --lr")
    return 0 if ratio < 1 else _cli.fail("training did not lower the validation loss")


if __name__ == "__main__":
    sys.exit(main())
