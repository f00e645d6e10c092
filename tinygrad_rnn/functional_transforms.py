"""The functional transforms of torch.autograd.functional, built on autograd.grad: vjp, jvp,
jacobian, hessian, hvp, vhp (re-exported by autograd.py, where torch users look for them).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tinygrad_rnn.autograd_grad import GradArgumentError, _cast, grad
from tinygrad_rnn.settings import enable_grad
from tinygrad_rnn.tensor import Tensor, _wrap, stack
from tinygrad_rnn.validate import check_bool

__all__ = ["hessian", "hvp", "jacobian", "jvp", "vhp", "vjp"]


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
        with enable_grad():
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
    with enable_grad():
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
        with enable_grad():
            found = grad([outs[i] for i in keep], [inputs[i] for i in wrt],
                         None if seeds is None else [seeds[i] for i in keep],
                         retain_graph=retain_graph, create_graph=create_graph,
                         allow_unused=True)
        for i, g in zip(wrt, found):
            res[i] = g
    return tuple(res)


_INDEPENDENT = {  # (where no gradient arrived, where the result is a constant), per stage
    "back": ("the output of func is independent of input {i}",
             "the Jacobian of func is independent of input {i}"),
    "back_trick": (("the gradient with respect to the inputs is independent of entry {i} of "
                    "the (zero) grad_outputs of the double-backward trick"),
                   "the Jacobian of func is independent of input {i}"),
    "double_back": ("the gradient of func is independent of input {i}",
                    "the Hessian of func is independent of input {i}"),
    "double_back_trick": (("the Hessian of func is independent of entry {i} of the (zero) "
                           "grad_jacobian of the double-backward trick"),
                          "the Hessian of func is independent of input {i}"),
    "jacobian": ("output {o} of func is independent of input {i}",
                 "the Jacobian of output {o} is independent of input {i}"),
}


def _zeros_for_none(who: str, found: Sequence[Any], refs: Sequence[Tensor], strict: bool,
                    create_graph: bool, stage: str, o: int = 0) -> tuple[Tensor, ...]:
    """Zeros where no gradient arrived; with strict, an error there instead (and, with
    create_graph, also where the result does not depend on the inputs). `o`: the output, for
    the messages of stage "jacobian"."""
    unused, constant = _INDEPENDENT[stage]
    res = []
    for i, g in enumerate(found):
        if g is None:
            if strict:
                raise RuntimeError(f"{who}: {unused.format(i=i, o=o)}; not allowed with "
                                   f"strict=True")
            g = Tensor(np.zeros(refs[i].shape, refs[i].dtype))
        elif strict and create_graph and not g.requires_grad:
            raise RuntimeError(f"{who}: {constant.format(i=i, o=o)}; not allowed with "
                               f"strict=True and create_graph=True")
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
        with enable_grad():
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
            with enable_grad():
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
            row = _zeros_for_none(who, found, ins, strict, create_graph, "jacobian", o=i)
            for k, g in enumerate(row):
                cols[k].append(g)
        jac.append(cols)
    blocks: list[tuple[Tensor, ...]]
    if vectorize:  # as torch's: one stack per input over every output's rows, then split
        blocks = _split_rows(jac, outs, ins, create_graph)
    else:
        blocks = [tuple(_stacked(c, out.shape + x.shape, x.dtype, create_graph)
                        for c, x in zip(cols, ins)) for cols, out in zip(jac, outs)]
    res = _done(tuple(blocks), create_graph)
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
        with enable_grad():
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
