"""`grad` (torch.autograd.grad): gradients as values, differentiable to any order with
`create_graph=True` (see grad_sweep.py for how a backward is recorded). autograd.py gathers it
with the functional transforms and checkpoint.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from tinygrad_rnn import bridge, engine, grad_sweep
from tinygrad_rnn.gradients import Port
from tinygrad_rnn.tensor import Tensor, _wrap, stack
from tinygrad_rnn.validate import check_bool

__all__ = ["GradArgumentError", "UnusedInputError", "grad"]


class UnusedInputError(ValueError, RuntimeError):
    """An input of `grad` that the outputs do not depend on, with allow_unused=False (torch
    raises a RuntimeError: both catch it)."""


class GradArgumentError(ValueError, RuntimeError):
    """A wrong count or shape (grad_outputs, v, inputs, a function's output) where torch raises
    a RuntimeError: both catch it."""


# ---- grad ----------------------------------------------------------------------------------
def _tensors(who: str, name: str, value: Any) -> list[Tensor]:
    items = [value] if isinstance(value, Tensor) else value
    if isinstance(items, (str, bytes, np.ndarray)) or not isinstance(items, Sequence):
        raise TypeError(f"{who}: {name} must be a Tensor or a sequence of Tensors, got "
                        f"{type(value).__name__}")
    for i, t in enumerate(items):
        if not isinstance(t, Tensor):
            raise TypeError(f"{who}: {name}[{i}] must be a Tensor, got {type(t).__name__}")
    if not items:
        raise GradArgumentError(f"{who}: {name} is empty; expected at least one Tensor")
    return list(items)


def _seed(i: int, out: Tensor, g: Any, create_graph: bool, batch: int | None) -> Any:
    """The seed for output i: ones for a scalar given None, else `g` checked and cast to the
    output's dtype (a Tensor stays one, wired, when create_graph records through it)."""
    want = out.shape if batch is None else (batch, *out.shape)
    if g is None:
        if batch is not None:
            raise GradArgumentError(f"grad: is_grads_batched=True needs grad_outputs[{i}]")
        if out.size != 1:
            raise RuntimeError(f"grad: grad can be implicitly created only for scalar outputs; "
                               f"output {i} has shape {out.shape}, so pass grad_outputs")
        g = np.ones(out.shape, out.dtype)
    elif isinstance(g, Tensor):
        if not (create_graph and g.requires_grad):
            g = g._data
    else:
        try:
            arr = np.asarray(g)
        except (TypeError, ValueError):
            arr = np.asarray(None)
        if arr.dtype.kind not in "biuf" or isinstance(g, (str, bytes)):
            raise TypeError(f"grad: grad_outputs[{i}] must be a Tensor, an array or None, got "
                            f"{type(g).__name__}")
        g = arr
    if g.shape != want:
        raise GradArgumentError(f"grad: grad_outputs[{i}] has shape {g.shape}; expected "
                                f"{want}, the shape of output {i}"
                                + (" with the batch axis first" if batch is not None else ""))
    if isinstance(g, Tensor):
        return g if g.dtype == out.dtype else _cast(g, out.dtype)
    g = np.asarray(g, out.dtype)
    return _wrap(g) if create_graph else g


def _cast(t: Tensor, dtype: np.dtype) -> Tensor:
    return bridge.astype(t, dtype)


def _seeds(outs: list[Tensor], grad_outputs: Any, create_graph: bool,
           batched: bool) -> list[Any]:
    if grad_outputs is None:
        given: list[Any] = [None] * len(outs)
    elif isinstance(grad_outputs, (Tensor, np.ndarray)):
        given = [grad_outputs]
    elif isinstance(grad_outputs, Sequence) and not isinstance(grad_outputs, (str, bytes)):
        given = list(grad_outputs)
    else:
        given = [grad_outputs]
    if len(given) != len(outs):
        raise GradArgumentError(f"grad: grad_outputs has {len(given)} entries for "
                                f"{len(outs)} outputs")
    batch = None
    if batched:
        shapes = [g.shape if isinstance(g, Tensor) else np.shape(g) for g in given
                  if g is not None]
        sizes = {s[0] for s in shapes if s}
        if len(sizes) > 1:
            raise GradArgumentError(f"grad: with is_grads_batched=True every grad_outputs "
                                    f"entry needs the same batch size, got {sorted(sizes)}")
        batch = sizes.pop() if sizes else 0
        if batch < 1:
            raise GradArgumentError("grad: with is_grads_batched=True grad_outputs need a "
                                    "batch axis of size >= 1 first")
    return [_seed(i, out, g, create_graph, batch) for i, (out, g) in
            enumerate(zip(outs, given))]


def _run(outs: list[Tensor], seeds: list[Any], ins: list[Tensor], retain: bool,
         create_graph: bool) -> list[Any]:
    """One sweep: the gradient reaching each input (one output of a multi-output op, a Port,
    is looked up in its op's slots)."""
    ports = [t._op if type(t._op) is Port else None for t in ins]
    targets = [p.node if p is not None else (t._op or t) for t, p in zip(ins, ports)]
    found = grad_sweep.sweep(outs, seeds, targets, retain, create_graph)
    return [g if p is None or g is None else g[p.index] for g, p in zip(found, ports)]


def _check_graph(outs: list[Tensor], ins: list[Tensor], allow_unused: bool) -> None:
    """Before a sweep that may free the graph (a failed call changes nothing): raise if the
    outputs' graph was freed by an earlier backward, or, unless allow_unused, if it does not
    reach an input (UnusedInputError)."""
    order = engine.toposort_many(outs)
    for node in order:
        if node._freed:
            raise RuntimeError("grad: trying to differentiate through a graph a second time; "
                               "its saved arrays were freed. Pass retain_graph=True (or "
                               "create_graph=True) the first time.")
    if not allow_unused:
        reached = set(order)
        for i, t in enumerate(ins):
            if engine.node_of(t) not in reached:
                raise _unused(i, t)


def _unused(i: int, t: Tensor) -> UnusedInputError:
    return UnusedInputError(f"grad: input {i} (shape {t.shape}) was not used to compute the "
                            f"outputs; pass allow_unused=True to get None for it")


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor] | dict,
         grad_outputs: Any = None, retain_graph: bool | None = None,
         create_graph: bool = False, only_inputs: bool = True, allow_unused: bool | None = None,
         is_grads_batched: bool = False, materialize_grads: bool = False) -> Any:
    """Gradients of the outputs with respect to the inputs, as torch.autograd.grad.

    Args:
        outputs: a Tensor or a sequence of them.
        inputs: Tensors of the outputs' graph (leaves, intermediates, one output of chunk or
            split), a sequence of them, or a dict of them (then the result is a dict).
        grad_outputs: d(something)/d(output), one per output, each of the output's shape: a
            Tensor, an array or None (ones, for a scalar output only). Tensors that require
            grad are differentiated through too when create_graph is True.
        retain_graph: keep the graph for another backward; defaults to create_graph.
        create_graph: record the gradient's computation, so it can be differentiated again.
        only_inputs: deprecated in torch and ignored (a warning when False).
        allow_unused: None for an input the outputs do not use (else UnusedInputError).
        is_grads_batched: each grad_outputs entry has a batch axis first; one gradient each,
            stacked along a first axis of the results.
        materialize_grads: zeros instead of None for an unused input (implies allow_unused).
    Returns:
        A tuple with one Tensor per input, of the input's shape (or None); `.grad` is never
        touched. Results require grad only when create_graph is True and they depend on a
        tensor that requires grad.
    """
    create_graph = check_bool("grad", "create_graph", create_graph)
    retain = create_graph if retain_graph is None else check_bool("grad", "retain_graph",
                                                                  retain_graph)
    if not check_bool("grad", "only_inputs", only_inputs):
        warnings.warn("grad: only_inputs is deprecated and ignored (as torch)", FutureWarning,
                      stacklevel=2)
    batched = check_bool("grad", "is_grads_batched", is_grads_batched)
    materialize = check_bool("grad", "materialize_grads", materialize_grads)
    if allow_unused is None:
        allow_unused = materialize
    elif not check_bool("grad", "allow_unused", allow_unused) and materialize:
        raise ValueError("grad: allow_unused=False contradicts materialize_grads=True; pass "
                         "allow_unused=True or leave it out")
    keys = list(inputs) if isinstance(inputs, dict) else None
    outs = _tensors("grad", "outputs", outputs)
    ins = _tensors("grad", "inputs", list(inputs.values()) if isinstance(inputs, dict)
                   else inputs)
    for i, out in enumerate(outs):
        if not out.requires_grad:
            raise RuntimeError(f"grad: output {i} (shape {out.shape}) does not require grad "
                               f"(no input requires grad, or it was made under no_grad)")
    for i, t in enumerate(ins):
        if not t.requires_grad:
            raise RuntimeError(f"grad: input {i} (shape {t.shape}) does not require grad")
    seeds = _seeds(outs, grad_outputs, create_graph, batched)
    _check_graph(outs, ins, allow_unused)
    if batched:
        rows = [_run(outs, [s[k] for s in seeds], ins, retain or k < len(seeds[0]) - 1,
                     create_graph) for k in range(len(seeds[0]))]
        found = [None if col[0] is None else (stack(col) if create_graph else np.stack(col))
                 for col in zip(*rows)]
    else:
        found = _run(outs, seeds, ins, retain, create_graph)
    results: list[Tensor | None] = []
    for i, (t, g) in enumerate(zip(ins, found)):
        if g is None:
            if not allow_unused:
                raise _unused(i, t)
            shape = t.shape if not batched else (len(seeds[0]), *t.shape)
            results.append(Tensor(np.zeros(shape, t.dtype), requires_grad=create_graph)
                           if materialize else None)
        elif isinstance(g, Tensor):
            results.append(g)
        else:
            results.append(Tensor(np.asarray(g, t.dtype)))  # a copy: g may alias a seed
    return dict(zip(keys, results)) if keys is not None else tuple(results)
