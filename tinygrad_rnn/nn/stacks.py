"""torch's multi-layer RNN / LSTM / GRU stacks: parameters with torch's names, hx and h_n in
torch's layout, dropout between layers; each layer and direction is one unroll of a cell."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_rnn import ops
from tinygrad_rnn.nn.cells import Cell, GRUCell, LSTMCell, RNNCell, State, check_proj_size
from tinygrad_rnn.nn.module import Module
from tinygrad_rnn.nn.unroll import StepObserver, _check_observers, step_mask, unroll
from tinygrad_rnn.nn.utils.rnn import PackedSequence, pack_like, unpack_input
from tinygrad_rnn.tensor import Tensor, apply, cat, graph_scope, stack
from tinygrad_rnn.validate import check_bool, check_real, check_rng, check_size, float_input


class StackShapeError(ValueError, RuntimeError):
    """An input or hx of the wrong shape for RNN/LSTM/GRU: a ValueError, as every shape error
    here, and the RuntimeError torch raises, so either `except` catches it."""


class StackArgumentError(TypeError, ValueError):
    """A constructor argument of the wrong type where torch raises a ValueError (dropout='0.1',
    dropout=True): a TypeError, as this project's rule, and torch's ValueError."""


def _torch_size(who: str, name: str, value: Any) -> int:
    """An int >= 1, with torch's words appended (input_size, hidden_size, num_layers)."""
    try:
        return check_size(who, name, value, 1)
    except TypeError as err:
        raise TypeError(f"{err} ({name} should be of type int, got: {type(value).__name__})"
                        ) from None
    except ValueError as err:
        raise ValueError(f"{err} ({name} must be greater than zero)") from None


def _torch_bool(who: str, name: str, value: Any) -> bool:
    """A bool, with torch's words appended (bias, batch_first, bidirectional)."""
    try:
        return check_bool(who, name, value)
    except TypeError as err:
        raise TypeError(f"{err} ({name} should be of type bool, got: {type(value).__name__})"
                        ) from None


def _torch_dropout(who: str, value: Any) -> float:
    """A probability in [0, 1]; torch calls every bad value a ValueError, so a wrong type is
    both a TypeError and a ValueError here."""
    words = "dropout should be a number in range [0, 1] representing the probability of an " \
            "element being zeroed"
    try:
        return check_real(who, "dropout", value, 0.0, 1.0)
    except TypeError as err:
        raise StackArgumentError(f"{err} ({words})") from None
    except ValueError as err:
        raise ValueError(f"{err} ({words})") from None


class RNNBase(Module):
    """Torch-style multi-layer stack of one cell type; parameters carry torch's names.

    Each layer k and direction registers weight_ih_l{k}[_reverse], weight_hh_l{k}[_reverse],
    bias_ih_l{k}[_reverse], bias_hh_l{k}[_reverse] in torch's state_dict order, so a torch
    state_dict converted to numpy loads as is. Dropout between layers (training mode only)
    draws its masks from `self.dropout_rng`: the `rng` given at construction, else None (numpy's
    global RNG, so `np.random.seed` reproduces the masks, as it does the init).
    LSTM's `proj_size` adds weight_hr_l{k}[_reverse] after the biases, as torch. The keyword
    `recurrent_dropout` (not in torch) gives every cell Keras' variational recurrent mask.
    """

    _slots: dict[str, tuple[Cell, str]]  # set in __init__, past Module.__setattr__

    def __init__(self, make_cell: Callable[[int], Cell], input_size: int, hidden_size: int,
                 num_layers: int = 1, bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, *,
                 rng: np.random.Generator | None = None, proj_size: int = 0,
                 recurrent_dropout: float = 0.0):
        super().__init__()
        object.__setattr__(self, "_slots", {})  # parameter name -> (cell, its name there)
        name = type(self).__name__
        # torch's stacks (unlike its cells) refuse sizes of 0; torch's words are appended
        bias, batch_first, bidirectional = (_torch_bool(name, k, v) for k, v in (
            ("bias", bias), ("batch_first", batch_first), ("bidirectional", bidirectional)))
        input_size = _torch_size(name, "input_size", input_size)
        hidden_size = _torch_size(name, "hidden_size", hidden_size)
        num_layers = _torch_size(name, "num_layers", num_layers)
        proj_size = check_proj_size(name, proj_size, hidden_size)
        dropout = _torch_dropout(name, dropout)
        recurrent_dropout = check_real(name, "recurrent_dropout", recurrent_dropout, 0.0, 1.0,
                                       high_open=True)
        check_rng(name, rng)
        if dropout and num_layers == 1:
            warnings.warn(f"{name}: dropout={dropout} acts between layers, so it has no effect "
                          f"with num_layers=1", UserWarning, stacklevel=3)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout = bias, batch_first, dropout
        self.proj_size, self.recurrent_dropout = proj_size, recurrent_dropout
        self.bidirectional, self.num_directions = bidirectional, 2 if bidirectional else 1
        self.step_observers: list[StepObserver] = []
        self.dropout_rng = rng
        cells = []
        for k in range(num_layers):
            for d in range(self.num_directions):
                cell = make_cell(input_size if k == 0 else
                                 (proj_size or hidden_size) * self.num_directions)
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

    @property
    def all_weights(self) -> list[list[Tensor]]:
        """torch's all_weights: per layer and direction (l0, l0_reverse, l1, ...) its
        parameters in state_dict order (weight_ih, weight_hh, bias_ih, bias_hh, weight_hr)."""
        per_cell: list[list[Tensor]] = [[] for _ in self._cells]
        for key in self._slots:
            cell = self._slots[key][0]
            per_cell[self._cells.index(cell)].append(getattr(self, key))
        return per_cell

    def flatten_parameters(self) -> None:
        """Nothing to do (torch packs weights for cuDNN here); kept so torch code runs."""

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
        widths = ((self.proj_size, "proj_size"), (self.hidden_size, "hidden_size")) if (
            self.proj_size) else ((self.hidden_size, "hidden_size"),) * 2
        parts = [float_input(name, f"hx {label}", p) for p, label in zip(parts, labels)]
        for i, (p, label, (width, what)) in enumerate(zip(parts, labels, widths)):
            expected = (len(self._cells),) + ((batch,) if not unbatched else ()) + (width,)
            if p.shape != expected:
                dims = "num_layers * num_directions, " + ("" if unbatched else "batch, ")
                raise StackShapeError(f"{name}: expected hx of shape {expected} ({dims}{what}) "
                                      f"for {label}, got {p.shape} "
                                      f"({_torch_hx_words(lstm, unbatched, i, expected, p)})")
        if unbatched:
            parts = [p.reshape(p.shape[0], 1, p.shape[1]) for p in parts]
        return [tuple(p[i] for p in parts) if lstm else parts[0][i]
                for i in range(len(self._cells))]

    def reset_states(self) -> None:
        """Keras' name, for a model that mixes styles: a stack keeps no state between calls,
        so this only reaches cells that keep one (none of the built-in ones do)."""
        for cell in self._cells:
            getattr(cell, "reset_states", lambda: None)()

    def forward(self, x: Any, hx: Any = None, lengths: Any = None,
                mask: Any = None) -> tuple[Tensor | PackedSequence, Any]:
        """Shape: x (T, B, I) ((B, T, I) if batch_first; (T, I) unbatched) or a
        PackedSequence, hx (L*D, B, H) or (h_0, c_0) for LSTM -> output (T, B, D*H) (a
        PackedSequence for one), h_n (L*D, B, H) (or (h_n, c_n)) in the caller's batch order.
        With proj_size P, h_0, h_n (L*D, B, P) and output (T, B, D*P); c_0 and c_n keep H.
        `lengths` (B,) or `mask` (B, T) bool (batch first in both layouts): as Recurrent's."""
        name = type(self).__name__
        packed = x if isinstance(x, PackedSequence) else None
        packed_mask = None
        if packed is not None:  # padded, run with its lengths, packed again: one code path
            if lengths is not None or mask is not None:
                raise ValueError(f"{name}: a PackedSequence carries its own lengths; pass no "
                                 f"lengths or mask with it")
            _check_packed_data(name, packed, self.input_size)
            x, packed_mask = unpack_input(packed, self.batch_first)
        x = float_input(name, "input", x)
        time_axis = 1 if self.batch_first and x.ndim == 3 else 0
        if x.ndim not in (2, 3) or x.shape[time_axis] == 0:  # a batch of 0 works, as torch
            words = (f"Expected input to be 2D or 3D, got {x.ndim}D instead" if x.ndim not in
                     (2, 3) else "Expected sequence length to be larger than 0 in RNN")
            raise StackShapeError(f"{name}: expected a non-empty 3-D input (or 2-D unbatched), "
                                  f"got shape {x.shape} ({words})")
        for cell in self._cells:
            cell.check_parameters(name)
            # the cells are not sub-modules, so train()/eval() do not reach them
            object.__setattr__(cell, "training", self.training)
        _check_observers(name, self.step_observers)
        if x.shape[-1] != self.input_size:
            raise StackShapeError(f"{name}: expected input width (input_size) "
                                  f"{self.input_size}, got {x.shape[-1]} (input shape {x.shape}; "
                                  f"input.size(-1) must be equal to input_size. Expected "
                                  f"{self.input_size}, got {x.shape[-1]})")
        unbatched = x.ndim == 2
        if unbatched:
            x = x.reshape(x.shape[0], 1, x.shape[1])
        t_axis = 1 if self.batch_first and not unbatched else 0
        batch, steps = x.shape[1 - t_axis], x.shape[t_axis]
        mask = packed_mask if packed is not None else step_mask(name, batch, steps, lengths,
                                                                 mask, unbatched)
        states = self._initial_states(hx, batch, unbatched)
        finals: list[State] = []
        for k in range(self.num_layers):
            if k and self.training and self.dropout:
                x = _dropout(x, self.dropout, self.dropout_rng)
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
        if packed is not None:
            x = pack_like(x, packed, self.batch_first)
        return x, (tuple(h_n) if len(h_n) == 2 else h_n[0])

    def extra_repr(self) -> str:
        extra = [f"proj_size={self.proj_size}"] if self.proj_size else []
        extra += [f"num_layers={self.num_layers}"] if self.num_layers != 1 else []
        extra += ["bias=False"] if not self.bias else []
        extra += ["batch_first=True"] if self.batch_first else []
        extra += [f"dropout={self.dropout}"] if self.dropout else []
        extra += ["bidirectional=True"] if self.bidirectional else []
        extra += [f"recurrent_dropout={self.recurrent_dropout}"] if self.recurrent_dropout else []
        return ", ".join([f"{self.input_size}, {self.hidden_size}"] + extra)


def _dropout(x: Tensor, p: float, rng: Any) -> Tensor:
    """Inverted dropout between layers, as functional.dropout (the same draws from `rng`, None:
    numpy's global RNG), its mask drawn by the dropout_mask primitive so that a replayed step
    (jit.py) draws afresh. p in (0, 1]; p=1 zeroes x without drawing."""
    if p == 1.0:
        return x * np.zeros(x.shape, x.dtype)
    return x * apply(ops.DropoutMask, shape=x.shape, p=p, dtype=x.dtype, rng=rng)


def _torch_hx_words(lstm: bool, unbatched: bool, i: int, expected: tuple[int, ...],
                    got: Tensor) -> str:
    """torch's RuntimeError text for a part of hx of the wrong shape."""
    if got.ndim != len(expected):
        layout = "unbatched 2-D" if unbatched else "batched 3-D"
        what = "hx and cx" if lstm else "hx"
        return (f"For {layout} input, {what} should also be {len(expected)}-D but got "
                f"{got.ndim}-D tensor")
    return f"Expected hidden{f'[{i}]' if lstm else ''} size {expected}, got {list(got.shape)}"


def _check_packed_data(who: str, packed: PackedSequence, input_size: int) -> None:
    """A PackedSequence given to a stack must hold (N, input_size) rows."""
    data = packed.data
    if data.ndim != 2 or data.shape[1] != input_size:
        words = (f"input must have 2 dimensions, got {data.ndim}" if data.ndim != 2 else
                 f"input.size(-1) must be equal to input_size. Expected {input_size}, got "
                 f"{data.shape[1]}")
        raise StackShapeError(f"{who}: a PackedSequence input needs data of shape (N, "
                              f"input_size={input_size}), got {data.shape} ({words})")


class RNN(RNNBase):
    """Elman RNN stack as torch.nn.RNN: forward(x, hx=None, lengths=None) -> (output, h_n).

    Shape: x (T, B, input_size) ((B, T, ...) if batch_first), hx (L*D, B, H);
    output (T, B, D*H), h_n (L*D, B, H), with D = 2 if bidirectional else 1.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, *,
                 rng: np.random.Generator | None = None, recurrent_dropout: float = 0.0,
                 proj_size: int | None = None):
        _no_projection("RNN", proj_size)
        if not isinstance(nonlinearity, str) or nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r} "
                             f"(Unknown nonlinearity {nonlinearity!r}. Select from 'tanh' or "
                             f"'relu'.)")
        super().__init__(lambda i: RNNCell(i, hidden_size, bias, nonlinearity, rng=rng,
                                           recurrent_dropout=recurrent_dropout),
                         input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, rng=rng, recurrent_dropout=recurrent_dropout)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """LSTM stack as torch.nn.LSTM: forward(x, hx=None, lengths=None) -> (output, (h_n, c_n)).

    Shape: x (T, B, input_size) ((B, T, ...) if batch_first), hx a tuple (h_0, c_0), each
    (L*D, B, H); output (T, B, D*H), h_n and c_n (L*D, B, H). With proj_size P > 0 (torch's
    projection, weight_hr_l{k} (P, H)), h_0, h_n (L*D, B, P) and output (T, B, D*P).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, *,
                 rng: np.random.Generator | None = None, recurrent_dropout: float = 0.0):
        super().__init__(lambda i: LSTMCell(i, hidden_size, bias, proj_size=proj_size, rng=rng,
                                            recurrent_dropout=recurrent_dropout),
                         input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, rng=rng, proj_size=proj_size,
                         recurrent_dropout=recurrent_dropout)


class GRU(RNNBase):
    """GRU stack as torch.nn.GRU: forward(x, hx=None, lengths=None) -> (output, h_n).

    Shape: x (T, B, input_size) ((B, T, ...) if batch_first), hx (L*D, B, H);
    output (T, B, D*H), h_n (L*D, B, H).
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, *, rng: np.random.Generator | None = None,
                 recurrent_dropout: float = 0.0, proj_size: int | None = None):
        _no_projection("GRU", proj_size)
        super().__init__(lambda i: GRUCell(i, hidden_size, bias, rng=rng,
                                           recurrent_dropout=recurrent_dropout),
                         input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, rng=rng, recurrent_dropout=recurrent_dropout)


def _no_projection(name: str, proj_size: Any) -> None:
    """torch refuses the proj_size keyword outside LSTM, even 0: so do we, with its words."""
    if proj_size is not None:
        raise ValueError(f"{name}: proj_size argument is only supported for LSTM, not RNN or "
                         f"GRU (got proj_size={proj_size!r})")
