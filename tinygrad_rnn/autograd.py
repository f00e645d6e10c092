"""Gradients as values: `grad` (torch.autograd.grad), differentiable to any order with
`create_graph=True` (see grad_sweep.py for how a backward is recorded), and the functional
transforms of torch.autograd.functional built on it: vjp, jvp, jacobian, hessian, hvp, vhp.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from tinygrad_rnn import bridge, engine, grad_sweep
from tinygrad_rnn.gradients import Port
from tinygrad_rnn.settings import _GRAD_ENABLED
from tinygrad_rnn.tensor import Tensor, _wrap, stack
from tinygrad_rnn.validate import check_bool

__all__ = ["GradArgumentError", "UnusedInputError", "grad", "hessian", "hvp", "jacobian", "jvp",
           "vhp", "vjp"]


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
    keys = list(inputs) if type(inputs) is dict else None
    outs = _tensors("grad", "outputs", outputs)
    ins = _tensors("grad", "inputs", list(inputs.values()) if keys is not None else inputs)
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


# ---- functional transforms (torch.autograd.functional) -------------------------------------
@contextlib.contextmanager
def _grad_on() -> Iterator[None]:
    """Record even under no_grad(): a transform always builds the graph it differentiates."""
    token = _GRAD_ENABLED.set(True)
    try:
        yield
    finally:
        _GRAD_ENABLED.reset(token)


def _as_tuple(who: str, name: str, value: Any) -> tuple[bool, tuple[Tensor, ...]]:
    """(was it a tuple, the Tensors as a tuple); only a tuple counts as several, as torch."""
    is_tuple = isinstance(value, tuple)
    items = value if is_tuple else (value,)
    for i, t in enumerate(items):
        if not isinstance(t, Tensor):
            where = f"{name}[{i}]" if is_tuple else name
            raise TypeError(f"{who}: {where} must be a Tensor (or {name} a tuple of Tensors), "
                            f"got {type(t).__name__}")
    if not items:
        raise GradArgumentError(f"{who}: {name} is an empty tuple; expected at least one "
                                f"Tensor")
    return is_tuple, items


def _inputs(who: str, func: Any, inputs: Any, create_graph: bool,
            strict: bool) -> tuple[bool, tuple[Tensor, ...]]:
    """Check func and the flags; the inputs as fresh Tensors that require grad: detached
    copies of the caller's (sharing the arrays, as torch's detach), or, with create_graph, an
    identity op on the ones that require grad, so the results stay wired to the caller's graph."""
    if not callable(func):
        raise TypeError(f"{who}: func must be callable, got {type(func).__name__}")
    check_bool(who, "create_graph", create_graph)
    check_bool(who, "strict", strict)
    is_tuple, items = _as_tuple(who, "inputs", inputs)
    for i, t in enumerate(items):
        if t.dtype.kind != "f":
            raise TypeError(f"{who}: inputs[{i}] must have a floating dtype to be "
                            f"differentiated, got {t.dtype}")
    return is_tuple, tuple(_fresh(t, create_graph, True) for t in items)


def _fresh(t: Tensor, create_graph: bool, need_graph: bool) -> Tensor:
    if create_graph and t.requires_grad:
        with _grad_on():
            return t.reshape(t.shape)
    out = _wrap(t._data)
    out.requires_grad = need_graph
    return out


def _vectors(who: str, v: Any, refs: tuple[Tensor, ...], refs_tuple: bool, what: str,
             create_graph: bool) -> tuple[Tensor, ...]:
    """v, checked against `refs` (count, shapes), cast to their dtypes; detached unless
    create_graph records through it."""
    _, vs = _as_tuple(who, "v", v)
    if len(vs) != len(refs):
        raise GradArgumentError(f"{who}: v has {len(vs)} Tensors; expected {len(refs)}, one "
                                f"per {what}" if refs_tuple else
                                f"{who}: v must be a single Tensor, as the {what} is one")
    out = []
    for i, (x, ref) in enumerate(zip(vs, refs)):
        if x.shape != ref.shape:
            where = f"v[{i}]" if refs_tuple else "v"
            raise GradArgumentError(f"{who}: {where} has shape {x.shape}; expected {ref.shape}, "
                                    f"the shape of the {what}")
        x = _fresh(x, create_graph, False)
        out.append(x if x.dtype == ref.dtype else (
            _cast(x, ref.dtype) if x.requires_grad else _wrap(x._data.astype(ref.dtype))))
    return tuple(out)


def _no_v(who: str, refs: tuple[Tensor, ...], what: str) -> None:
    if len(refs) != 1 or refs[0].size != 1:
        raise GradArgumentError(f"{who}: v can be None only when the {what} is a single "
                                f"Tensor with a single element")


def _outputs(who: str, func: Callable, inputs: tuple[Tensor, ...],
             strict: bool) -> tuple[bool, tuple[Tensor, ...]]:
    with _grad_on():
        result = func(*inputs)
    is_tuple, outs = _as_tuple(who, "func's output", result)
    if strict:
        for i, out in enumerate(outs):
            if not out.requires_grad:
                raise RuntimeError(f"{who}: output {i} of func does not require grad; with "
                                   f"strict=True every output must be computed "
                                   f"differentiably from the inputs")
    return is_tuple, outs


def _single_output(who: str, is_tuple: bool, outs: tuple[Tensor, ...]) -> None:
    if is_tuple:
        raise GradArgumentError(f"{who}: func must return a single Tensor, got a tuple of "
                                f"{len(outs)}")
    if outs[0].size != 1:
        raise GradArgumentError(f"{who}: func must return a Tensor with a single element, "
                                f"got shape {outs[0].shape}")


def _grads(outs: tuple[Any, ...], inputs: tuple[Tensor, ...], seeds: Any = None,
           create_graph: bool = False, retain_graph: bool | None = None) -> tuple[Any, ...]:
    """grad over the outputs that require grad (None entries skipped), None for inputs none
    of them uses."""
    keep = [i for i, o in enumerate(outs) if o is not None and o.requires_grad]
    wrt = [i for i, t in enumerate(inputs) if t.requires_grad]
    res: list[Any] = [None] * len(inputs)
    if keep and wrt:
        with _grad_on():
            found = grad([outs[i] for i in keep], [inputs[i] for i in wrt],
                         None if seeds is None else [seeds[i] for i in keep],
                         retain_graph=retain_graph, create_graph=create_graph,
                         allow_unused=True)
        for i, g in zip(wrt, found):
            res[i] = g
    return tuple(res)


_INDEPENDENT = {
    "back": "the output of func is independent of input {i}",
    "back_trick": "the gradient with respect to the inputs is independent of entry {i} of the "
                  "(zero) grad_outputs of the double-backward trick",
    "double_back": "the gradient of func is independent of input {i}",
    "double_back_trick": "the Hessian of func is independent of entry {i} of the (zero) "
                         "grad_jacobian of the double-backward trick",
}


def _zeros_for_none(who: str, found: tuple[Any, ...], refs: tuple[Tensor, ...], strict: bool,
                    create_graph: bool, stage: str) -> tuple[Tensor, ...]:
    """Zeros where no gradient arrived; with strict, an error there instead (and, with
    create_graph, also where the result does not depend on the inputs)."""
    res = []
    for i, g in enumerate(found):
        if g is None:
            if strict:
                raise RuntimeError(f"{who}: {_INDEPENDENT[stage].format(i=i)}; not allowed "
                                   f"with strict=True")
            g = Tensor(np.zeros(refs[i].shape, refs[i].dtype))
        elif strict and create_graph and not g.requires_grad:
            kind = "Hessian" if "double" in stage else "Jacobian"
            raise RuntimeError(f"{who}: the {kind} of func is independent of input {i}; not "
                               f"allowed with strict=True and create_graph=True")
        res.append(g)
    return tuple(res)


def _done(ts: tuple[Any, ...], create_graph: bool) -> tuple[Any, ...]:
    """Without create_graph the results are cut from the graph (nested tuples too)."""
    if create_graph:
        return ts
    return tuple(_done(t, False) if isinstance(t, tuple) else
                 (_wrap(t._data) if t.requires_grad else t) for t in ts)


def _unpack(res: tuple[Any, ...], is_tuple: bool) -> Any:
    return res if is_tuple else res[0]


def vjp(func: Callable, inputs: Tensor | tuple[Tensor, ...], v: Any = None,
        create_graph: bool = False, strict: bool = False) -> tuple[Any, Any]:
    """v^T J: the vector-Jacobian product of func at inputs (torch.autograd.functional.vjp).

    Args:
        func: Tensors -> a Tensor or a tuple of Tensors.
        inputs: a Tensor or a tuple of Tensors.
        v: one Tensor per output, of its shape; None only for a single one-element output.
        create_graph: results stay differentiable (wired to inputs that require grad).
        strict: raise when an output does not depend on an input (else zeros there).
    Returns:
        (func_output, vjp): vjp has the inputs' shapes (a Tensor, or a tuple for a tuple).
    """
    is_in_tuple, ins = _inputs("vjp", func, inputs, create_graph, strict)
    is_out_tuple, outs = _outputs("vjp", func, ins, strict)
    if v is None:
        _no_v("vjp", outs, "output of func")
        vs = None
    else:
        vs = _vectors("vjp", v, outs, is_out_tuple, "output of func", create_graph)
    found = _grads(outs, ins, vs, create_graph)
    res = _zeros_for_none("vjp", found, ins, strict, create_graph, "back")
    return (_unpack(_done(outs, create_graph), is_out_tuple),
            _unpack(_done(res, create_graph), is_in_tuple))


def jvp(func: Callable, inputs: Tensor | tuple[Tensor, ...], v: Any = None,
        create_graph: bool = False, strict: bool = False) -> tuple[Any, Any]:
    """J v: the Jacobian-vector product of func at inputs (torch.autograd.functional.jvp),
    by the double-vjp trick: u -> J^T u is linear, and its vjp with v is J v.

    Args:
        func, inputs, create_graph, strict: as vjp.
        v: one Tensor per input, of its shape; None only for a single one-element input.
    Returns:
        (func_output, jvp): jvp has the outputs' shapes (a Tensor, or a tuple for a tuple).
    """
    is_in_tuple, ins = _inputs("jvp", func, inputs, create_graph, strict)
    if v is None:
        _no_v("jvp", ins, "input")
        vs = None
    else:
        vs = _vectors("jvp", v, ins, is_in_tuple, "input", create_graph)
    is_out_tuple, outs = _outputs("jvp", func, ins, strict)
    # J^T u is linear in u: its value at u = 0 does not matter, only its graph
    us = tuple(Tensor(np.zeros(o.shape, o.dtype), requires_grad=o.dtype.kind == "f")
               for o in outs)
    back = _grads(outs, ins, us, create_graph=True)
    if strict:
        for i, g in enumerate(back):
            if g is None or not g.requires_grad:
                raise RuntimeError(f"jvp: the gradient with respect to input {i} is "
                                   f"independent of the inputs; not allowed with strict=True")
    found = _grads(back, us, vs, create_graph)
    res = _zeros_for_none("jvp", found, outs, strict, create_graph, "back_trick")
    return (_unpack(_done(outs, create_graph), is_out_tuple),
            _unpack(_done(res, create_graph), is_out_tuple))


def _check_strategy(who: str, name: str, strategy: Any, create_graph: bool, strict: bool,
                    vectorize: bool) -> None:
    """torch's rules for `strategy`: forward-mode needs vectorize=True and refuses strict and
    create_graph. Either strategy then runs reverse mode here (the values are the same)."""
    if strategy not in ("forward-mode", "reverse-mode"):
        raise ValueError(f"{who}: {name} must be 'forward-mode' or 'reverse-mode', got "
                         f"{strategy!r}")
    if strategy == "forward-mode":
        if create_graph:
            raise NotImplementedError(f"{who}: create_graph=True and {name}='forward-mode' "
                                      f"are not supported together (as torch)")
        if strict:
            raise RuntimeError(f"{who}: strict=True and {name}='forward-mode' are not "
                               f"supported together (as torch)")
        if not vectorize:
            raise NotImplementedError(f"{who}: {name}='forward-mode' needs vectorize=True "
                                      f"(as torch)")


def _stacked(rows: list[Tensor], shape: tuple[int, ...], dtype: np.dtype,
             create_graph: bool) -> Tensor:
    if not rows:  # an output with no element
        return Tensor(np.zeros(shape, dtype))
    if create_graph:
        with _grad_on():
            return stack(rows).reshape(shape)
    return Tensor(np.stack([r._data for r in rows]).reshape(shape))


def _split_rows(jac: list[list[list[Tensor]]], outs: tuple[Tensor, ...],
                ins: tuple[Tensor, ...], create_graph: bool) -> list[tuple[Tensor, ...]]:
    """The Jacobian blocks cut out of one stack of rows per input (all outputs' rows), so a
    block requires grad when any block of its input does, as torch's vectorized jacobian."""
    total = sum(out.size for out in outs)
    blocks: list[list[Tensor]] = [[] for _ in outs]
    for k, x in enumerate(ins):
        rows = [row for cols in jac for row in cols[k]]
        whole = _stacked(rows, (total, *x.shape), x.dtype, create_graph)
        start = 0
        for i, out in enumerate(outs):
            with _grad_on():
                blocks[i].append(whole[start:start + out.size].reshape(out.shape + x.shape))
            start += out.size
    return [tuple(b) for b in blocks]


def _jacobian(who: str, func: Callable, inputs: Any, create_graph: bool, strict: bool,
              vectorize: bool, strategy: Any, name: str = "strategy") -> Any:
    check_bool(who, "vectorize", vectorize)
    _check_strategy(who, name, strategy, create_graph, strict, vectorize)
    is_in_tuple, ins = _inputs(who, func, inputs, create_graph, strict)
    is_out_tuple, outs = _outputs(who, func, ins, strict)
    if vectorize and strict:
        raise RuntimeError(f"{who}: strict=True and vectorize=True are not supported "
                           f"together (as torch)")
    jac = []
    for i, out in enumerate(outs):
        cols: list[list[Tensor]] = [[] for _ in ins]
        for j in range(out.size):  # row j of d out / d inputs: the gradient of out.flat[j]
            seed = np.zeros(out.size, out.dtype)
            seed[j] = 1
            found = _grads((out,), ins, (Tensor(seed.reshape(out.shape)),), create_graph,
                           retain_graph=True)
            for k, g in enumerate(found):
                if g is None:
                    if strict:
                        raise RuntimeError(f"{who}: output {i} of func is independent of "
                                           f"input {k}; not allowed with strict=True")
                    g = Tensor(np.zeros(ins[k].shape, ins[k].dtype))
                elif strict and create_graph and not g.requires_grad:
                    raise RuntimeError(f"{who}: the Jacobian of output {i} is independent of "
                                       f"input {k}; not allowed with strict=True and "
                                       f"create_graph=True")
                cols[k].append(g)
        jac.append(cols)
    if vectorize:  # as torch's: one stack per input over every output's rows, then split
        jac = _split_rows(jac, outs, ins, create_graph)
    else:
        jac = [tuple(_stacked(c, out.shape + x.shape, x.dtype, create_graph)
                     for c, x in zip(cols, ins)) for cols, out in zip(jac, outs)]
    res = _done(tuple(jac), create_graph)
    res = res if is_in_tuple else tuple(row[0] for row in res)
    return res if is_out_tuple else res[0]


def jacobian(func: Callable, inputs: Tensor | tuple[Tensor, ...], create_graph: bool = False,
             strict: bool = False, vectorize: bool = False,
             strategy: str = "reverse-mode") -> Any:
    """The Jacobian of func at inputs (torch.autograd.functional.jacobian), one reverse sweep
    per output element.

    Args:
        func: Tensors -> a Tensor or a tuple of Tensors.
        inputs: a Tensor or a tuple of Tensors.
        create_graph: results stay differentiable (wired to inputs that require grad).
        strict: raise when an output does not depend on an input (else zeros there).
        vectorize, strategy: accepted and checked as torch checks them; no effect on values.
    Shape:
        J[i][j] is output_i.shape + input_j.shape.
    Returns:
        A Tensor for a Tensor output and input; a tuple over the one that is a tuple; a tuple
        (outputs) of tuples (inputs) when both are.
    """
    return _jacobian("jacobian", func, inputs, create_graph, strict, vectorize, strategy)


def hessian(func: Callable, inputs: Tensor | tuple[Tensor, ...], create_graph: bool = False,
            strict: bool = False, vectorize: bool = False,
            outer_jacobian_strategy: str = "reverse-mode") -> Any:
    """The Hessian of a scalar func at inputs (torch.autograd.functional.hessian): the
    Jacobian of its gradient.

    Args:
        func: Tensors -> a Tensor with a single element.
        inputs, create_graph, strict, vectorize: as jacobian.
        outer_jacobian_strategy: as jacobian's strategy (checked, no effect on values).
    Shape:
        H[i][j] is input_i.shape + input_j.shape.
    Returns:
        A Tensor for a Tensor input; a tuple of tuples for a tuple.
    """
    is_in_tuple, _ = _as_tuple("hessian", "inputs", inputs)

    def scalar(*xs: Tensor) -> Tensor:
        is_tuple, outs = _outputs("hessian", func, xs, strict)
        _single_output("hessian", is_tuple, outs)
        with _grad_on():
            return outs[0].reshape(())

    def gradient(*xs: Tensor) -> tuple[Tensor, ...]:
        jac = _jacobian("hessian", scalar, xs, True, False, False, "reverse-mode")
        if strict:
            for i, g in enumerate(jac):
                if not g.requires_grad:
                    raise RuntimeError(f"hessian: the gradient of func with respect to input "
                                       f"{i} is independent of the inputs (func is linear "
                                       f"there); not allowed with strict=True")
        return jac

    res = _jacobian("hessian", gradient, inputs if is_in_tuple else (inputs,), create_graph,
                    strict, vectorize, outer_jacobian_strategy, "outer_jacobian_strategy")
    res = res if is_in_tuple else tuple(row[0] for row in res)
    return res if is_in_tuple else res[0]


def _second(who: str, func: Callable, inputs: Any, v: Any, create_graph: bool,
            strict: bool) -> tuple[bool, tuple[Tensor, ...], tuple[Tensor, ...] | None,
                                   Tensor, tuple[Any, ...]]:
    """What hvp and vhp share: checked inputs and v, func's scalar output, its gradient
    (recorded, so it can be differentiated again)."""
    is_in_tuple, ins = _inputs(who, func, inputs, create_graph, strict)
    if v is None:
        _no_v(who, ins, "input")
        vs = None
    else:
        vs = _vectors(who, v, ins, is_in_tuple, "input", create_graph)
    is_out_tuple, outs = _outputs(who, func, ins, strict)
    _single_output(who, is_out_tuple, outs)
    jac = _grads(outs, ins, create_graph=True)
    if strict:
        for i, g in enumerate(jac):
            if g is None or not g.requires_grad:
                raise RuntimeError(f"{who}: the gradient of func with respect to input {i} "
                                   f"is independent of the inputs (func is linear there); not "
                                   f"allowed with strict=True")
    return is_in_tuple, ins, vs, outs[0], jac


def vhp(func: Callable, inputs: Tensor | tuple[Tensor, ...], v: Any = None,
        create_graph: bool = False, strict: bool = False) -> tuple[Any, Any]:
    """v^T H: the vector-Hessian product of a scalar func at inputs
    (torch.autograd.functional.vhp), the vjp of its gradient.

    Args:
        func: Tensors -> a Tensor with a single element.
        inputs, create_graph, strict: as vjp.
        v: one Tensor per input, of its shape; None only for a single one-element input.
    Returns:
        (func_output, vhp): vhp has the inputs' shapes (a Tensor, or a tuple for a tuple).
    """
    is_in_tuple, ins, vs, out, jac = _second("vhp", func, inputs, v, create_graph, strict)
    found = _grads(jac, ins, vs, create_graph)
    res = _zeros_for_none("vhp", found, ins, strict, create_graph, "double_back")
    return _done((out,), create_graph)[0], _unpack(_done(res, create_graph), is_in_tuple)


def hvp(func: Callable, inputs: Tensor | tuple[Tensor, ...], v: Any = None,
        create_graph: bool = False, strict: bool = False) -> tuple[Any, Any]:
    """H v: the Hessian-vector product of a scalar func at inputs
    (torch.autograd.functional.hvp), by the double-backward trick as torch: u -> u^T H is
    linear, and its vjp with v is H v.

    Args, Returns: as vhp.
    """
    is_in_tuple, ins, vs, out, jac = _second("hvp", func, inputs, v, create_graph, strict)
    us = tuple(Tensor(np.zeros(x.shape, x.dtype), requires_grad=True) for x in ins)
    back = _grads(jac, ins, us, create_graph=True)
    found = _grads(back, us, vs, create_graph)
    res = _zeros_for_none("hvp", found, ins, strict, create_graph, "double_back_trick")
    return _done((out,), create_graph)[0], _unpack(_done(res, create_graph), is_in_tuple)
