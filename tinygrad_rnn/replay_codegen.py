"""A recording compiled to one straight-line Python function (the fast path of a replay).

After its first replay a Recording (recording.py) knows everything about a step: the calls,
their order, and how each gradient was routed (set, added, added in place, merged as an
OuterGrad, or the general path). This file writes that down as Python source: each value and
each pending gradient is a local variable, each primitive call one line, each array dropped
with `del` after its last use (the liveness plan), so a replay pays one function call per
primitive and nothing per node, dict entry or branch. The commonest primitives are not even
called: replay_kernels.py writes their numpy calls out as lines.
"""

from __future__ import annotations

import re
from typing import Any

from tinygrad_rnn import engine, replay_kernels, shape_ops
from tinygrad_rnn.gradients import OuterGrad
from tinygrad_rnn.recording import IADD, OTHER, OUTER, SET, _Backward, _bind_values, _route

_SLOT = re.compile(r"\bv(\d+)\b")  # a slot's variable in a generated line
_KWARGS = [replay_kernels.KERNELS[shape_ops.Split]]  # the kernels that read kwargs (sizes, axis)


class _Source:
    """Lines of a function, and the namespace its constants live in."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, Any]] = []  # (statement, the call it runs or None)
        self.ns: dict[str, Any] = {"_OG": OuterGrad, "_acc": engine._accumulate_leaf,
                                   "_summed": engine._summed, **replay_kernels.NAMESPACE}
        self.cleared: set[int] = set()  # ops whose saved arrays a backward drops
        self.inline: set[int] = set()  # ops a kernel writes out (they hold nothing)
        self.kernel_emit = replay_kernels.Emit(self.emit, self.const)

    def const(self, obj: Any, prefix: str = "c") -> str:
        name = f"{prefix}{len(self.ns)}"
        self.ns[name] = obj
        return name

    def emit(self, line: str, call: Any = None) -> None:
        self.lines.append(("    " + line, call))

    def function(self) -> tuple[str, dict[int, Any]]:
        """The source with each slot's variable deleted after the statement of its last use
        (the liveness plan), and source line -> call."""
        lines = self.lines
        last: dict[str, int] = {}
        for i, (line, _) in enumerate(lines):
            for var in _SLOT.findall(line):
                last[var] = i
        dels: dict[int, list[str]] = {}
        for var, i in last.items():
            if i < len(lines) - 1:  # the return statement: nothing after it
                while i + 1 < len(lines) and lines[i + 1][0].startswith("     "):
                    i += 1  # the end of a block
                dels.setdefault(i, []).append(f"v{var}")
        out, line_call = ["def replay(A, T, _T):"], {}
        for i, (line, call) in enumerate(lines):
            out.append(line)
            if call is not None:
                line_call[len(out)] = call
            if i in dels:
                out.append("    del " + ", ".join(sorted(dels[i], key=lambda v: int(v[1:]))))
        return "\n".join(out) + "\n", line_call


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
            _emit_call(src, rec, call, traced)
        if isinstance(event, _Backward):
            _emit_backward(src, rec, event, f"e{n}_")
        elif event is not None:
            src.emit(f"{src.const(event[1], 'h')}()")  # a host call: zero_grad
    for call in rec.calls:  # saved arrays no backward dropped: nothing outlives the step
        if call.keep and id(call.op) not in src.cleared and id(call.op) not in src.inline:
            src.emit(f"{src.const(call.op.__dict__.clear, 'x')}()")
    returns = sorted(set(rec.return_slots()))
    src.emit("return {" + ", ".join(f"{s}: v{s}" for s in returns) + "}")
    code, line_call = src.function()
    rec.source = code  # for reading while debugging
    exec(compile(code, "<jit replay>", "exec"), src.ns)  # noqa: S102 (our own source)
    return src.ns["replay"], line_call


def _emit_call(src: _Source, rec: Any, call: Any, traced: bool) -> None:
    args = [f"v{s}" for s in call.ins]
    kernel = replay_kernels.KERNELS.get(type(call.op))
    outs = f"v{call.outs}" if type(call.outs) is int else [f"v{s}" for s in call.outs]
    if call.bound or (call.kwargs and kernel not in _KWARGS):
        kernel = None  # arrays bound in kwargs, or kwargs a kernel would not see: the Op runs
    if kernel is not None and kernel[0](
            _OneCall(src, call), call, [rec.specs[s] for s in call.ins], args, outs):
        src.inline.add(id(call.op))
        if traced:
            src.emit(f"_T.append({outs if type(outs) is str else '[' + ', '.join(outs) + ']'})")
        return
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
        src.emit("del _o")  # the list would keep its pieces (views: their base) alive
    if not call.keep and call.holds:
        src.emit(f"{src.const(call.op.__dict__.clear, 'x')}()")


class _OneCall(replay_kernels.Emit):
    """A kernel's emitter whose lines name `call` (an error on them names its op)."""

    def __init__(self, src: _Source, call: Any):
        super().__init__(lambda line: src.emit(line, call), src.const)


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
    queued: set[str] = set()  # the _q<pos> names kernels assigned a routed gradient to
    for backward, out, routes, clear, op in ev.compiled:
        call = calls_of[id(op)]
        inline = id(op) in src.inline
        taken = [k for k in (out if type(out) is tuple else (out,))
                 if id(k) in have and id(k) not in in_dict]  # local names, freed after
        g: Any
        if type(out) is tuple:
            g = [_take(src, k, in_dict, name, have) for k in out]
            if not inline:
                src.emit(f"_p = {src.const(backward, 'B')}([{', '.join(g)}])")
        else:
            g = _take(src, out, in_dict, name, have)
            if OUTER in routes_of.get(id(out), ()) or id(out) in in_dict:
                src.emit(f"_g = {g}")
                src.emit(f"if type(_g) is _OG: _g = _g.value().astype("
                         f"{src.const(out._dtype, 'd')}, copy=False)")
                g = "_g"
            if not inline:
                src.emit(f"_p = {src.const(backward, 'B')}({g})")
        direct = {pos for pos, key, mode in routes if id(key) not in in_dict and (
            mode == SET or (mode == OUTER and id(key) not in have))}
        if inline:  # the kernel assigns each gradient to its name, or to _q<pos> for a route
            targets: list[str | None] = [None] * len(call.ins)
            for pos, key, _ in routes:
                targets[pos] = name(key) if pos in direct else f"_q{pos}"
            ins = [f"v{s}" for s in call.ins]
            outs = f"v{call.outs}" if type(call.outs) is int else [f"v{s}" for s in call.outs]
            replay_kernels.KERNELS[type(op)][1](
                src.kernel_emit, call, [rec.specs[s] for s in call.ins], ins, outs, g, targets)
            queued.update(t for t in targets if t is not None and t.startswith("_q"))
        if taken:
            src.emit("del " + ", ".join(name(k) for k in taken))
        cleared.add(id(op))
        for pos, key, mode in routes:
            k = id(key)
            piece = f"_q{pos}" if inline else f"_p[{pos}]"
            if k in in_dict:
                src.emit(f"_route(G, O, {src.const(key, 'K')}, {piece}, {src.const(op, 'P')})")
            elif pos in direct:
                if not inline:
                    src.emit(f"{name(key)} = {piece}")
            elif mode == OUTER:
                src.emit(f"{name(key)} = {name(key)}.merge({piece})")
            elif mode == IADD:
                src.emit(f"{name(key)} += {piece}")
            else:  # ADD: a fresh sum, which the sweep owns
                src.emit(f"{name(key)} = {name(key)} + {piece}")
                owned.add(k)
            have.add(k)
        if clear is not None:
            if call.holds and not inline:
                src.emit(f"{src.const(clear, 'x')}()")
        else:
            cleared.discard(id(op))  # retain_graph: kept for a later backward
    src.emit(" = ".join(["_p", "_g", *sorted(queued)]) + " = None")
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
