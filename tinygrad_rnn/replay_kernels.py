"""The commonest primitives written out as lines of a generated replay (replay_codegen.py).

A replay of a recurrent step is some ten primitive calls per time step, each a few small
ufunc calls; calling the Op's methods adds a bound-method call, attribute stores for the saved
arrays, a dict clear and a gradient tuple per call. Here each of those primitives is the same
numpy calls, in the same order on the same operands (so the results are bit-identical), as
source lines on the replay's local variables: a saved array is the variable holding the input
or output it saved, kept alive until the backward line that reads it.

A kernel applies only where its eager forward would take the path it writes out (dtypes and
shapes are fixed by the recording's key); any other call runs its Op as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from tinygrad_rnn import ops, shape_ops
from tinygrad_rnn.gradients import OuterGrad

Spec = tuple[tuple[int, ...], np.dtype]  # an array's (shape, dtype)

# names the generated source reads: ufuncs without an attribute lookup
NAMESPACE: dict[str, Any] = {"_mul": np.multiply, "_add": np.add, "_sub": np.subtract,
                             "_tanh": np.tanh, "_concat": np.concatenate, "_OGrad": OuterGrad}


class Emit:
    """What a kernel writes with: `line` appends source, `const` names a constant."""

    def __init__(self, line: Callable[[str], None], const: Callable[[Any], str]):
        self.line, self.const = line, const


def _float(spec: Spec) -> bool:
    """A float array of at least one axis: a ufunc gives an ndarray, the constants exist."""
    return spec[0] != () and spec[1] in ops._ONE


def _adds_into(c: Spec, out_shape: tuple[int, ...], out_dtype: np.dtype) -> bool:
    """Whether ops._add_into(out, c) adds c into out (else it returns c + out)."""
    return (out_shape != () and c[1] == out_dtype and len(c[0]) <= len(out_shape)
            and c[0] == out_shape[len(out_shape) - len(c[0]):])


# ---- forward: fw(e, call, specs_of_inputs, input names, output name(s)) -> written? ----------

def _fw_add(e: Emit, call: Any, specs: list[Spec], x: list[str], out: str) -> bool:
    e.line(f"{out} = {x[0]} + {x[1]}")
    return True


def _fw_sub(e: Emit, call: Any, specs: list[Spec], x: list[str], out: str) -> bool:
    e.line(f"{out} = {x[0]} - {x[1]}")
    return True


def _fw_mul(e: Emit, call: Any, specs: list[Spec], x: list[str], out: str) -> bool:
    e.line(f"{out} = {x[0]} * {x[1]}")
    return True


def _fw_tanh(e: Emit, call: Any, specs: list[Spec], x: list[str], out: str) -> bool:
    if not _float(specs[0]):
        return False
    e.line(f"{out} = _tanh({x[0]})")
    return True


def _fw_sigmoid(e: Emit, call: Any, specs: list[Spec], x: list[str], out: str) -> bool:
    if not _float(specs[0]):
        return False
    dt = specs[0][1]
    half, one = e.const(ops._HALF[dt]), e.const(ops._ONE[dt])
    e.line(f"{out} = _mul({x[0]}, {half}); _tanh({out}, {out}); _add({out}, {one}, {out}); "
           f"_mul({out}, {half}, {out})")
    return True


def _fw_addmm(e: Emit, call: Any, specs: list[Spec], x: list[str], out: str) -> bool:
    c, a, b = specs
    if len(a[0]) != 2 or len(b[0]) != 2:
        return False
    product = (a[0][0], b[0][1])
    if _adds_into(c, product, np.result_type(a[1], b[1])):
        e.line(f"{out} = {x[1]} @ {x[2]}; {out} += {x[0]}")
    else:
        e.line(f"{out} = {x[0]} + {x[1]} @ {x[2]}")
    return True


def _fw_addcmul(e: Emit, call: Any, specs: list[Spec], x: list[str], out: str) -> bool:
    c, a, b = specs
    shape = np.broadcast_shapes(a[0], b[0])
    if _adds_into(c, shape, np.result_type(a[1], b[1])):
        e.line(f"{out} = {x[1]} * {x[2]}; {out} += {x[0]}")
    else:
        e.line(f"{out} = {x[0]} + {x[1]} * {x[2]}")
    return True


def _split_slices(call: Any, spec: Spec) -> tuple[int, list[tuple]] | None:
    """(axis, one index tuple per piece) of a recorded split, or None if its kwargs are not
    the plain (sizes, axis) a recording keys by value."""
    kwargs = dict(call.kwargs)
    sizes, axis = kwargs.pop("sizes", None), kwargs.pop("axis", 0)
    if kwargs or call.bound or type(axis) is not int or sizes is None:
        return None
    axis %= len(spec[0])
    lead, start, index = (slice(None),) * axis, 0, []
    for size in sizes:
        index.append(lead + (slice(start, start + int(size)),))
        start += int(size)
    return axis, index


def _fw_split(e: Emit, call: Any, specs: list[Spec], x: list[str], out: list[str]) -> bool:
    plan = _split_slices(call, specs[0])
    if plan is None:
        return False
    e.line("; ".join(f"{o} = {x[0]}[{e.const(ix)}]" for o, ix in zip(out, plan[1])))
    return True


# ---- backward: bw(e, call, specs, input names, output name, g, targets) -----------------------
# targets[i]: the name input i's gradient is assigned to, or None where no gradient is routed

def _assign(e: Emit, targets: list[str | None], exprs: list[str]) -> None:
    e.line("; ".join(f"{t} = {x}" for t, x in zip(targets, exprs) if t is not None))


def _bw_add(e: Emit, call: Any, specs: list[Spec], x: list[str], out: str, g: str,
            targets: list[str | None]) -> None:
    _assign(e, targets, [g, g])


def _bw_sub(e: Emit, call: Any, specs: list[Spec], x: list[str], out: str, g: str,
            targets: list[str | None]) -> None:
    _assign(e, targets, [g, f"-{g}"])


def _bw_mul(e: Emit, call: Any, specs: list[Spec], x: list[str], out: str, g: str,
            targets: list[str | None]) -> None:
    _assign(e, targets, [f"{g} * {x[1]}", f"{g} * {x[0]}"])


def _bw_addcmul(e: Emit, call: Any, specs: list[Spec], x: list[str], out: str, g: str,
                targets: list[str | None]) -> None:
    _assign(e, targets, [g, f"{g} * {x[2]}", f"{g} * {x[1]}"])


def _bw_addmm(e: Emit, call: Any, specs: list[Spec], x: list[str], out: str, g: str,
              targets: list[str | None]) -> None:
    _assign(e, targets, [g, f"{g} @ {x[2]}.T", f"_OGrad({x[1]}, {g})"])


def _bw_activation(e: Emit, specs: list[Spec], targets: list[str | None], line: str) -> None:
    """An activation's backward `line`, formatted with t (the gradient's name) and one."""
    if targets[0] is not None:
        e.line(line.format(t=targets[0], one=e.const(ops._ONE[specs[0][1]])))


def _bw_tanh(e: Emit, call: Any, specs: list[Spec], x: list[str], out: str, g: str,
             targets: list[str | None]) -> None:
    _bw_activation(e, specs, targets, f"{{t}} = {out} * {out}; _sub({{one}}, {{t}}, {{t}}); "
                                      f"{{t}} *= {g}")


def _bw_sigmoid(e: Emit, call: Any, specs: list[Spec], x: list[str], out: str, g: str,
                targets: list[str | None]) -> None:
    _bw_activation(e, specs, targets, f"{{t}} = _sub({{one}}, {out}); {{t}} *= {out}; "
                                      f"{{t}} *= {g}")


def _bw_split(e: Emit, call: Any, specs: list[Spec], x: list[str], out: list[str],
              g: list[str], targets: list[str | None]) -> None:
    t = targets[0]
    if t is None:
        return
    axis, index = _split_slices(call, specs[0])  # type: ignore[misc]  # fw_split checked it
    shape, dtype = specs[0]
    pieces = []
    for piece, ix in zip(g, index):
        if piece == "None":  # an unused piece: zeros, as Split.backward (concatenate copies)
            size = ix[axis].stop - ix[axis].start
            piece = e.const(np.zeros(shape[:axis] + (size,) + shape[axis + 1:], dtype))
        pieces.append(piece)
    e.line(f"{t} = _concat([{', '.join(pieces)}], axis={axis})")


KERNELS: dict[type, tuple[Callable[..., bool], Callable[..., None]]] = {
    ops.Add: (_fw_add, _bw_add),
    ops.Sub: (_fw_sub, _bw_sub),
    ops.Mul: (_fw_mul, _bw_mul),
    ops.Tanh: (_fw_tanh, _bw_tanh),
    ops.Sigmoid: (_fw_sigmoid, _bw_sigmoid),
    ops.AddMM: (_fw_addmm, _bw_addmm),
    ops.AddCMul: (_fw_addcmul, _bw_addcmul),
    shape_ops.Split: (_fw_split, _bw_split),
}
