"""Activation checkpointing, as torch.utils.checkpoint.checkpoint (non-reentrant semantics):
a function's intermediates are dropped after the forward and recomputed in backward.

`checkpoint(fn, *args)` runs fn once with grad recorded, finds the nodes fn's graph hangs from
(its external inputs: arguments, captured parameters, outer intermediates), then drops that
graph and records ONE node in its place, a Checkpoint op whose parents are those external
nodes. Its backward runs fn again on the same arguments (numpy's global RNG replayed, so
dropout draws the same masks), sweeps the recomputed graph down to its external inputs only
(grad_sweep.sweep with `stop_below`) and hands one gradient per parent to the engine. With
`create_graph=True` the recomputation and its sweep are recorded, so the gradient can be
differentiated again.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_rnn import bridge, engine, grad_sweep, versions
from tinygrad_rnn import tensor as _tensor
from tinygrad_rnn.gradients import Port
from tinygrad_rnn.ops import Op
from tinygrad_rnn.settings import _GRAD_ENABLED, _SCOPE
from tinygrad_rnn.tensor import Tensor, _wrap

__all__ = ["checkpoint"]

_CHECKS = ("default", "none")


def checkpoint(function: Callable[..., Any], *args: Any, use_reentrant: bool | None = None,
               preserve_rng_state: bool = True, context_fn: Callable[[], Any] | None = None,
               determinism_check: str = "default", debug: bool = False,
               early_stop: bool = True, **kwargs: Any) -> Any:
    """function(*args, **kwargs), without keeping its intermediates for backward.

    Args:
        function: returns a Tensor, or a tuple / list / dict (nested too) holding Tensors of
            any shapes; other items pass through.
        args, kwargs: given to function, now and again in backward (kept until then).
        use_reentrant: accepted as torch's; both values run the non-reentrant checkpoint.
        preserve_rng_state: replay numpy's global RNG state in the recomputation, so dropout
            draws the same masks; the state after backward is as if nothing was recomputed.
        context_fn: None, or a callable returning two context managers, as torch's: function
            runs under the first, its recomputation under the second.
        determinism_check: "default" checks that the recomputed outputs have the forward's
            shapes and dtypes; "none" skips that check.
        debug, early_stop: accepted as torch's (bools) and ignored: errors always say what
            differs, and the recomputation always runs function to its end.
    Returns:
        What function returned; its Tensors that require grad hang from one checkpoint node.
    """
    if _tensor._TRACE is not None:  # jit.py: its recomputing backward is not replayable
        _tensor._TRACE.unreplayable("checkpoint (its backward recomputes the forward)")
    if not callable(function):
        raise TypeError(f"checkpoint: function must be callable, got {type(function).__name__}")
    if use_reentrant is not None and not isinstance(use_reentrant, (bool, np.bool_)):
        raise TypeError(f"checkpoint: use_reentrant must be a bool or None, got "
                        f"{type(use_reentrant).__name__} {use_reentrant!r}")
    for flag, value in (("preserve_rng_state", preserve_rng_state), ("debug", debug),
                        ("early_stop", early_stop)):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"checkpoint: {flag} must be a bool, got {type(value).__name__} "
                            f"{value!r}")
    if not isinstance(determinism_check, str):
        raise TypeError(f"checkpoint: determinism_check must be a str, got "
                        f"{type(determinism_check).__name__}")
    if determinism_check not in _CHECKS:
        raise ValueError(f"checkpoint: determinism_check must be 'default' or 'none', got "
                         f"{determinism_check!r}")
    if context_fn is not None and not callable(context_fn):
        raise TypeError(f"checkpoint: context_fn must be callable or None, got "
                        f"{type(context_fn).__name__}")
    forward_ctx, recompute_ctx = _contexts(context_fn)
    if not _GRAD_ENABLED.get():  # nothing is recorded, so there is nothing to drop
        with forward_ctx:
            return function(*args, **kwargs)
    with engine.collector_paused():  # a chunk's graph is thousands of objects, made and
        # dropped here: left to the cyclic collector they cost about a quarter of the forward
        return _record(function, args, kwargs, forward_ctx, recompute_ctx, preserve_rng_state,
                       determinism_check == "default")


def _record(function: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any],
            forward_ctx: Any, recompute_ctx: Any, preserve_rng_state: bool,
            check: bool) -> Any:
    """Run function once recorded, then put one Checkpoint node in place of its graph."""
    rng = np.random.get_state() if preserve_rng_state else None
    scope = _SCOPE.get()
    start = next(versions.SEQUENCE)
    with forward_ctx:
        result = function(*args, **kwargs)
    found: list[Tensor] = []
    _rebuild(result, found.append)
    live = [i for i, t in enumerate(found) if t.requires_grad]
    if not live:
        return result
    node = Checkpoint()
    node.function, node.args, node.kwargs, node.rng = function, args, kwargs, rng
    node.context = recompute_ctx
    node.check = check
    node.n_found, node.live = len(found), live
    node.metas = [(found[i].shape, found[i].dtype) for i in live]
    node.n_out = len(live)
    node.multi_output = type(result) is not Tensor
    node._parents = tuple(_external_inputs([found[i] for i in live], start))
    node._scope, node._seq = scope, next(versions.SEQUENCE)
    node._shape, node._dtype = node.metas[0]
    node.needs = (True,) * len(node._parents)
    outputs = {}
    for slot, i in enumerate(live):  # new tensors over the same arrays: fn's graph is dropped
        old = found[i]
        out = _wrap(old._data)
        out.requires_grad = True
        out._op = Port(node, slot, old.shape, old.dtype) if node.multi_output else node
        outputs[id(old)] = out
    return _rebuild(result, lambda t: outputs.get(id(t), t))


class Checkpoint(Op):
    """The node standing for one checkpointed call: parents are fn's external inputs, backward
    recomputes fn and returns one gradient per parent. Not a registered primitive."""

    name = "checkpoint"
    saves = None  # the recomputation reads every input: a write to any of them is an error
    function: Callable[..., Any]  # what _record stores: fn and its arguments, for the rerun
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    rng: Any  # numpy's global RNG state before the forward (None: not replayed)
    context: Any  # the recomputation's context manager
    check: bool  # compare the recomputed outputs' shapes and dtypes with the forward's
    n_found: int  # Tensors in fn's result, and the indices of those that require grad
    live: list[int]
    metas: list[tuple[tuple[int, ...], np.dtype]]

    def backward(self, g: Any) -> tuple[Any, ...]:
        seeds = list(g) if self.multi_output else [g]
        record = any(s is not None and not bridge.is_array(s) for s in seeds)
        outs, start = self._recompute()
        roots = [t for t, s in zip(outs, seeds) if s is not None]
        given = [s for s in seeds if s is not None]
        found = grad_sweep.sweep(roots, given, list(self._parents), retain_graph=record,
                                 create_graph=record, stop_below=start)
        return tuple(found)

    def _recompute(self) -> tuple[list[Tensor], int]:
        """Run fn again with grad recorded, under the forward's scope and RNG state; its
        outputs that require grad, in slot order, and the sequence number it started at."""
        outer = np.random.get_state() if self.rng is not None else None
        grad_token, scope_token = _GRAD_ENABLED.set(True), _SCOPE.set(self._scope)
        try:
            if self.rng is not None:
                np.random.set_state(self.rng)
            start = next(versions.SEQUENCE)
            with self.context:
                result = self.function(*self.args, **self.kwargs)
        finally:
            _SCOPE.reset(scope_token)
            _GRAD_ENABLED.reset(grad_token)
            if outer is not None:
                np.random.set_state(outer)
        found: list[Tensor] = []
        _rebuild(result, found.append)
        if len(found) != self.n_found:
            raise RuntimeError(f"checkpoint: the recomputation of the function returned "
                               f"{len(found)} tensors, the forward {self.n_found}; it must "
                               f"compute the same thing both times")
        outs = [found[i] for i in self.live]
        for slot, (t, (shape, dtype)) in enumerate(zip(outs, self.metas)):
            if not t.requires_grad:
                raise RuntimeError(f"checkpoint: output {self.live[slot]} of the "
                                   f"recomputation does not require grad, that of the forward "
                                   f"did")
            if self.check and (t.shape != shape or t.dtype != dtype):
                raise RuntimeError(f"checkpoint: output {self.live[slot]} of the recomputation "
                                   f"has shape {t.shape} ({t.dtype}), that of the forward "
                                   f"{shape} ({dtype}); the function must compute the same "
                                   f"thing both times")
        known = set(self._parents)
        for p in _external_inputs(outs, start):
            if p not in known:
                raise RuntimeError(f"checkpoint: the recomputation used a tensor that requires "
                                   f"grad (shape {_shape(p)}) which the forward did not (a "
                                   f"leaf made inside the function, or a captured tensor "
                                   f"replaced since); its gradient would be lost")
        return outs, start


def _contexts(context_fn: Callable[[], Any] | None) -> tuple[Any, Any]:
    """The forward's and the recomputation's context managers (none: do-nothing ones)."""
    if context_fn is None:
        return contextlib.nullcontext(), contextlib.nullcontext()
    pair = context_fn()
    if not (isinstance(pair, tuple) and len(pair) == 2 and all(
            hasattr(c, "__enter__") and hasattr(c, "__exit__") for c in pair)):
        raise TypeError(f"checkpoint: context_fn must return a tuple of two context managers, "
                        f"got {type(pair).__name__}")
    return pair


def _external_inputs(outs: list[Tensor], start: int) -> list[Any]:
    """The graph nodes below `start` (leaves, outer ops and ports) that need grad and that the
    outputs' graph hangs from, each once; the walk stays above `start` (iterative: a chunk of
    an unroll has thousands of nodes)."""
    external: list[Any] = []
    met: set[Any] = set()  # nodes hash by identity
    todo: list[Any] = [t._op or t for t in outs]
    while todo:
        p = todo.pop()
        node = p.node if type(p) is Port else p
        if node._seq >= start:  # made by fn: walk on through its inputs
            if node not in met:
                met.add(node)
                todo.extend(node._parents)
        elif p not in met and p.requires_grad:
            met.add(p)
            external.append(p)
    return external


def _rebuild(value: Any, leaf: Callable[[Tensor], Any]) -> Any:
    """`value` with each Tensor t inside tuples, lists and dicts (nested) replaced by leaf(t),
    in a fixed order; anything else is kept as it is."""
    if isinstance(value, Tensor):
        return leaf(value)
    if isinstance(value, tuple):
        items = [_rebuild(v, leaf) for v in value]
        return type(value)(*items) if hasattr(value, "_fields") else type(value)(items)
    if isinstance(value, list):
        return [_rebuild(v, leaf) for v in value]
    if isinstance(value, dict):
        return {k: _rebuild(v, leaf) for k, v in value.items()}
    return value


def _shape(p: Any) -> tuple[int, ...]:
    return p.shape if type(p) is Port else p._shape
