"""Module and Parameter: registration by attribute assignment, state dicts, modes, summary."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

import numpy as np

from tinygrad_rnn import tensor as _tensor
from tinygrad_rnn.tensor import Tensor
from tinygrad_rnn.validate import check_bool


class Parameter(Tensor):
    """A Tensor that a Module registers when assigned as an attribute; requires grad by default.

    Set `requires_grad=False` to freeze it (the optimizer and gradcheck_module skip it). As in
    torch, only a frozen Parameter may hold integers or booleans (say a pretrained integer
    table); a trainable one needs a floating dtype.
    """

    __slots__ = ()

    def __init__(self, data: Any, requires_grad: bool = True, dtype: Any = None):
        try:
            super().__init__(data, requires_grad=False, dtype=dtype)
        except (TypeError, ValueError) as err:  # the Tensor rules, named for the Parameter
            raise type(err)(str(err).replace("Tensor:", "Parameter:", 1)) from None
        dt = self._data.dtype
        if requires_grad and dt.kind != "f":
            raise TypeError(f"Parameter: requires_grad needs a floating dtype, got {dt} (pass "
                            f"requires_grad=False to hold integers)")
        self.requires_grad = bool(requires_grad)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class StateDictError(RuntimeError, ValueError):
    """load_state_dict found missing or unexpected keys or wrong shapes (all listed)."""


class LoadResult(NamedTuple):
    missing_keys: list[str]
    unexpected_keys: list[str]


def _to_array(value: Any) -> np.ndarray | str:
    """The value as a real numeric array, or a string saying why it is not one."""
    if hasattr(value, "detach") and hasattr(value, "numpy"):  # a torch tensor
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value._data if isinstance(value, Tensor) else value)
    except (TypeError, ValueError):  # ragged nesting, or something numpy cannot read
        return f"expected an array, got {type(value).__name__} that numpy cannot read"
    if arr.dtype.kind not in "biuf":
        return f"expected a real numeric array, got dtype {arr.dtype}"
    return arr


def _kind_error(who: str, kind: str, name: str, value: Any) -> TypeError:
    return TypeError(f"{who}: cannot assign {type(value).__name__} to {kind} '{name}' "
                     f"({'a Parameter' if kind == 'parameter' else 'a Module'} or None "
                     f"expected)")


class Module:
    """Base class: assign Parameters and sub-modules as attributes, define `forward`."""

    _parameters: dict[str, Parameter | None]  # set in __init__, past __setattr__
    _modules: dict[str, Module | None]
    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"{type(self).__name__}: call super().__init__() before "
                                 f"assigning attributes")
        params, modules, who = self._parameters, self._modules, type(self).__name__
        # torch's rules: over a registered Parameter only a Parameter (which replaces it, in
        # place in the order) or None (an empty slot, as `bias=False`) may be assigned;
        # anything else would silently unregister it. Sub-modules likewise.
        if isinstance(value, Parameter):
            modules.pop(name, None)
            params[name] = value
        elif name in params:
            if value is not None:
                raise _kind_error(who, "parameter", name, value)
            params[name] = None
        elif isinstance(value, Module):
            modules[name] = value
        elif name in modules:
            if value is not None:
                raise _kind_error(who, "sub-module", name, value)
            modules[name] = None
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not define forward")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _tensor._TRACE is not None:  # jit.py is recording: keys on training flags
            _tensor._TRACE.module(self)
        return self.forward(*args, **kwargs)

    # ---- traversal --------------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """(dotted name, module) pairs, this module first (name "")."""
        stack = [(prefix, self)]
        while stack:
            name, mod = stack.pop()
            yield name, mod
            children = [(f"{name}.{k}" if name else k, m) for k, m in mod._modules.items()
                        if m is not None]
            stack.extend(reversed(children))

    def children(self) -> Iterator[Module]:
        return (m for m in self._modules.values() if m is not None)

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        """(dotted name, Parameter) pairs in registration order, each Parameter once."""
        seen: set[int] = set()
        for prefix, mod in self.named_modules():
            for k, p in mod._parameters.items():
                if p is not None and id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{prefix}.{k}" if prefix else k), p

    def parameters(self) -> Iterator[Parameter]:
        return (p for _, p in self.named_parameters())

    # ---- state ------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, np.ndarray]:
        """Parameter name -> a copy of its array."""
        return {name: p._data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> LoadResult:
        """Copy arrays into the parameters, cast to each parameter's dtype.

        Missing and unexpected keys (when strict), shape mismatches and values that are not
        real numeric arrays are reported together in one StateDictError (a RuntimeError, as
        torch's, and a ValueError), and a failed load changes nothing.
        """
        who = f"load_state_dict into {type(self).__name__}"
        if not isinstance(state, Mapping):
            raise TypeError(f"{who}: state_dict must be a mapping of names to arrays, got "
                            f"{type(state).__name__}")
        strict = check_bool(who, "strict", strict)
        params = dict(self.named_parameters())
        missing = [k for k in params if k not in state]
        unexpected = [k for k in state if k not in params]
        problems, new = [], {}
        for name, p in params.items():
            if name in state:
                arr = _to_array(state[name])
                if isinstance(arr, str):
                    problems.append(f"{name}: {arr}")
                elif arr.shape != p.shape:
                    problems.append(f"{name}: shape {arr.shape} in the state dict, {p.shape} "
                                    f"in the module")
                else:
                    new[name] = arr.astype(p.dtype, copy=True)
        if strict:
            problems += [f"missing key {k}" for k in missing]
            problems += [f"unexpected key {k}" for k in unexpected]
        if problems:
            raise StateDictError(f"{who}: " + "; ".join(problems))
        for name, arr in new.items():
            params[name]._assign(arr)  # a copy made above: nobody else holds it
        return LoadResult(missing, unexpected)

    # ---- modes and housekeeping -------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        """Training mode (dropout on) for this module and every sub-module; returns self."""
        if not isinstance(mode, (bool, np.bool_)):  # torch raises ValueError here, also for 0/1
            raise ValueError(  # noqa: TRY004 (torch's type, which its users catch)
                f"train: mode must be a bool, got {type(mode).__name__} {mode!r}")
        for _, mod in self.named_modules():
            object.__setattr__(mod, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    def zero_grad(self) -> None:
        if _tensor._TRACE is not None:  # inside a recorded step: each replay does it again
            _tensor._TRACE.host(self.zero_grad)
        for p in self.parameters():
            p.grad = None

    def to(self, dtype: Any) -> Module:
        """Cast every floating parameter (and its grad) to a float dtype, in place; returns self.

        As torch, integer and boolean parameters (frozen tables) keep their dtype.
        """
        try:
            dt = np.dtype(dtype) if dtype is not None else None  # np.dtype(None) is float64
        except TypeError:
            dt = None
        if dt is None:
            raise TypeError(f"to: dtype must be a numpy float dtype or its name, got "
                            f"{type(dtype).__name__} {dtype!r}")
        if dt.kind != "f":
            raise TypeError(f"to: expected a floating dtype, got {dt}")
        for p in self.parameters():
            if p.dtype.kind == "f":
                if p.dtype != dt:
                    p._assign(p._data.astype(dt))
                p.grad = None if p.grad is None else p.grad.astype(dt, copy=False)
        return self

    def summary(self, print_fn: Callable[[str], Any] | None = print) -> str:
        """A Keras-like table: each module, its type and own parameter count, then totals.

        Counts follow torch layouts, so a recurrent cell has two bias vectors (Keras has one).
        Returns the table and prints it with `print_fn` (None: do not print).
        """
        if print_fn is not None and not callable(print_fn):
            raise TypeError(f"summary: print_fn must be a callable or None, got "
                            f"{type(print_fn).__name__}")
        rows = [(name or "(root)", type(mod).__name__,
                 sum(p.size for p in mod._parameters.values() if p is not None))
                for name, mod in self.named_modules()]
        params = list(self.parameters())
        trainable = sum(p.size for p in params if p.requires_grad)
        frozen = sum(p.size for p in params if not p.requires_grad)
        w1 = max(len("Module"), *(len(r[0]) for r in rows))
        w2 = max(len("Type"), *(len(r[1]) for r in rows))
        line = "-" * (w1 + w2 + 16)
        out = [f"{'Module':<{w1}}  {'Type':<{w2}}  {'Params':>10}", line]
        out += [f"{n:<{w1}}  {t:<{w2}}  {c:>10,}" for n, t, c in rows]
        out += [line, f"Total params: {trainable + frozen:,}",
                f"Trainable params: {trainable:,}", f"Frozen params: {frozen:,}"]
        text = "\n".join(out)
        if print_fn is not None:
            print_fn(text)
        return text

    def __repr__(self) -> str:
        inner = [f"  ({k}): " + repr(m).replace("\n", "\n  ") for k, m in self._modules.items()]
        extra = self.extra_repr()
        if not inner:
            return f"{type(self).__name__}({extra})"
        return f"{type(self).__name__}(" + (extra + "\n" if extra else "\n") + "\n".join(
            inner) + "\n)"

    def extra_repr(self) -> str:
        return ""
