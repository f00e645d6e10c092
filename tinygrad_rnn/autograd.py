"""Gradients as values: `grad` (torch.autograd.grad), differentiable to any order with
`create_graph=True` (see grad_sweep.py for how a backward is recorded).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from tinygrad_rnn import grad_sweep
from tinygrad_rnn.tensor import Tensor, _wrap

__all__ = ["UnusedInputError", "grad"]


class UnusedInputError(ValueError, RuntimeError):
    """An input of `grad` that the outputs do not depend on, with allow_unused=False (torch
    raises a RuntimeError: both catch it)."""


def _tensors(who: str, name: str, value: Any) -> list[Tensor]:
    items = [value] if isinstance(value, Tensor) else value
    if isinstance(items, (str, bytes)) or not isinstance(items, Sequence) or not all(
            isinstance(t, Tensor) for t in items):
        raise TypeError(f"{who}: {name} must be a Tensor or a sequence of Tensors, got "
                        f"{type(value).__name__}")
    if not items:
        raise ValueError(f"{who}: {name} is empty")
    return list(items)


def _seeds(who: str, outputs: list[Tensor], grad_outputs: Any, create_graph: bool) -> list[Any]:
    """One seed per output: ones for a scalar given None, else the given gradient, checked."""
    given: list[Any]
    if grad_outputs is None or isinstance(grad_outputs, Tensor):
        given = [grad_outputs] * len(outputs) if grad_outputs is None else [grad_outputs]
    elif isinstance(grad_outputs, Sequence) and not isinstance(grad_outputs, (str, bytes)):
        given = list(grad_outputs)
    else:
        given = [grad_outputs]
    if len(given) != len(outputs):
        raise ValueError(f"{who}: grad_outputs has {len(given)} entries for {len(outputs)} "
                         f"outputs")
    seeds = []
    for i, (out, g) in enumerate(zip(outputs, given)):
        if g is None:
            if out.size != 1:
                raise RuntimeError(f"{who}: grad can be implicitly created only for scalar "
                                   f"outputs; output {i} has shape {out.shape}")
            g = np.ones(out.shape, out.dtype)
        elif isinstance(g, Tensor):
            if not create_graph:
                g = g._data
        else:
            try:
                g = np.asarray(g, out.dtype)
            except (TypeError, ValueError):
                raise TypeError(f"{who}: grad_outputs[{i}] must be numeric, got "
                                f"{type(g).__name__}") from None
        if g.shape != out.shape:
            raise ValueError(f"{who}: grad_outputs[{i}] has shape {g.shape} for an output of "
                             f"shape {out.shape}")
        if create_graph and not isinstance(g, Tensor):
            g = _wrap(np.asarray(g, out.dtype))
        seeds.append(g)
    return seeds


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Any = None, retain_graph: bool | None = None,
         create_graph: bool = False, allow_unused: bool | None = None,
         materialize_grads: bool = False) -> tuple[Tensor | None, ...]:
    """Gradients of the outputs with respect to the inputs, as torch.autograd.grad.

    Args:
        outputs: a Tensor or a sequence of them.
        inputs: leaves or intermediate Tensors of the outputs' graph.
        grad_outputs: d(something)/d(output) per output (a Tensor, array or None: ones for a
            scalar output); Tensors that require grad are differentiated through too.
        retain_graph: keep the graph for another backward; defaults to create_graph.
        create_graph: record the gradient's computation, so it can be differentiated again.
        allow_unused: None for an input the outputs do not use (else UnusedInputError).
        materialize_grads: zeros instead of None for an unused input (implies allow_unused).
    Returns:
        One Tensor per input, of the input's shape (or None); `.grad` is never touched.
    """
    outs = _tensors("grad", "outputs", outputs)
    ins = _tensors("grad", "inputs", inputs)
    for i, out in enumerate(outs):
        if not out.requires_grad:
            raise RuntimeError(f"grad: output {i} (shape {out.shape}) does not require grad "
                               f"(no input requires grad, or it was made under no_grad)")
    for i, t in enumerate(ins):
        if not t.requires_grad:
            raise RuntimeError(f"grad: input {i} (shape {t.shape}) does not require grad")
    create_graph = bool(create_graph)
    retain = create_graph if retain_graph is None else bool(retain_graph)
    seeds = _seeds("grad", outs, grad_outputs, create_graph)
    targets = [t._op or t for t in ins]
    found = grad_sweep.sweep(outs, seeds, targets, retain, create_graph)
    results: list[Tensor | None] = []
    for i, (t, g) in enumerate(zip(ins, found)):
        if g is None:
            if materialize_grads:
                results.append(Tensor(np.zeros(t.shape, t.dtype)))
                continue
            if not allow_unused:
                raise UnusedInputError(f"grad: input {i} (shape {t.shape}) was not used to "
                                       f"compute the outputs; pass allow_unused=True to get "
                                       f"None for it")
            results.append(None)
        elif isinstance(g, Tensor):
            results.append(g)
        else:
            results.append(Tensor(np.asarray(g, t.dtype)))  # a copy: g may alias a seed
    return tuple(results)
