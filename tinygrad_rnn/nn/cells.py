"""Recurrent cells: the Cell base and torch's RNNCell, LSTMCell and GRUCell.

A cell is only a composition of Tensor ops: BPTT comes from the engine, never from a
hand-written backward. Built-in cells split one step in two for speed: `project_inputs` does
the input matmul for every time step at once, `step` does one step's hidden matmul and gates,
and `forward(x_t, state)` is `step(project_inputs(x_t), state, hidden_weights())`.

Initialisation follows torch, U(-1/sqrt(H), 1/sqrt(H)) for every parameter, drawn from numpy's
global RNG so that `np.random.seed(s)` makes a model reproducible (as `torch.manual_seed`),
or from the Generator passed as the keyword `rng` (as nn.Linear), which also draws the cells'
variational dropout masks (nn/dropout_masks.py).
"""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np

from tinygrad_rnn.nn.dropout_masks import DropoutMasks
from tinygrad_rnn.nn.module import Module, Parameter
from tinygrad_rnn.tensor import Tensor, addcmul, addmm, get_default_dtype
from tinygrad_rnn.validate import (
    check_bool,
    check_rng,
    check_size,
    check_state_parts,
    float_input,
)

State = Tensor | tuple[Tensor, ...]


def _defining_class(cls: type, name: str) -> type:
    return next(k for k in cls.__mro__ if name in k.__dict__)


class Cell(Module):
    """Base of recurrent cells: `forward(x_t, state)` maps one step's input to the new state.

    A subclass calls `super().__init__()`, sets `hidden_size`, assigns Parameters and
    implements `forward` (and `initial_state` when its state is not one (B, H) Tensor).
    The step output is the state, or its first element when the state is a tuple.

    Shape:
        x_t: (B, input_size); state: (B, hidden_size) or a tuple of such Tensors.
    """

    hidden_size: int
    state_names: tuple[str, ...] = ("h",)  # the parts of the state, as error messages name them

    def forward(self, x_t: Tensor, state: State) -> State:
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def initial_state(self, batch_size: int) -> State:
        """Zeros (batch_size, hidden_size) in the dtype of the cell's parameters."""
        if not hasattr(self, "hidden_size"):
            raise AttributeError(f"{type(self).__name__}: set self.hidden_size or override "
                                 f"initial_state")
        batch_size = check_size(f"{type(self).__name__}.initial_state", "batch_size", batch_size)
        return Tensor(np.zeros((batch_size, self.hidden_size), self.param_dtype()))

    def __call__(self, x_t: Any, state: State | None = None) -> State:
        """One step; `state=None` starts from `initial_state(batch)`. x_t: (B, input_size)."""
        who = type(self).__name__
        x_t = float_input(who, "input", x_t)
        if x_t.ndim != 2:
            raise ValueError(f"{who}: expected input (batch, input_size), got shape {x_t.shape}")
        width = getattr(self, "input_size", None)
        if isinstance(width, int) and x_t.shape[1] != width:
            raise ValueError(f"{who}: expected input width (input_size) {width}, got "
                             f"{x_t.shape[1]} (input shape {x_t.shape})")
        self.check_parameters(who)
        batch = x_t.shape[0]
        state = self.initial_state(batch) if state is None else self.check_state(
            state, batch, who)
        return self.forward(x_t, state)

    def begin_sequence(self, x: Tensor, time_axis: int) -> None:
        """Called by the unroll before each sequence (x (B, T, I) or (T, B, I)): the built-in
        cells draw their dropout masks here. Nothing by default."""

    # ---- checks, once per call (never per unrolled step) --------------------------------
    def state_layout(self, batch: int) -> tuple[bool, list[tuple[int, ...]] | None, str]:
        """What a state for `batch` looks like: (is it a tuple, each part's shape or None
        when unknown, where that shape comes from). A custom `initial_state` is asked once
        per batch size."""
        if _defining_class(type(self), "initial_state") in (Cell, LSTMCell):
            if not hasattr(self, "hidden_size"):
                return len(self.state_names) > 1, None, ""
            widths = [self.hidden_size] * len(self.state_names)
            hint = f"batch {batch}, hidden_size {self.hidden_size}"
            proj = getattr(self, "proj_size", 0)
            if proj:  # LSTM with a projection: h is (B, proj_size)
                widths[0], hint = proj, hint + f", proj_size {proj}"
            return len(widths) > 1, [(batch, w) for w in widths], hint
        cached = self.__dict__.get("_state_layout_cache")
        if cached is None or cached[0] != batch:
            init = self.initial_state(batch)
            parts = init if isinstance(init, tuple) else (init,)
            hint = f"what {type(self).__name__}.initial_state({batch}) gives"
            cached = (batch, (isinstance(init, tuple), [tuple(p.shape) for p in parts], hint))
            object.__setattr__(self, "_state_layout_cache", cached)
        return cached[1]

    def check_state(self, state: Any, batch: int, who: str, what: str = "state") -> State:
        """`state` as the cell's state of Tensors, or a clear error naming the part at fault.

        A tuple state must be a tuple (or list) of as many parts; each part must be floating
        and have the shape `initial_state(batch)` gives, (batch, hidden_size) for the built-in
        cells: a state of batch 1 never broadcasts against a larger batch.
        """
        return check_state_parts(who, what, state, batch, self.state_layout(batch),
                                 self.state_names)

    def check_parameters(self, who: str) -> None:
        """Hook for a cell to check its parameters' shapes before a call (a few comparisons)."""

    def param_dtype(self) -> np.dtype:
        """The dtype of the first parameter (the default dtype for a cell without any)."""
        p = next(self.parameters(), None)
        return get_default_dtype() if p is None else p.dtype

    @staticmethod
    def step_output(state: State) -> Tensor:
        """What one step emits: the state, or state[0] for a tuple state (h of (h, c))."""
        return state[0] if isinstance(state, tuple) else state

    def reset_parameters(self, rng: np.random.Generator | None = None) -> None:
        """Redraw every parameter from U(-1/sqrt(H), 1/sqrt(H)) (torch's rule); `rng` or
        numpy's global RNG."""
        who = f"{type(self).__name__}.reset_parameters"
        if not hasattr(self, "hidden_size"):
            raise AttributeError(f"{who}: set self.hidden_size or override reset_parameters")
        size = self.hidden_size
        check_rng(who, rng)
        k, draw = 1.0 / math.sqrt(size) if size else 0.0, np.random if rng is None else rng
        for p in self.parameters():
            p._assign(draw.uniform(-k, k, p.shape).astype(p.dtype))

    # ---- fast path used by the unroll; the defaults fall back to forward per step ---------
    def project_inputs(self, x: Tensor) -> Tensor:
        """The part of a step that depends only on the input, for all steps at once."""
        return x

    def hidden_weights(self) -> Any:
        """Whatever `step` needs from the parameters, prepared once per sequence."""
        return None

    def step(self, xp_t: Tensor, state: Any, weights: Any) -> State:  # subclasses narrow state
        """One step from a projected input `xp_t` (a row of `project_inputs`)."""
        return self.forward(xp_t, state)

    def uses_fast_path(self) -> bool:
        """True when `step` is as specific as `forward`: a subclass that overrides only
        forward (say of LSTMCell) gets its forward called on raw inputs per step."""
        cls = type(self)
        return issubclass(_defining_class(cls, "step"), _defining_class(cls, "forward"))


class _TorchCell(DropoutMasks, Cell):
    """Shared layout of torch's cells: weight_ih (G*H, I), weight_hh (G*H, H), two biases;
    keyword-only `dropout` and `recurrent_dropout` (Keras' variational masks, training only)."""

    gates = 1
    fold_hidden_bias = True  # bias_hh joins the input projection unless a gate needs it apart

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 rng: np.random.Generator | None = None, proj_size: int = 0):
        super().__init__()
        who = type(self).__name__
        input_size = check_size(who, "input_size", input_size)  # 0 works, as torch's cells
        hidden_size = check_size(who, "hidden_size", hidden_size)
        proj_size = check_proj_size(who, proj_size, hidden_size)
        bias = check_bool(who, "bias", bias)
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        self.dropout, self.recurrent_dropout = dropout, recurrent_dropout
        rows, dt = self.gates * hidden_size, get_default_dtype()
        self.weight_ih = Parameter(np.zeros((rows, input_size), dt))
        self.weight_hh = Parameter(np.zeros((rows, proj_size or hidden_size), dt))
        self.bias_ih = Parameter(np.zeros(rows, dt)) if bias else None
        self.bias_hh = Parameter(np.zeros(rows, dt)) if bias else None
        if proj_size:  # after the biases: torch's state_dict order
            self.proj_size = proj_size
            self.weight_hr = Parameter(np.zeros((proj_size, hidden_size), dt))
        self.reset_parameters(rng)  # checks rng first
        self.rng = rng  # it draws the dropout masks too

    def __call__(self, x_t: Any, state: State | None = None) -> State:
        if state is None:  # a new sequence: its dropout masks are drawn afresh
            self.reset_dropout_mask()
        return super().__call__(x_t, state)

    def forward(self, x_t: Tensor, state: State) -> State:
        if self.dropout or self.recurrent_dropout:
            self._step_masks(x_t)
        return self.step(self.project_inputs(x_t), state, self.hidden_weights())

    def recurrent_width(self) -> int:
        return getattr(self, "proj_size", 0) or self.hidden_size

    def gates_of(self, t: Tensor) -> list[Tensor]:
        """(B, G*H) -> G pieces (B, H) in gate order (G empty pieces when hidden_size is 0)."""
        return t.chunk(self.gates, axis=1)

    def check_parameters(self, who: str) -> None:
        """A Parameter replaced by one of another shape (or a bias by None) is named here,
        rather than failing as a matmul deep inside a step."""
        rows, size, width = self.gates * self.hidden_size, self.hidden_size, self.recurrent_width()
        expected: dict[str, tuple[int, ...]] = {"weight_ih": (rows, self.input_size),
                                                "weight_hh": (rows, width)}
        if self.bias:
            expected.update(bias_ih=(rows,), bias_hh=(rows,))
        if width != size:
            expected["weight_hr"] = (width, size)
        for name, shape in expected.items():
            p = getattr(self, name)
            if p is None or p.shape != shape:
                got = "None" if p is None else f"shape {p.shape}"
                proj = f", proj_size {width}" if width != size else ""
                raise ValueError(f"{who}: parameter {name} has {got}, expected {shape} "
                                 f"({self.gates} gates, input_size {self.input_size}, "
                                 f"hidden_size {size}{proj})")

    def project_inputs(self, x: Tensor) -> Tensor:
        """x (..., input_size) -> x @ weight_ih.T + biases, (..., G * hidden_size); x is
        masked first when an input dropout mask is in use (once for all steps)."""
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{type(self).__name__}: expected input width (input_size) "
                             f"{self.input_size}, got {x.shape[-1]} (input shape {x.shape})")
        if self._input_mask is not None:
            x = self._mask_inputs(x)
        if not self.bias:
            return x @ self.weight_ih.T
        b_ih, b_hh = cast(Parameter, self.bias_ih), cast(Parameter, self.bias_hh)  # bias=True
        bias = b_ih + b_hh if self.fold_hidden_bias else b_ih
        rows = x.reshape(math.prod(x.shape[:-1]), self.input_size)  # all steps: one GEMM
        return addmm(bias, rows, self.weight_ih.T).reshape(x.shape[:-1] + bias.shape)

    def hidden_weights(self) -> Any:
        return self.weight_hh.T  # transposed once per sequence, not once per step

    def extra_repr(self) -> str:
        extra = [f"{self.input_size}, {self.hidden_size}"] + ([] if self.bias else ["bias=False"])
        extra += [f"{k}={getattr(self, k)}" for k in ("proj_size", "dropout", "recurrent_dropout")
                  if getattr(self, k, 0)]
        return ", ".join(extra)


def check_proj_size(who: str, proj_size: Any, hidden_size: int) -> int:
    """torch's rule: an int with 0 <= proj_size < hidden_size (0: no projection)."""
    proj_size = check_size(who, "proj_size", proj_size, minimum=-(1 << 62))
    if proj_size < 0:
        raise ValueError(f"{who}: proj_size should be a positive integer or zero to disable "
                         f"projections, got {proj_size}")
    if proj_size and proj_size >= hidden_size:
        raise ValueError(f"{who}: proj_size has to be smaller than hidden_size, got proj_size "
                         f"{proj_size} and hidden_size {hidden_size}")
    return proj_size


class RNNCell(_TorchCell):
    """Elman cell as torch: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh), act tanh or relu.

    Keyword-only `dropout`, `recurrent_dropout`: Keras' variational masks (training only).
    Shape: x_t (B, input_size), h (B, hidden_size) -> (B, hidden_size).
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", *, dropout: float = 0.0,
                 recurrent_dropout: float = 0.0, rng: np.random.Generator | None = None):
        if not isinstance(nonlinearity, str) or nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got "
                             f"{nonlinearity!r}")
        super().__init__(input_size, hidden_size, bias, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, rng=rng)
        self.nonlinearity = nonlinearity

    def step(self, xp_t: Tensor, h: Tensor, w_hh_t: Tensor) -> Tensor:
        m = self._recurrent_mask  # None unless recurrent dropout is on (training)
        pre = addmm(xp_t, h if m is None else h * m, w_hh_t)  # xp_t + h @ w_hh_t, one buffer
        return pre.tanh() if self.nonlinearity == "tanh" else pre.relu()


class LSTMCell(_TorchCell):
    """LSTM cell as torch, gate order i, f, g, o; the state is the tuple (h, c).

    c' = sigmoid(f) * c + sigmoid(i) * tanh(g),  h' = sigmoid(o) * tanh(c'), then with
    `proj_size` > 0 (torch's LSTM projection, here on the cell too) h' = h' @ weight_hr^T.
    Keyword-only `dropout`, `recurrent_dropout`: Keras' variational masks (training only).
    Shape: x_t (B, input_size), h (B, P), c (B, hidden_size) -> (h', c'), with P = proj_size
    or hidden_size; weight_hh (4H, P), weight_hr (P, H).
    """

    gates = 4
    state_names = ("h", "c")
    proj_size = 0

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 proj_size: int = 0, dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 rng: np.random.Generator | None = None):
        super().__init__(input_size, hidden_size, bias, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, rng=rng, proj_size=proj_size)

    def initial_state(self, batch_size: int) -> tuple[Tensor, Tensor]:
        batch_size = check_size("LSTMCell.initial_state", "batch_size", batch_size)
        dt = self.param_dtype()
        return (Tensor(np.zeros((batch_size, self.recurrent_width()), dt)),
                Tensor(np.zeros((batch_size, self.hidden_size), dt)))

    def hidden_weights(self) -> Any:
        w_hh_t = self.weight_hh.T
        return (w_hh_t, self.weight_hr.T) if self.proj_size else w_hh_t

    def step(self, xp_t: Tensor, state: tuple[Tensor, Tensor],
             weights: Any) -> tuple[Tensor, Tensor]:
        h, c = state
        m, proj = self._recurrent_mask, self.proj_size
        w_hh_t = weights[0] if proj else weights
        i, f, g, o = self.gates_of(addmm(xp_t, h if m is None else h * m, w_hh_t))
        c = addcmul(f.sigmoid() * c, i.sigmoid(), g.tanh())  # f*c + i*g, one array fewer
        h = o.sigmoid() * c.tanh()
        return (h @ weights[1] if proj else h), c


class GRUCell(_TorchCell):
    """GRU cell as torch, gate order r, z, n; bias_hh's n part sits inside the reset gate.

    n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn)),  h' = (1 - z) * n + z * h.
    Keyword-only `dropout`, `recurrent_dropout`: Keras' variational masks (training only); the
    recurrent mask reaches only h W_hh^T, never the z * h carry.
    Shape: x_t (B, input_size), h (B, hidden_size) -> (B, hidden_size).
    """

    gates = 3
    fold_hidden_bias = False

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, *,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0,
                 rng: np.random.Generator | None = None):
        super().__init__(input_size, hidden_size, bias, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, rng=rng)

    def hidden_weights(self) -> tuple[Tensor, Tensor | None]:
        return self.weight_hh.T, self.bias_hh

    def step(self, xp_t: Tensor, h: Tensor, weights: tuple[Tensor, Tensor | None]) -> Tensor:
        w_hh_t, b_hh = weights
        m = self._recurrent_mask
        hm = h if m is None else h * m
        hp = hm @ w_hh_t if b_hh is None else addmm(b_hh, hm, w_hh_t)
        xr, xz, xn = self.gates_of(xp_t)
        hr, hz, hn = self.gates_of(hp)
        r, z = (xr + hr).sigmoid(), (xz + hz).sigmoid()
        n = addcmul(xn, r, hn).tanh()  # tanh(xn + r * hn)
        return addcmul(n, z, h - n)  # (1 - z) * n + z * h as n + z * (h - n): fewer ops
