"""Second-order gradient checks: a recorded gradient (`grad(..., create_graph=True)`)
differentiated again, against central differences of the plain gradient, in float64.

`gradgradcheck` is torch's: the vector-Jacobian product (inputs, grad_outputs) ->
grad(fn(inputs), inputs, grad_outputs) checked with respect to the inputs and grad_outputs.
`gradgradcheck_module` checks Hessian-vector products of a module's loss along seeded random
directions. Misuse is an error naming the function and the argument, as in grad_check.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from tinygrad_rnn import tensor as _tensor
from tinygrad_rnn.autograd import grad
from tinygrad_rnn.grad_check import (
    GradcheckError,
    GradcheckRecord,
    _check_inputs,
    _check_settings,
    _compare,
    _float64_inputs,
    _module_params,
    _steps_used,
    check_deterministic,
    float64_run,
    numeric_grad,
)
from tinygrad_rnn.gradients import Port
from tinygrad_rnn.tensor import Tensor
from tinygrad_rnn.validate import as_array, check_size

__all__ = ["gradgradcheck", "gradgradcheck_module"]


def _outputs(who: str, out: Any) -> list[Tensor]:
    """fn's result as a list: a Tensor, or a tuple or list of Tensors (as torch)."""
    outs = [out] if isinstance(out, Tensor) else out
    if not isinstance(outs, (list, tuple)) or not outs or not all(
            isinstance(o, Tensor) for o in outs):
        raise TypeError(f"{who}: fn must return a Tensor or a tuple of Tensors, got "
                        f"{type(out).__name__}")
    return list(outs)


def _grad_outputs(who: str, given: Any, outs: list[Tensor]) -> list[Any]:
    """One seed per output: float64 leaves (random, seeded, when `given` is None; copies of
    given Tensors, keeping requires_grad), or constant float64 arrays for arrays and numbers."""
    if given is None:
        rng = np.random.default_rng(1)
        return [Tensor(rng.standard_normal(o.shape), requires_grad=True) for o in outs]
    items = list(given) if isinstance(given, (list, tuple)) else [given]
    if len(items) != len(outs):
        raise ValueError(f"{who}: grad_outputs has {len(items)} entries for fn's "
                         f"{len(outs)} outputs")
    seeds = []
    for i, (g, o) in enumerate(zip(items, outs)):
        if g is None or isinstance(g, (str, bytes)):
            raise TypeError(f"{who}: grad_outputs[{i}] must be a Tensor, an array or a number, "
                            f"got {type(g).__name__}")
        arr = as_array(who, f"grad_outputs[{i}]", g).astype(np.float64)
        if arr.shape != o.shape:
            raise ValueError(f"{who}: grad_outputs[{i}] has shape {arr.shape} for output {i} of "
                             f"shape {o.shape}")
        if not np.isfinite(arr).all():
            raise ValueError(f"{who}: grad_outputs[{i}] is not finite")
        needs = isinstance(g, Tensor) and g.requires_grad
        seeds.append(Tensor(arr, requires_grad=True) if needs else arr)
    return seeds


def _primitives(outs: list[Tensor]) -> list[str]:
    """The names of the primitives recorded under `outs`, in the order they ran, each once."""
    nodes: dict[int, Any] = {}
    todo: list[Any] = [o._op for o in outs if o._op is not None]
    while todo:
        node = todo.pop()
        node = node.node if type(node) is Port else node
        if node._op is node and id(node) not in nodes:  # an Op, not a leaf Tensor
            nodes[id(node)] = node
            todo.extend(node._parents)
    names = [n.name for n in sorted(nodes.values(), key=lambda n: n._seq)]
    return list(dict.fromkeys(names))


def gradgradcheck(fn: Callable[..., Any], inputs: Sequence[Any], grad_outputs: Any = None,
                  eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                  raise_exception: bool = True) -> bool:
    """Check second derivatives of fn against central differences in float64 (as torch).

    The first derivative v -> grad(fn(inputs), inputs, v, create_graph=True) is itself
    gradchecked, through a fixed random projection, with respect to every input that requires
    grad and every grad_output that does (random seeded float64 ones when None).
    Args:
        fn: maps the inputs to a Tensor or a tuple of Tensors.
        inputs: a Tensor or a list/tuple, as gradcheck's (checked as float64 copies).
        grad_outputs: None, or one Tensor/array per output, of its shape.
    Returns:
        True, or False / raises GradcheckError naming fn and the primitives in its graph, the
        input or grad_output, its shape, the worst element, analytic vs numeric and the error.
    """
    who = "gradgradcheck"
    _check_settings(who, eps, atol, rtol, raise_exception)
    inputs = _check_inputs(who, fn, inputs)
    name = getattr(fn, "__name__", "fn")
    previous = _tensor.get_default_dtype()
    _tensor.set_default_dtype(np.float64)
    try:
        xs = _float64_inputs(inputs, who)
        outs = _outputs(who, fn(*xs))
        if not all(np.isfinite(o._data).all() for o in outs if o.dtype.kind == "f"):
            raise ValueError(f"{who}: fn's output is not finite at these inputs, so its "
                             f"derivatives cannot be checked there")
        seeds = _grad_outputs(who, grad_outputs, outs)
        keep = [i for i, o in enumerate(outs) if o.requires_grad]
        if not keep:
            raise ValueError(f"{who}: no output of fn requires grad (made under no_grad or "
                             f"detached?), so it has no derivative to differentiate again")
        primitives = _primitives(outs)
        diff = [x for x in xs if isinstance(x, Tensor) and x.requires_grad]
        rng = np.random.default_rng(0)
        weights = [rng.standard_normal(x.shape) for x in diff]

        def projected(create_graph: bool) -> Tensor:
            """sum_i <d(sum <fn, seeds>)/d input_i, weights_i>: a scalar of inputs and seeds."""
            out = _outputs(who, fn(*xs))
            found = grad([out[i] for i in keep], diff, [seeds[i] for i in keep],
                         create_graph=create_graph, allow_unused=True)
            total = Tensor(np.zeros(()))
            for g, w in zip(found, weights):
                if g is not None:
                    total = total + (g * w).sum()
            return total

        def value() -> float:
            return float(projected(False)._data)
        first = projected(True)
        if not np.isfinite(first._data):
            raise ValueError(f"{who}: fn's gradient is not finite at these inputs, so its "
                             f"derivative cannot be checked there")
        check_deterministic(who, value)
        checked = [(f"input {i}", x) for i, x in enumerate(xs)
                   if isinstance(x, Tensor) and x.requires_grad]
        checked += [(f"grad_output {i}", seeds[i]) for i in keep
                    if isinstance(seeds[i], Tensor)]
        leaves = [x for _, x in checked]
        analytic = _arrays(grad(first, leaves, allow_unused=True) if first.requires_grad
                           else [None] * len(leaves), leaves)
        records = [_compare(k, a, numeric_grad(value, x._data, eps), atol, rtol, label)
                   for k, ((label, x), a) in enumerate(zip(checked, analytic))]
    finally:
        _tensor.set_default_dtype(previous)
    return _verdict(f"{who}: {name} (primitives: {', '.join(primitives)})", records,
                    raise_exception)


def _verdict(head: str, records: list[GradcheckRecord], raise_exception: bool,
             steps: Callable[[str], str] = lambda _: "") -> bool:
    """True when every record is within tolerance, else False or a GradcheckError listing
    each failing record (and the steps that used it) under `head`."""
    failures = [r for r in records if not r.ok]
    if not failures:
        return True
    if raise_exception:
        raise GradcheckError(head + ": " + "\n  ".join(r.describe() + steps(r.name)
                                                      for r in failures))
    return False


def gradgradcheck_module(module: Any, loss_fn: Callable[[], Tensor], directions: int = 3,
                         eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                         raise_exception: bool = True) -> bool:
    """Check Hessian-vector products of loss_fn() with respect to module's trainable parameters.

    Along `directions` seeded random directions v (over all parameters jointly), the recorded
    H v = grad(grad(loss) . v) is compared with central differences of the plain gradient,
    (g(theta + eps v) - g(theta - eps v)) / 2eps, in float64. The module comes back exactly as
    it was (arrays, dtypes, grads, training flags), also after an error.
    Returns:
        True, or False / raises GradcheckError with a line per failing parameter: name, shape,
        worst element, analytic vs numeric, and the steps t of a recurrent layer that used it.
    """
    who = "gradgradcheck_module"
    params, named = _module_params(who, module, loss_fn, (eps, atol, rtol, raise_exception))
    directions = check_size(who, "directions", directions, minimum=1)
    with float64_run(who, module, loss_fn, params) as (first, seen, _):
        tensors = [p for _, p in named]
        if all(g is None for g in grad(first, tensors, allow_unused=True)):
            raise ValueError(f"{who}: loss_fn's loss does not depend on any trainable parameter "
                             f"of {type(module).__name__}; compute it with the module")
        rng = np.random.default_rng(0)
        for k in range(directions):
            v = [rng.standard_normal(p.shape) for p in tensors]
            records = [_compare(k, a, n, atol, rtol, name) for name, a, n in zip(
                [n for n, _ in named], _hvp(loss_fn, tensors, v),
                _hvp_numeric(loss_fn, tensors, v, eps))]
            head = f"{who}: Hessian-vector product along random direction {k + 1} of {directions}"
            if not _verdict(head, records, raise_exception, lambda n: _steps_used(n, seen)):
                return False
        return True


def _gradients(loss_fn: Callable[[], Tensor], tensors: list[Tensor]) -> list[np.ndarray]:
    """d loss_fn() / d each tensor, on the numpy fast path (zeros where unused)."""
    return _arrays(grad(loss_fn(), tensors, allow_unused=True), tensors)


def _hvp(loss_fn: Callable[[], Tensor], tensors: list[Tensor],
         v: list[np.ndarray]) -> list[np.ndarray]:
    """H v blockwise: grad of (grad(loss) . v), the inner gradient recorded."""
    gs = grad(loss_fn(), tensors, create_graph=True, allow_unused=True)
    dot = Tensor(np.zeros(()))
    for g, vi in zip(gs, v):
        if g is not None:
            dot = dot + (g * vi).sum()
    if not dot.requires_grad:  # the gradient is a constant: the loss is linear
        return [np.zeros(p.shape) for p in tensors]
    return _arrays(grad(dot, tensors, allow_unused=True), tensors)


def _arrays(found: Sequence[Tensor | None], like: list[Tensor]) -> list[np.ndarray]:
    """The gradients' arrays, zeros of the matching tensor's shape where none arrived."""
    return [np.zeros(t.shape) if g is None else g._data for g, t in zip(found, like)]


def _hvp_numeric(loss_fn: Callable[[], Tensor], tensors: list[Tensor], v: list[np.ndarray],
                 eps: float) -> list[np.ndarray]:
    """(g(theta + eps v) - g(theta - eps v)) / 2eps, theta put back afterwards."""
    base = [p._data for p in tensors]
    sides = []
    try:
        for sign in (1.0, -1.0):
            for p, b, vi in zip(tensors, base, v):
                p._assign(b + sign * eps * vi)
            sides.append(_gradients(loss_fn, tensors))
    finally:
        for p, b in zip(tensors, base):
            p._assign(b)
    return [(plus - minus) / (2 * eps) for plus, minus in zip(*sides)]
