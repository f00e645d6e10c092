"""jit(fn): record a training step once, replay it on new arrays without the Python graph.

The first call with given argument shapes and dtypes (and grad mode, default dtype, the
called modules' settings and the parameters' flags: docs/replay.md lists the key) runs fn
eagerly while a Recorder (recording.py) notes every primitive call, backward, zero_grad and
gradient clipping; later calls with the same key replay that recording on the new arrays and
the current parameter values, through one generated Python function (replay_codegen.py). What a recording cannot reproduce (retain_grad, step
observers, a stateful layer, create_graph and autograd.grad, checkpoint, an in-place write or
an optimizer step inside fn) makes that key run eagerly, with a warning naming why. A Python
branch on a tensor's value is the caller's contract, as torch.jit.trace's; `check=True` runs
every replay beside an eager step and raises at the first op that differs.
"""

from __future__ import annotations

import ctypes
import functools
import os
import warnings
from typing import Any

import numpy as np

from tinygrad_rnn import tensor as _tensor
from tinygrad_rnn.nn.utils.packed_sequence import PackedSequence
from tinygrad_rnn.recording import (
    Recorder,
    Recording,
    Unreplayable,
    build_returns,
    settings_of,
)
from tinygrad_rnn.settings import get_default_dtype, is_grad_enabled

__all__ = ["ReplayFallbackWarning", "ReplayMismatchError", "jit"]

MAX_RECORDINGS = 8  # per function, as torch.compile's recompile limit: then eager, warned


class ReplayFallbackWarning(UserWarning):
    """A jitted call ran eagerly: what fn did cannot be replayed (the message says what)."""


class ReplayMismatchError(RuntimeError):
    """check=True: a replay differed from the eager step (the message names the first op)."""


def jit(fn: Any, check: bool = False) -> Jitted:
    """fn, recorded on its first call per argument shapes and replayed after (see the module).

    Args:
        fn: a step: forward, `backward()`, returning Tensors (say the loss); the optimizer's
            `step()` stays outside. Arguments: Tensors, arrays, (nested) tuples, lists and
            dicts of them, and Python values (part of the key, by value).
        check: replay each call beside an eager step and raise ReplayMismatchError at the first
            primitive whose output differs, naming it and its graph scope.
    """
    if not callable(fn):
        raise TypeError(f"jit: fn must be callable, got {type(fn).__name__}")
    if not isinstance(check, bool):
        raise TypeError(f"jit: check must be a bool, got {type(check).__name__}")
    return Jitted(fn, check)


class _Entry:
    """One recording (or the reason there is none), for one key and the module settings and
    parameter flags it was made with."""

    def __init__(self, recording: Recording | None, reason: str | None, modules: list,
                 held: list) -> None:
        self.recording, self.reason, self.modules, self.held = recording, reason, modules, held

    def matches(self) -> bool:
        """The modules' plain settings (training, rates, flags: recording.settings_of), and the
        parameters' grad flags, shapes and dtypes, are the recorded ones (model.eval(), a new
        dropout rate, a frozen layer or a .to(float64) records again)."""
        if any(settings_of(m) != seen for m, seen in self.modules):
            return False
        leaves = [] if self.recording is None else self.recording.leaf_state
        return all(t.requires_grad == flag and t._data.shape == shape and t._data.dtype == dtype
                   for t, flag, shape, dtype in leaves)


class Jitted:
    """The callable jit returns: fn's signature, a cache of recordings keyed by the arguments'
    shapes and dtypes. `recordings` counts how many were made."""

    def __init__(self, fn: Any, check: bool):
        self.fn, self.check = fn, check
        self._cache: dict[Any, list[_Entry]] = {}
        self.recordings = 0
        functools.update_wrapper(self, fn)

    def __get__(self, obj: Any, owner: Any = None) -> Any:
        """As a method (`@jit` in a class body): the instance is the first argument."""
        return self if obj is None else functools.partial(self.__call__, obj)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if _tensor._TRACE is not None:  # inside another recording: that one sees our ops
            return self.fn(*args, **kwargs)
        arrays: list[np.ndarray] = []
        tensors: list[Any] = []
        held: list[Any] = []
        sig = _flatten((args, kwargs), arrays, tensors, held)
        key = (sig, is_grad_enabled(), get_default_dtype())
        entries = self._cache.setdefault(key, [])
        entry = next((e for e in entries if e.matches()), None)
        if entry is None:
            if self.recordings >= MAX_RECORDINGS:
                _warn(f"{MAX_RECORDINGS} recordings were made already (arguments of new "
                      f"shapes, dtypes or Python values each make one); this call runs eagerly")
                return self.fn(*args, **kwargs)
            return self._record(args, kwargs, arrays, tensors, entries, held)
        reason = entry.reason or _live_reason(entry)
        if reason is not None:
            _warn(reason)
            return self.fn(*args, **kwargs)
        rec = entry.recording
        assert rec is not None  # an entry without a reason has one
        _keep_heap()
        if self.check:
            return self._checked(rec, args, kwargs, arrays, tensors)
        return build_returns(rec.returns, rec.run(arrays, tensors))

    def _record(self, args: tuple, kwargs: dict, arrays: list, tensors: list,
                entries: list[_Entry], held: list) -> Any:
        recorder = Recorder(arrays, tensors)
        _tensor._TRACE = recorder
        try:
            result = self.fn(*args, **kwargs)
        finally:
            _tensor._TRACE = None
        recording = None
        if recorder.reason is None:
            try:
                recording = recorder.finish(result)
            except Unreplayable as err:
                recorder.reason = str(err)
        self.recordings += 1
        seen = [(m, settings_of(m)) for m in recorder.rec.modules]  # as fn left them
        entries.append(_Entry(recording, recorder.reason and _fallback(recorder.reason), seen,
                              held))
        if recorder.reason is not None:
            _warn(_fallback(recorder.reason))
        return result

    def _checked(self, rec: Recording, args: tuple, kwargs: dict, arrays: list,
                 tensors: list) -> Any:
        """Replay, rewind (gradients, generators), run eagerly, compare, keep the eager run."""
        leaves = _grad_leaves(rec, tensors)
        saved_grads = [None if t.grad is None else t.grad.copy() for t in leaves]
        saved_rngs = [(g, _rng_state(g)) for g in _unique(rec.generators)]
        trace: list[Any] = []
        values = rec.run(arrays, tensors, trace)
        replayed = build_returns(rec.returns, values)
        replay_grads = [t.grad for t in leaves]
        for t, g in zip(leaves, saved_grads):
            t.grad = g
        for g, state in saved_rngs:
            _set_rng_state(g, state)
        recorder = Recorder(arrays, tensors, keep_outputs=True)
        _tensor._TRACE = recorder
        try:
            result = self.fn(*args, **kwargs)
        finally:
            _tensor._TRACE = None
        _compare_calls(rec, trace, recorder)
        _compare_values("the result", _flat_values(replayed), _flat_values(result))
        for i, (t, g) in enumerate(zip(leaves, replay_grads)):
            _compare_values(f"the gradient of leaf {i} (shape {t.shape})", [g], [t.grad])
        return result


def _flatten(obj: Any, arrays: list, tensors: list, held: list) -> Any:
    """The key of an argument structure; its arrays (Tensors' too) appended in order. An
    array passed twice (h and c from one zeros array) is keyed as the earlier one: a
    recording binds arrays by identity, so the same pattern must hold when it replays."""
    if isinstance(obj, _tensor.Tensor):
        arrays.append(obj._data)
        tensors.append(obj)
        return ("T", obj._data.shape, obj._data.dtype.str, obj.requires_grad,
                obj._op is not None, _first_use(obj._data, arrays))
    if isinstance(obj, np.ndarray):
        arrays.append(obj)
        tensors.append(None)
        return ("A", obj.shape, obj.dtype.str, _first_use(obj, arrays))
    if isinstance(obj, PackedSequence):  # its batch sizes are its structure: keyed by value
        sizes = obj.batch_sizes
        sizes = sizes._data if isinstance(sizes, _tensor.Tensor) else np.asarray(sizes)
        return ("P", tuple(sizes.tolist()),
                tuple(_flatten(x, arrays, tensors, held) for x in obj))
    if isinstance(obj, (tuple, list)):
        return (type(obj).__name__, tuple(_flatten(x, arrays, tensors, held) for x in obj))
    if isinstance(obj, dict):
        return ("dict", tuple((k, _flatten(v, arrays, tensors, held)) for k, v in obj.items()))
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes, np.generic)):
        nan = isinstance(obj, (float, np.floating)) and np.isnan(obj)  # NaN != NaN
        return ("V", type(obj).__name__, "nan" if nan else obj)
    held.append(obj)  # by identity (a module, a generator): kept alive so its id stays its own
    return ("O", id(obj))


_HEAP_KEPT: list[bool] = []  # set once per process, at its first replay


def _keep_heap() -> None:
    """Let glibc keep freed memory for the next replay instead of returning it to the system.

    A replay frees every array of a step and allocates them again at the next: with glibc's
    defaults the freed top of the heap is trimmed and large arrays are mmap'd, so each step
    pays page faults for memory it had a moment ago. Raising the trim threshold (256 MB) and
    the mmap threshold (32 MB) makes the allocator reuse those buffers: peak memory is the
    same, the process keeps it between steps. Once per process, at the first replay; not on
    other C libraries; TINYGRAD_RNN_KEEP_HEAP=0 in the environment turns it off.
    """
    if _HEAP_KEPT:
        return
    _HEAP_KEPT.append(True)
    if os.environ.get("TINYGRAD_RNN_KEEP_HEAP", "1") == "0":
        return
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # not glibc
        return
    mallopt(_M_TRIM_THRESHOLD, 256 << 20)
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h


def _first_use(arr: np.ndarray, arrays: list) -> int:
    """The index of the first argument that is `arr` itself (its own, if none before)."""
    return next(i for i, a in enumerate(arrays) if a is arr)


def _live_reason(entry: _Entry) -> str | None:
    """What was added since the recording that a replay cannot honour (step observers)."""
    for mod, _ in entry.modules:
        if getattr(mod, "step_observers", None):
            return _fallback(f"{type(mod).__name__} has step observers")
    return None


def _fallback(reason: str) -> str:
    return f"jit: this call runs eagerly, not replayed: {reason}"


def _warn(message: str) -> None:
    warnings.warn(message, ReplayFallbackWarning, stacklevel=3)


def _grad_leaves(rec: Recording, tensors: list) -> list[Any]:
    from tinygrad_rnn.recording import _Backward
    leaves: list[Any] = []
    for ev in rec.events:
        if isinstance(ev, _Backward):
            for _, target in ev.leaves:
                t = tensors[target] if type(target) is int else target
                if all(t is not u for u in leaves):
                    leaves.append(t)
    return leaves


def _unique(items: list) -> list:
    out: list = []
    for x in items:
        if all(x is not y for y in out):
            out.append(x)
    return out


def _rng_state(g: Any) -> Any:
    if g is None:
        return np.random.get_state()
    if isinstance(g, np.random.Generator):
        return g.bit_generator.state
    return g.get_state()


def _set_rng_state(g: Any, state: Any) -> None:
    if g is None:
        np.random.set_state(state)
    elif isinstance(g, np.random.Generator):
        g.bit_generator.state = state
    else:
        g.set_state(state)


def _compare_calls(rec: Recording, trace: list, recorder: Recorder) -> None:
    """Raise at the first call whose op or output differs between replay and eager."""
    eager = recorder.rec.calls
    outputs = recorder.outputs or []
    for i, call in enumerate(rec.calls):
        where = f"call {i}, op '{call.name}' (scope {'/'.join(call.scope) or 'top'})"
        if i >= len(eager) or eager[i].name != call.name:
            got = "no more ops" if i >= len(eager) else f"op '{eager[i].name}'"
            raise ReplayMismatchError(
                f"jit(check=True): the eager step ran {got} where the recording has {where}: "
                f"a Python branch on a tensor's value (or on anything but shapes) is not seen by "
                f"the recording")
        replayed = trace[i] if type(trace[i]) is list else [trace[i]]
        if not _all_close(replayed, outputs[i] if type(outputs[i]) is list else [outputs[i]]):
            raise ReplayMismatchError(
                f"jit(check=True): the replay differs from the eager step at {where}: its "
                f"inputs or arguments came from something the recording does not see (a "
                f"numpy computation on a value, a Python branch, a random draw outside "
                f"dropout_mask)")
    if len(eager) > len(rec.calls):
        extra = eager[len(rec.calls)]
        raise ReplayMismatchError(
            f"jit(check=True): the eager step ran more ops than the recording, from op "
            f"'{extra.name}' (scope {'/'.join(extra.scope) or 'top'}): a Python branch on a "
            f"value is not seen by the recording")


def _compare_values(what: str, replayed: list, eager: list) -> None:
    if len(replayed) != len(eager) or not _all_close(replayed, eager):
        raise ReplayMismatchError(f"jit(check=True): {what} differs between the replay and the "
                                  f"eager step")


def _all_close(a: list, b: list) -> bool:
    for x, y in zip(a, b):
        if x is None or y is None:
            if x is not y:
                return False
            continue
        x, y = np.asarray(x), np.asarray(y)
        if x.shape != y.shape or x.dtype != y.dtype:
            return False
        if x.dtype.kind == "f":
            scale = float(np.max(np.abs(y), initial=0.0, where=np.isfinite(y)))
            if not np.allclose(x, y, rtol=1e-6, atol=1e-6 * max(scale, 1e-30),
                               equal_nan=True):
                return False
        elif not np.array_equal(x, y):
            return False
    return len(a) == len(b)


def _flat_values(result: Any) -> list:
    if isinstance(result, _tensor.Tensor):
        return [result._data]
    if isinstance(result, (tuple, list)):
        return [v for r in result for v in _flat_values(r)]
    if isinstance(result, dict):
        return [v for r in result.values() for v in _flat_values(r)]
    return []
