"""Small helpers shared by test modules (the hypothesis strategies are in strategies.py)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

import tinygrad_rnn as tg

T = TypeVar("T")

# one failing entry of a GradcheckError (gradcheck_module, gradgradcheck and their module
# forms): "name (shape) worst at (idx): analytic a vs numeric n (abs err e, rel err r)rest"
# groups: 1 name, 2 shape, 3 index, 4 analytic, 5 numeric, 6 abs err, 7 the rest (steps)
FAILURE_LINE = re.compile(r"(\S+) \(([\d, ]+)\) worst at \(([\d, ]*)\): analytic (\S+) vs "
                          r"numeric (\S+) \(abs err (\S+), rel err \S+\)(.*)")


def built_in_float64(make: Callable[[], T]) -> T:
    """`make()` with float64 as the default dtype (a module built in float64 for gradchecks and
    torch parity), the previous default restored afterwards."""
    previous = tg.get_default_dtype()
    tg.set_default_dtype(np.float64)
    try:
        return make()
    finally:
        tg.set_default_dtype(previous)


# ---- tracing (issue 16): what a recorded step (jit.py) would see of a composite ------------

class _Recorder:
    """tensor._TRACE while trace_calls runs: names where every array a primitive reads comes
    from (an argument, an earlier call's output, a parameter, or a constant with its values)."""

    def __init__(self, args: tuple) -> None:
        self.keep: list = []  # every array seen stays alive, so no id is reused meanwhile
        self.source: dict[int, tuple] = {}
        self.objects: dict[int, tuple] = {}
        self.leaves: dict[int, Any] = {}
        self.calls: list[tuple] = []
        self.ops: list = []
        for k, a in enumerate(args):
            self._bind(a, ("arg", k))

    def _bind(self, a: Any, src: tuple) -> None:
        """Argument `a` (or a part of it) named `src`; a tuple's or list's parts (a
        PackedSequence's fields, an (h, c) state) as (*src, i)."""
        arr = a._data if isinstance(a, tg.Tensor) else a
        if isinstance(arr, np.ndarray):
            self._name(arr, src)
        elif isinstance(a, (tuple, list)):
            for i, part in enumerate(a):
                self._bind(part, (*src, i))
        else:  # a generator, a flag: bound by identity, as jit binds arguments
            self.objects[id(a)] = src
            self.keep.append(a)

    def _name(self, arr: np.ndarray, src: tuple) -> None:
        self.keep.append(arr)
        self.source[id(arr)] = src

    def array(self, arr: np.ndarray) -> tuple:
        src = self.source.get(id(arr))
        if src is None:  # nothing a trace can bind: a constant, frozen with its values
            src = ("const", arr.dtype.str, arr.shape, arr.tobytes())
            self.keep.append(arr)
        return src

    def tensor(self, t: Any) -> tuple:
        if id(t._data) not in self.source and t.requires_grad and t._op is None:
            self.leaves[len(self.leaves)] = t  # a parameter: jit reads its current array
            self._name(t._data, ("leaf", len(self.leaves) - 1))
        return self.array(t._data)

    def value(self, v: Any) -> Any:
        if isinstance(v, np.ndarray):
            return self.array(v)
        if isinstance(v, (tuple, list)):
            return type(v)(self.value(x) for x in v)
        if isinstance(v, (np.random.Generator, np.random.RandomState)):
            return self.objects.get(id(v), ("object", type(v).__name__))
        if isinstance(v, np.dtype) or (isinstance(v, type) and issubclass(v, np.generic)):
            return ("dtype", np.dtype(v).str)
        return v

    def __getattr__(self, name: str) -> Any:
        """The hook's other events (module, host, backward, unreplayable): not traced here."""
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None

    def record(self, op: Any, inputs: Any, kwargs: dict, out: Any) -> None:
        j = len(self.calls)
        srcs = [self.tensor(t) for t in inputs]
        kw = {k: self.value(v) for k, v in sorted(kwargs.items())}
        self.calls.append((type(op).name, srcs, kw))
        self.ops.append((type(op), dict(kwargs)))
        if isinstance(out, list):
            for i, piece in enumerate(out):
                self._name(piece._data, ("out", j, i))
        else:
            self._name(out._data, ("out", j))


class Trace:
    """The primitive calls of one run: `calls` (name, input sources, kwargs with arrays named
    by source), comparable between runs; `result` what fn returned; `ops` for replay()."""

    def __init__(self, recorder: _Recorder, result: Any) -> None:
        self.calls, self.ops, self.result = recorder.calls, recorder.ops, result
        self.leaves = recorder.leaves
        self.result_source = (recorder.array(result._data) if isinstance(result, tg.Tensor)
                              else None)

    def uses(self, k: int) -> bool:
        """Whether argument k's array (or object) reaches a primitive."""
        return f"('arg', {k})" in repr(self.calls)

    def replay(self, *args: Any) -> np.ndarray:
        """Run the recorded primitives' forwards alone on new arguments (as jit.py replays a
        step: no composite code runs) and return the array fn's result would hold."""
        values: dict[tuple, Any] = {}

        def get(src: Any) -> Any:
            if isinstance(src, tuple) and src and src[0] == "arg":
                a = args[src[1]]
                for i in src[2:]:  # a part of a tuple argument
                    a = a[i]
                return a._data if isinstance(a, tg.Tensor) else a
            if isinstance(src, tuple) and src and src[0] == "const":
                return np.frombuffer(src[3], np.dtype(src[1])).reshape(src[2]).copy()
            if isinstance(src, tuple) and src and src[0] == "leaf":
                return self.leaves[src[1]]._data
            if isinstance(src, tuple) and src and src[0] == "out":
                return values[src]
            if isinstance(src, tuple) and src and src[0] == "dtype":
                return np.dtype(src[1])
            if isinstance(src, tuple):
                return tuple(get(x) for x in src)
            if isinstance(src, list):
                return [get(x) for x in src]
            return src

        for j, ((name, srcs, kw), (cls, raw)) in enumerate(zip(self.calls, self.ops)):
            op = cls()
            op.needs = (False,) * len(srcs)
            kwargs = {k: (raw[k] if isinstance(raw[k], (np.random.Generator,
                                                         np.random.RandomState))
                          and kw[k] == ("object", type(raw[k]).__name__) else get(kw[k]))
                      for k in kw}
            out = op.forward(*[get(s) for s in srcs], **kwargs)
            if isinstance(out, list):
                for i, piece in enumerate(out):
                    values[("out", j, i)] = piece
            else:
                values[("out", j)] = out
        return get(self.result_source)


def trace_calls(fn: Callable[..., Any], *args: Any) -> Trace:
    """Run fn(*args) eagerly while recording every primitive call (tensor._TRACE), the hook
    jit.py records a step with; returns the Trace. Arguments are ndarrays, Tensors (their
    arrays) or other objects (generators), each bound by identity."""
    from tinygrad_rnn import tensor
    recorder = _Recorder(args)
    tensor._TRACE = recorder
    try:
        result = fn(*args)
    finally:
        tensor._TRACE = None
    return Trace(recorder, result)


def assert_same_trace(fn: Callable[..., Any], first: tuple, second: tuple
                      ) -> tuple[Trace, Trace]:
    """Trace fn on two argument tuples (different values, same shapes and dtypes) and assert
    the two recordings are the same calls with the same constants: nothing value-dependent
    froze. Returns both traces (replay the first on the second's arguments to compare)."""
    a, b = trace_calls(fn, *first), trace_calls(fn, *second)
    assert len(a.calls) == len(b.calls), (len(a.calls), len(b.calls))
    for j, (x, y) in enumerate(zip(a.calls, b.calls)):
        assert x == y, f"call {j} differs:\n{x}\n{y}"
    assert a.result_source == b.result_source
    return a, b
