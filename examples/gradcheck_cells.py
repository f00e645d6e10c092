"""Gradient-check every built-in cell and a custom one, unrolled over a few steps, in float64.

Each cell runs inside `Recurrent` over T steps (BPTT through the whole unroll); the loss weighs
every output. For each parameter the table shows the largest |analytic - numeric| and the worst
relative error |a - n| / max(|a|, |n|, 1e-6) against central differences; the verdict is
`gradcheck_module`'s, whose failure message names the parameter, its worst element and the
steps that used it. Exits 1 if any cell fails.

    python examples/gradcheck_cells.py [--T 4] [--hidden 4] [--batch 2]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from tinygrad_rnn import GradcheckError, Tensor, gradcheck_module
from tinygrad_rnn.grad_check import numeric_grad
from tinygrad_rnn.nn import Cell, GRUCell, LSTMCell, Parameter, Recurrent, RNNCell
from tinygrad_rnn.ops import OPS, Op, primitive
from tinygrad_rnn.tensor import apply

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/_cli.py: flags, errors
import _cli

INPUT = 3


class IndRNNCell(Cell):
    """Independently recurrent cell (Li et al. 2018): one recurrent weight per unit,
    h' = tanh(x W + u * h + b). Shape: x (B, I), h (B, H) -> (B, H)."""

    def __init__(self, input_size: int, hidden_size: int, tanh_op: type[Op] | None = None):
        super().__init__()
        rng = np.random.default_rng(7)
        self.hidden_size, self.tanh_op = hidden_size, tanh_op
        self.weight = Parameter(rng.uniform(-0.5, 0.5, (input_size, hidden_size)))
        self.u = Parameter(rng.uniform(-1.0, 1.0, hidden_size))
        self.bias = Parameter(np.zeros(hidden_size))

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        pre = x @ self.weight + self.u * h + self.bias
        return pre.tanh() if self.tanh_op is None else apply(self.tanh_op, pre)


def planted_tanh() -> type[Op]:
    """A tanh primitive whose backward is 5% too large: what a wrong derivative looks like."""
    @primitive("planted_wrong_tanh")
    class PlantedTanh(Op):
        def forward(self, x):
            self.out = np.tanh(x)
            return self.out

        def backward(self, g):
            return (g * (1.0 - self.out * self.out) * 1.05,)
    return PlantedTanh


def cells(hidden: int, bug: type[Op] | None) -> dict[str, Cell]:
    return {"RNNCell tanh": RNNCell(INPUT, hidden), "RNNCell relu": RNNCell(
        INPUT, hidden, nonlinearity="relu"), "LSTMCell": LSTMCell(INPUT, hidden),
            "GRUCell": GRUCell(INPUT, hidden), "IndRNNCell (custom)": IndRNNCell(
        INPUT, hidden, bug)}


def error_rows(layer: Recurrent, loss_fn) -> list[tuple[str, tuple, float, float]]:
    """(name, shape, max abs error, worst relative error) per parameter, layer in float64."""
    layer.zero_grad()
    loss_fn().backward()
    rows = []
    for name, p in layer.named_parameters():
        analytic = np.zeros_like(p.data) if p.grad is None else p.grad.copy()
        numeric = numeric_grad(lambda: float(loss_fn().data), p.data, 1e-6)
        err = np.abs(analytic - numeric)
        scale = np.maximum(np.maximum(np.abs(analytic), np.abs(numeric)), 1e-6)
        rows.append((name, p.shape, float(err.max()), float((err / scale).max())))
    layer.zero_grad()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = _cli.Parser(description=__doc__.splitlines()[0])
    parser.add_argument("--T", type=_cli.integer(1, 1000), default=4, help="unrolled steps")
    parser.add_argument("--hidden", type=_cli.integer(1, 256), default=4)
    parser.add_argument("--batch", type=_cli.integer(1, 1000), default=2)
    parser.add_argument("--seed", type=_cli.seed, default=0)
    parser.add_argument("--plant-bug", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    np.random.seed(args.seed)  # built-in cells draw their init from numpy's global generator
    rng = np.random.default_rng(args.seed + 1)
    x = Tensor(rng.standard_normal((args.batch, args.T, INPUT)))
    w = rng.standard_normal((args.batch, args.T, args.hidden))
    bug = planted_tanh() if args.plant_bug else None
    failed = []
    try:
        print(f"gradcheck over T={args.T} steps, batch {args.batch}, hidden {args.hidden}, "
              f"float64, eps 1e-6")
        print(f"{'cell':<20} {'parameter':<16} {'shape':<9} {'max abs err':>12} "
              f"{'worst rel err':>14}  verdict")
        for label, cell in cells(args.hidden, bug).items():
            layer = Recurrent(cell.to(np.float64), return_sequences=True)

            def loss_fn(layer=layer):
                out = layer(x)
                return (out * w).sum() + (out * out).sum() * 0.5
            try:
                verdict = "ok" if gradcheck_module(layer, loss_fn) else "FAIL"
            except GradcheckError as err:
                verdict, message = "FAIL", str(err)
                failed.append((label, message))
            for name, shape, abs_err, rel_err in error_rows(layer, loss_fn):
                print(f"{label:<20} {name:<16} {shape!s:<9} {abs_err:>12.2e} "
                      f"{rel_err:>14.2e}  {verdict}")
    finally:
        OPS.pop("planted_wrong_tanh", None)
    for label, message in failed:
        print(f"\n{label} FAILED:\n  {message}", file=sys.stderr)
    print(f"\n{len(failed)} of 5 cells failed" if failed else "\nall 5 cells passed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
