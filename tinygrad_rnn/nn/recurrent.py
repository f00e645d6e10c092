"""Unrolling cells over time: Recurrent (Keras `RNN(cell)`), Bidirectional, and torch's
RNN / LSTM / GRU stacks.

Every op of step t is created inside nested graph scopes, `f"layer={k}"` (stacks only), then
`"dir=forward"` or `"dir=backward"`, then `f"t={t}"` with t the input position; viz and
diagnostics parse these labels. A module that unrolls calls each of its `step_observers` as
`obs(layer, direction, t, state)` as soon as the state of step t exists.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tinygrad_rnn.engine import collector_paused
from tinygrad_rnn.functional import dropout
from tinygrad_rnn.nn.cells import Cell, GRUCell, LSTMCell, RNNCell, State
from tinygrad_rnn.nn.module import Module
from tinygrad_rnn.nn.validate import (
    check_bool,
    check_real,
    check_rng,
    check_size,
    float_input,
)
from tinygrad_rnn.tensor import Tensor, cat, graph_scope, stack, where

StepObserver = Callable[[int, str, int, State], Any]
MERGE_MODES = ("concat", "sum", "mul", "ave", None)


def lengths_mask(lengths: Any, batch: int, steps: int, who: str) -> np.ndarray | None:
    """(B,) true lengths -> (B, T) bool mask, True at real steps; None if nothing is padded."""
    if lengths is None:
        return None
    try:
        arr = np.asarray(lengths._data if isinstance(lengths, Tensor) else lengths)
    except ValueError:  # ragged nesting
        raise ValueError(f"{who}: lengths must be {batch} integers (one per sequence), got "
                         f"a ragged {type(lengths).__name__}") from None
    if arr.size and arr.dtype.kind not in "iu":
        raise TypeError(f"{who}: lengths must be {batch} integers (one per sequence), got "
                        f"{type(lengths).__name__} of dtype {arr.dtype}")
    if arr.shape != (batch,):
        raise ValueError(f"{who}: lengths must be {batch} integers (one per sequence), got "
                         f"shape {arr.shape}")
    bad = arr[(arr < 1) | (arr > steps)]
    if bad.size:
        raise ValueError(f"{who}: lengths must be in [1, T={steps}], got "
                         f"{sorted(set(bad.tolist()))}")
    mask = np.arange(steps)[None, :] < arr[:, None]
    return None if mask.all() else mask


def _check_observers(who: str, observers: Any) -> None:
    for i, obs in enumerate(observers):
        if not callable(obs):
            raise TypeError(f"{who}: step_observers[{i}] is a {type(obs).__name__}, expected a "
                            f"callable obs(layer, direction, t, state)")


def _keep(valid: np.ndarray, new: State, old: State) -> State:
    """`new` where the sequence is still running (valid, (B,)), else `old` unchanged."""
    if isinstance(new, tuple):
        return tuple(_keep(valid, n, o) for n, o in zip(new, old))
    return where(valid.reshape((-1,) + (1,) * (new.ndim - 1)), new, old)


def unroll(cell: Cell, x: Tensor, state: State, *, reverse: bool = False, time_axis: int = 1,
           mask: np.ndarray | None = None, observers: Sequence[StepObserver] = (),
           layer: int = 0) -> tuple[list[Tensor], State]:
    """Run `cell` along the time axis of x from `state`; outputs keep input positions.

    Args:
        x: (B, T, I) when time_axis=1, (T, B, I) when time_axis=0.
        mask: (B, T) bool or None; at False steps the state is kept and the output is zero.
        reverse: consume positions T-1 .. 0 (only the valid part counts, thanks to the mask).
    Returns:
        (outputs, final_state): a list of T step outputs (B, H) indexed by input position.
    """
    direction = "backward" if reverse else "forward"
    steps = x.shape[time_axis]
    fast = cell.uses_fast_path()
    outputs: list[Tensor] = [None] * steps  # type: ignore[list-item]
    with graph_scope(f"dir={direction}"), collector_paused():
        xp, weights = (cell.project_inputs(x), cell.hidden_weights()) if fast else (x, None)
        xs = xp.unbind(time_axis)  # one node; backward stacks the steps' gradients
        for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
            with graph_scope(f"t={t}"):
                x_t = xs[t]
                new = cell.step(x_t, state, weights) if fast else cell.forward(x_t, state)
                out = cell.step_output(new)
                if mask is not None and not mask[:, t].all():
                    valid = mask[:, t]
                    new = _keep(valid, new, state)
                    # out reads the kept state, so an observer's retained dLoss/dh_t
                    # includes this step's output too
                    zero = Tensor(np.zeros((), out.dtype))
                    out = where(valid[:, None], cell.step_output(new), zero)
            state = new
            for obs in observers:
                obs(layer, direction, t, state)
            outputs[t] = out
    return outputs, state


class Recurrent(Module):
    """Unroll any cell over a sequence (Keras `RNN(cell)`), outputs aligned to input positions.

    Args:
        cell: a Cell. return_sequences: all outputs instead of the last one.
        return_state: also return the final state. reverse: run from the last position.
        batch_first: input (B, T, I) if True, (T, B, I) if False.
    Shape:
        x (B, T, I) -> output (B, H) or (B, T, H) (time first when batch_first=False);
        with return_state, (output, final_state).
    """

    def __init__(self, cell: Cell, return_sequences: bool = False, return_state: bool = False,
                 reverse: bool = False, batch_first: bool = True):
        super().__init__()
        if not isinstance(cell, Cell):
            raise TypeError(f"Recurrent: cell must be a Cell, got {type(cell).__name__}")
        flags = {"return_sequences": return_sequences, "return_state": return_state,
                 "reverse": reverse, "batch_first": batch_first}
        flags = {k: check_bool("Recurrent", k, v) for k, v in flags.items()}
        self.cell = cell
        self.return_sequences, self.return_state = flags["return_sequences"], flags["return_state"]
        self.reverse, self.batch_first = flags["reverse"], flags["batch_first"]
        self.step_observers: list[StepObserver] = []

    def forward(self, x: Any, initial_state: Any = None, lengths: Any = None) -> Any:
        """Run the cell over x; `lengths` (B,) marks the real steps of a padded batch.

        A batch of 0 sequences gives empty outputs (as torch); 0 time steps is an error.
        """
        x = float_input("Recurrent", "input", x)
        layout = "(B, T, input_size)" if self.batch_first else "(T, B, input_size)"
        t_axis = 1 if self.batch_first else 0
        if x.ndim != 3 or x.shape[t_axis] == 0:
            raise ValueError(f"Recurrent: expected a non-empty 3-D input {layout}, got shape "
                             f"{x.shape}")
        width = getattr(self.cell, "input_size", None)
        if isinstance(width, int) and x.shape[-1] != width:
            raise ValueError(f"Recurrent: the cell expects input width (input_size) {width}, "
                             f"got {x.shape[-1]} (input shape {x.shape} {layout})")
        who = f"Recurrent({type(self.cell).__name__})"
        self.cell.check_parameters(who)
        _check_observers("Recurrent", self.step_observers)
        batch, steps = x.shape[1 - t_axis], x.shape[t_axis]
        mask = lengths_mask(lengths, batch, steps, "Recurrent")
        state = (self.cell.initial_state(batch) if initial_state is None
                 else self.cell.check_state(initial_state, batch, who, "initial_state"))
        outs, state = unroll(self.cell, x, state, reverse=self.reverse, time_axis=t_axis,
                             mask=mask, observers=self.step_observers)
        # 'last' is the final state's output: the true last step, or position 0 when reversed
        output = stack(outs, axis=t_axis) if self.return_sequences else self.cell.step_output(
            state)
        return (output, state) if self.return_state else output

    def extra_repr(self) -> str:
        flags = ("return_sequences", "return_state", "reverse")
        on = [f"{f}=True" for f in flags if getattr(self, f)]
        return ", ".join(on + ([] if self.batch_first else ["batch_first=False"]))


class Bidirectional(Module):
    """Run a Recurrent layer and an independently initialised copy of it reversed; merge.

    Args:
        layer: a Recurrent (its flags decide return_sequences / return_state).
        merge_mode: 'concat' (last axis), 'sum', 'mul', 'ave', or None for [forward, backward].
    Shape:
        x (B, T, I) -> (B, [T,] 2H) for 'concat', (B, [T,] H) otherwise; with return_state,
        (output, (forward_state, backward_state)). `initial_state` is such a pair too.
    """

    def __init__(self, layer: Recurrent, merge_mode: str | None = "concat"):
        super().__init__()
        if not isinstance(layer, Recurrent):
            raise TypeError(f"Bidirectional: layer must be a Recurrent, got "
                            f"{type(layer).__name__}")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"Bidirectional: merge_mode must be one of {MERGE_MODES}, got "
                             f"{merge_mode!r}")
        backward = copy.deepcopy(layer)
        backward.reverse, backward.step_observers = not layer.reverse, []
        # trainable parameters are drawn afresh; frozen ones keep the values the user set
        frozen = [(p, p._data.copy()) for p in backward.parameters() if not p.requires_grad]
        backward.cell.reset_parameters()
        for p, data in frozen:
            p._assign(data)
        backward.zero_grad()
        self.forward_layer, self.backward_layer, self.merge_mode = layer, backward, merge_mode

    def forward(self, x: Any, initial_state: Any = None, lengths: Any = None) -> Any:
        """Both directions over x (the same `lengths`), merged position by position."""
        if initial_state is None:
            f_init = b_init = None
        elif not isinstance(initial_state, (tuple, list)) or len(initial_state) != 2:
            got = (f"{len(initial_state)} items" if isinstance(initial_state, (tuple, list))
                   else type(initial_state).__name__)
            error = ValueError if isinstance(initial_state, (tuple, list)) else TypeError
            raise error(f"Bidirectional: initial_state must be a pair (forward_state, "
                        f"backward_state), got {got}")
        else:
            f_init, b_init = initial_state
        fwd = self.forward_layer(x, f_init, lengths)
        bwd = self.backward_layer(x, b_init, lengths)
        if self.forward_layer.return_state:
            (fwd, f_state), (bwd, b_state) = fwd, bwd
        mode = self.merge_mode
        if mode is None:
            out: Any = [fwd, bwd]
        elif mode == "concat":
            out = cat([fwd, bwd], axis=-1)
        elif mode == "sum":
            out = fwd + bwd
        elif mode == "mul":
            out = fwd * bwd
        else:
            out = (fwd + bwd) * 0.5
        return (out, (f_state, b_state)) if self.forward_layer.return_state else out

    def extra_repr(self) -> str:
        return f"merge_mode={self.merge_mode!r}"


class RNNBase(Module):
    """Torch-style multi-layer stack of one cell type; parameters carry torch's names.

    Each layer k and direction registers weight_ih_l{k}[_reverse], weight_hh_l{k}[_reverse],
    bias_ih_l{k}[_reverse], bias_hh_l{k}[_reverse] in torch's state_dict order, so a torch
    state_dict converted to numpy loads as is. Dropout between layers (training mode only)
    draws its masks from `self.dropout_rng`: the `rng` given at construction, else None (numpy's
    global RNG, so `np.random.seed` reproduces the masks, as it does the init).
    """

    def __init__(self, make_cell: Callable[[int], Cell], input_size: int, hidden_size: int,
                 num_layers: int = 1, bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, *,
                 rng: np.random.Generator | None = None):
        super().__init__()
        object.__setattr__(self, "_slots", {})  # parameter name -> (cell, its name there)
        name = type(self).__name__
        # torch's stacks (unlike its cells) refuse sizes of 0
        input_size = check_size(name, "input_size", input_size, 1)
        hidden_size = check_size(name, "hidden_size", hidden_size, 1)
        num_layers = check_size(name, "num_layers", num_layers, 1)
        dropout = check_real(name, "dropout", dropout, 0.0, 1.0)
        check_rng(name, rng)
        bias, batch_first, bidirectional = (check_bool(name, k, v) for k, v in (
            ("bias", bias), ("batch_first", batch_first), ("bidirectional", bidirectional)))
        if dropout and num_layers == 1:
            warnings.warn(f"{name}: dropout={dropout} acts between layers, so it has no effect "
                          f"with num_layers=1", UserWarning, stacklevel=3)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, dropout
        self.bidirectional, self.num_directions = bidirectional, 2 if bidirectional else 1
        self.step_observers: list[StepObserver] = []
        self.dropout_rng = rng
        cells = []
        for k in range(num_layers):
            for d in range(self.num_directions):
                cell = make_cell(input_size if k == 0 else hidden_size * self.num_directions)
                for pname, p in cell.named_parameters():  # shared: to() and loads reach cells
                    key = f"{pname}_l{k}" + ("_reverse" if d else "")
                    self._slots[key] = (cell, pname)
                    setattr(self, key, p)
                cells.append(cell)
        self._cells = cells  # a plain list: the cells' parameters are registered above

    def __setattr__(self, name: str, value: Any) -> None:
        """`lstm.weight_hh_l0 = Parameter(...)` also reaches the cell that computes with it."""
        super().__setattr__(name, value)
        slot = self.__dict__.get("_slots", {}).get(name)
        if slot is not None:
            setattr(slot[0], slot[1], value)

    def reset_parameters(self, rng: np.random.Generator | None = None) -> None:
        """Redraw all weights U(-1/sqrt(H), 1/sqrt(H)) as torch, from `rng` or np.random."""
        for cell in self._cells:
            cell.reset_parameters(rng)

    def _initial_states(self, hx: Any, batch: int, unbatched: bool) -> list[State]:
        name, lstm = type(self).__name__, isinstance(self._cells[0], LSTMCell)
        if hx is None:
            return [cell.initial_state(batch) for cell in self._cells]
        if lstm and not isinstance(hx, (tuple, list)):
            raise TypeError(f"{name}: hx must be a tuple (h_0, c_0), got {type(hx).__name__}")
        if lstm and len(hx) != 2:
            raise ValueError(f"{name}: hx must be a tuple (h_0, c_0) of 2 tensors, got "
                             f"{len(hx)}")
        if not lstm and isinstance(hx, tuple):
            raise TypeError(f"{name}: hx must be one Tensor h_0, got a tuple of {len(hx)}")
        parts, labels = (hx, ("h_0", "c_0")) if lstm else ((hx,), ("h_0",))
        expected = (len(self._cells),) + ((batch,) if not unbatched else ()) + (
            self.hidden_size,)
        parts = [float_input(name, f"hx {label}", p) for p, label in zip(parts, labels)]
        for p, label in zip(parts, labels):
            if p.shape != expected:
                dims = "num_layers * num_directions, " + ("" if unbatched else "batch, ")
                raise ValueError(f"{name}: expected hx of shape {expected} ({dims}hidden_size) "
                                 f"for {label}, got {p.shape}")
        if unbatched:
            parts = [p.reshape(len(self._cells), 1, self.hidden_size) for p in parts]
        return [tuple(p[i] for p in parts) if lstm else parts[0][i]
                for i in range(len(self._cells))]

    def forward(self, x: Any, hx: Any = None, lengths: Any = None) -> tuple[Tensor, Any]:
        """Shape: x (T, B, I) ((B, T, I) if batch_first; (T, I) unbatched), hx (L*D, B, H)
        or (h_0, c_0) for LSTM -> output (T, B, D*H), h_n (L*D, B, H) (or (h_n, c_n))."""
        name = type(self).__name__
        x = float_input(name, "input", x)
        time_axis = 1 if self.batch_first and x.ndim == 3 else 0
        if x.ndim not in (2, 3) or x.shape[time_axis] == 0:  # a batch of 0 works, as torch
            raise ValueError(f"{name}: expected a non-empty 3-D input (or 2-D unbatched), got "
                             f"shape {x.shape}")
        for cell in self._cells:
            cell.check_parameters(name)
        _check_observers(name, self.step_observers)
        if x.shape[-1] != self.input_size:
            raise ValueError(f"{name}: expected input width (input_size) {self.input_size}, "
                             f"got {x.shape[-1]} (input shape {x.shape})")
        unbatched = x.ndim == 2
        if unbatched:
            x = x.reshape(x.shape[0], 1, x.shape[1])
        t_axis = 1 if self.batch_first and not unbatched else 0
        batch, steps = x.shape[1 - t_axis], x.shape[t_axis]
        mask = lengths_mask(lengths, batch, steps, name)
        states = self._initial_states(hx, batch, unbatched)
        finals: list[State] = []
        for k in range(self.num_layers):
            if k and self.training and self.dropout:
                x = dropout(x, self.dropout, True, self.dropout_rng)
            with graph_scope(f"layer={k}"):
                outs = []
                for d in range(self.num_directions):
                    i = k * self.num_directions + d
                    seq, final = unroll(self._cells[i], x, states[i], reverse=bool(d),
                                        time_axis=t_axis, mask=mask,
                                        observers=self.step_observers, layer=k)
                    outs.append(stack(seq, axis=t_axis))
                    finals.append(final)
                x = outs[0] if len(outs) == 1 else cat(outs, axis=-1)
        h_n = [stack([f[j] if isinstance(f, tuple) else f for f in finals], axis=0)
               for j in range(2 if isinstance(finals[0], tuple) else 1)]
        if unbatched:
            x = x.reshape(x.shape[0], x.shape[2])
            h_n = [h.reshape(h.shape[0], h.shape[2]) for h in h_n]
        return x, (tuple(h_n) if len(h_n) == 2 else h_n[0])

    def extra_repr(self) -> str:
        extra = [f"num_layers={self.num_layers}"] if self.num_layers != 1 else []
        extra += ["bias=False"] if not self.bias else []
        extra += ["batch_first=True"] if self.batch_first else []
        extra += [f"dropout={self.dropout}"] if self.dropout else []
        extra += ["bidirectional=True"] if self.bidirectional else []
        return ", ".join([f"{self.input_size}, {self.hidden_size}"] + extra)


class RNN(RNNBase):
    """Elman RNN stack as torch.nn.RNN: forward(x, hx=None, lengths=None) -> (output, h_n).

    Shape: x (T, B, input_size) ((B, T, ...) if batch_first), hx (L*D, B, H);
    output (T, B, D*H), h_n (L*D, B, H), with D = 2 if bidirectional else 1.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, *,
                 rng: np.random.Generator | None = None):
        if not isinstance(nonlinearity, str) or nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__(lambda i: RNNCell(i, hidden_size, bias, nonlinearity, rng=rng),
                         input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, rng=rng)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """LSTM stack as torch.nn.LSTM: forward(x, hx=None, lengths=None) -> (output, (h_n, c_n)).

    Shape: x (T, B, input_size) ((B, T, ...) if batch_first), hx a tuple (h_0, c_0), each
    (L*D, B, H); output (T, B, D*H), h_n and c_n (L*D, B, H).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, *, rng: np.random.Generator | None = None):
        super().__init__(lambda i: LSTMCell(i, hidden_size, bias, rng=rng),
                         input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, rng=rng)


class GRU(RNNBase):
    """GRU stack as torch.nn.GRU: forward(x, hx=None, lengths=None) -> (output, h_n).

    Shape: x (T, B, input_size) ((B, T, ...) if batch_first), hx (L*D, B, H);
    output (T, B, D*H), h_n (L*D, B, H).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, *, rng: np.random.Generator | None = None):
        super().__init__(lambda i: GRUCell(i, hidden_size, bias, rng=rng),
                         input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, rng=rng)
