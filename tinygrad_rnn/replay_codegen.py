"""A recording compiled to one straight-line Python function (the fast path of a replay).

After its first replay a Recording (recording.py) knows everything about a step: the calls,
their order, and how each gradient was routed (set, added, added in place, merged as an
OuterGrad, or the general path). This file writes that down as Python source: each value and
each pending gradient is a local variable, each primitive call one line, each array dropped
with `del` after its last use (the liveness plan), so a replay pays one function call per
primitive and nothing per node, dict entry or branch.
"""

from __future__ import annotations

from typing import Any

from tinygrad_rnn import engine
from tinygrad_rnn.gradients import OuterGrad
from tinygrad_rnn.recording import IADD, OTHER, OUTER, SET, _Backward, _bind_values, _route


class _Source:
    """Lines of a function, and the namespace its constants live in."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.ns: dict[str, Any] = {"_OG": OuterGrad, "_acc": engine._accumulate_leaf,
                                   "_summed": engine._summed}
        self.line_call: dict[int, Any] = {}  # source line -> the call it runs
        self.cleared: set[int] = set()  # ops whose saved arrays a backward drops

    def const(self, obj: Any, prefix: str = "c") -> str:
        name = f"{prefix}{len(self.ns)}"
        self.ns[name] = obj
        return name

    def emit(self, line: str, call: Any = None) -> None:
        self.lines.append("    " + line)
        if call is not None:
            self.line_call[len(self.lines) + 1] = call  # +1: the def line comes first


def generate(rec: Any, traced: bool) -> tuple[Any, dict[int, Any]]:
    """The replay function of `rec`: fn(A, T, _T) -> {slot: array} for fn's returned slots.

    A: the argument arrays, T: the argument tensors (gradient targets), _T: a list receiving
    each call's output when `traced` (check=True). Also returns line -> call, to name the call
    an error came from."""
    src = _Source()
    src.ns["_route"], src.ns["_bind"] = _route, _bind_values
    for k in range(rec.n_args):
        src.emit(f"v{k} = A[{k}]")
    for slot, t in rec.leaves:
        src.emit(f"v{slot} = {src.const(t, 't')}._data")
    for n, (program, event) in enumerate(rec.segments):
        for *_, call in program:
            _emit_call(src, call, traced)
        if isinstance(event, _Backward):
            _emit_backward(src, rec, event, f"e{n}_")
        elif event is not None:
            src.emit(f"{src.const(event[1], 'h')}()")  # a host call: zero_grad
    for call in rec.calls:  # saved arrays no backward dropped: nothing outlives the step
        if call.keep and id(call.op) not in src.cleared:
            src.emit(f"{src.const(call.op.__dict__.clear, 'x')}()")
    returns = sorted(set(rec.return_slots()))
    src.emit("return {" + ", ".join(f"{s}: v{s}" for s in returns) + "}")
    code = "def replay(A, T, _T):\n" + "\n".join(src.lines) + "\n"
    rec.source = code  # for reading while debugging
    exec(compile(code, "<jit replay>", "exec"), src.ns)  # noqa: S102 (our own source)
    return src.ns["replay"], src.line_call


def _emit_call(src: _Source, call: Any, traced: bool) -> None:
    args = [f"v{s}" for s in call.ins]
    if call.bound:
        kw = (f"_bind({src.const(call.kwargs, 'k')}, {src.const(call.bound, 'b')}, "
              f"({', '.join(f'v{s}' for _, _, s in call.bound)},))")
        args.append(f"**{kw}")
    elif call.kwargs:
        args.append(f"**{src.const(call.kwargs, 'k')}")
    expr = f"{src.const(call.op.forward, 'f')}({', '.join(args)})"
    if type(call.outs) is int:
        src.emit(f"v{call.outs} = {expr}", call)
        if traced:
            src.emit(f"_T.append(v{call.outs})")
    else:
        src.emit(f"_o = {expr}", call)
        if call.outs:
            src.emit(", ".join(f"v{s}" for s in call.outs) + ", = _o")
        if traced:
            src.emit("_T.append(_o)")
    if not call.keep and call.holds:
        src.emit(f"{src.const(call.op.__dict__.clear, 'x')}()")
    if call.drop:
        src.emit("del " + ", ".join(f"v{s}" for s in call.drop))


def _emit_backward(src: _Source, rec: Any, ev: Any, prefix: str) -> None:
    """The sweep of one backward() along the routes its first replay noted."""
    routes_of: dict[int, list[int]] = {}  # id(key) -> the modes that routed into it
    for *_, routes, _clear, _op in ev.compiled:
        for _, key, mode in routes:
            routes_of.setdefault(id(key), []).append(mode)
    in_dict = {k for k, modes in routes_of.items() if OTHER in modes}  # the general path
    names: dict[int, str] = {}

    def name(key: Any) -> str:
        return names.setdefault(id(key), f"{prefix}g{len(names)}")

    src.emit("G = {}; O = set()")
    root = ev.root_key
    seed = (f"{src.const(ev.seed, 's')}.copy()" if ev.seed_slot is None
            else f"v{ev.seed_slot}.copy()")
    if id(root) in in_dict:
        src.emit(f"G[{src.const(root, 'K')}] = {seed}")
    else:
        src.emit(f"{name(root)} = {seed}")
    calls_of = {id(c.op): c for c in rec.calls}
    have = {id(root)}  # keys holding a gradient now
    cleared = src.cleared
    owned: set[int] = set()  # local keys whose array the sweep allocated
    for backward, out, routes, clear, op in ev.compiled:
        taken = [k for k in (out if type(out) is tuple else (out,))
                 if id(k) in have and id(k) not in in_dict]  # local names, freed after
        if type(out) is tuple:
            pieces = [_take(src, k, in_dict, name, have) for k in out]
            src.emit(f"_p = {src.const(backward, 'B')}([{', '.join(pieces)}])")
        else:
            g = _take(src, out, in_dict, name, have)
            if OUTER in routes_of.get(id(out), ()) or id(out) in in_dict:
                src.emit(f"_g = {g}")
                src.emit(f"if type(_g) is _OG: _g = _g.value().astype("
                         f"{src.const(out._dtype, 'd')}, copy=False)")
                g = "_g"
            src.emit(f"_p = {src.const(backward, 'B')}({g})")
        if taken:
            src.emit("del " + ", ".join(name(k) for k in taken))
        cleared.add(id(op))
        for pos, key, mode in routes:
            k = id(key)
            if k in in_dict:
                src.emit(f"_route(G, O, {src.const(key, 'K')}, _p[{pos}], {src.const(op, 'P')})")
            elif mode == SET or (mode == OUTER and k not in have):
                src.emit(f"{name(key)} = _p[{pos}]")
            elif mode == OUTER:
                src.emit(f"{name(key)} = {name(key)}.merge(_p[{pos}])")
            elif mode == IADD:
                src.emit(f"{name(key)} += _p[{pos}]")
            else:  # ADD: a fresh sum, which the sweep owns
                src.emit(f"{name(key)} = {name(key)} + _p[{pos}]")
                owned.add(k)
            have.add(k)
        if clear is not None:
            if calls_of[id(op)].holds:
                src.emit(f"{src.const(clear, 'x')}()")
        else:
            cleared.discard(id(op))  # retain_graph: kept for a later backward
    src.emit("_p = _g = None")
    for key, target in ev.leaves:
        k = id(key)
        if k not in have:
            continue
        leaf = f"T[{target}]" if type(target) is int else src.const(target, "t")
        dt = src.const(key._dtype, "d")
        if k in in_dict:
            src.emit(f"_g = G.pop({src.const(key, 'K')}, None)")
            src.emit("if _g is not None:")
            src.emit(f"    if type(_g) is _OG: _g = _summed(_g, {dt}); O.add({src.const(key, 'K')})")
            src.emit(f"    {leaf}.grad = _acc({leaf}.grad, _g, {src.const(key, 'K')} in O)")
            continue
        g = name(key)
        if OUTER in routes_of.get(k, ()):
            src.emit(f"{g} = _summed({g}, {dt})")
            owned.add(k)
        src.emit(f"{leaf}.grad = _acc({leaf}.grad, {g}, {k in owned})")
        src.emit(f"del {g}")
    src.emit("G = O = None")


def _take(src: _Source, key: Any, in_dict: set[int], name: Any, have: set[int]) -> str:
    """The expression handing over key's pending gradient (None if none arrived)."""
    k = id(key)
    if k not in have:
        return "None"
    have.discard(k)
    if k in in_dict:
        return f"G.pop({src.const(key, 'K')}, None)"
    return name(key)
