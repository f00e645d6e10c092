"""A recorded step: the primitive calls and backward plans of one eager run, replayed on new
arrays without Tensors or graph nodes (jit.py decides when; this file records and replays).

Values live in numbered slots: the step's argument arrays, leaf Tensors read afresh at each
replay (parameters, constants), and every primitive call's output(s). A call is its Op
(created once, reused at every replay), its input slots, its kwargs (arrays in them bound to
slots by identity) and its output slot(s). A backward is the engine's sweep (engine.py) over
the calls it visited, with gradients keyed by slot: the same routing, the same sums, so the
results equal the eager run's. A slot's array is dropped after its last forward use and an
op's saved arrays after its backward (the liveness plan): peak memory is the eager step's.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np

from tinygrad_rnn import engine
from tinygrad_rnn.gradients import OuterGrad
from tinygrad_rnn.nn.module import Module, Parameter
from tinygrad_rnn.settings import current_scope


class Unreplayable(Exception):
    """Raised inside a recording by what a replay cannot reproduce; its message says what."""


class _Key:
    """A gradient's destination at replay: an op output's slot or a leaf; shaped as a node,
    so engine._accumulate routes into it exactly as it routes into a graph node."""

    __slots__ = ("_dtype", "_shape", "port")

    def __init__(self, shape: tuple[int, ...], dtype: np.dtype, port: bool = False):
        self._shape, self._dtype, self.port = shape, dtype, port


class _Call:
    __slots__ = ("bound", "drop", "holds", "in_keys", "ins", "keep", "kwargs", "name", "op",
                 "outs", "scope")

    def __init__(self, op: Any, ins: list[int], kwargs: dict, bound: list, outs: Any,
                 in_keys: list, scope: tuple) -> None:
        self.op, self.ins, self.kwargs, self.bound, self.outs = op, ins, kwargs, bound, outs
        self.in_keys, self.scope, self.name = in_keys, scope, type(op).name
        self.drop: tuple[int, ...] = ()  # slots whose last forward use is this call
        self.keep = False  # a backward reads this op's saved arrays
        self.holds = True  # its forward keeps arrays (not only shapes): drop them after use


class _Backward:
    """One `backward()` of the step: after call `at`, from slot `root` (a port piece when the
    root is one output of a multi-output op), seeded with `seed`."""

    def __init__(self, at: int, root: int, seed: np.ndarray, retain: bool, plan: list[int],
                 leaves: list[tuple[_Key, Any]]):
        self.at, self.root, self.seed, self.retain = at, root, seed, retain
        self.plan, self.leaves = plan, leaves
        self.root_key: Any = None  # set by Recorder.finish
        self.seed_slot: int | None = None  # backward(grad) with a grad the step reads
        self.compiled: list | None = None  # the routes, noted by the first replay


class Recording:
    """What one eager run of a step did, and how to do it again (see the module docstring).

    Built by a Recorder installed as tensor._TRACE while the step runs eagerly."""

    def __init__(self, n_args: int):
        self.n_args = n_args
        self.leaves: list[tuple[int, Any]] = []  # (slot, Tensor): read t._data at each replay
        self.calls: list[_Call] = []
        self.events: list[Any] = []  # _Backward, or a callable (zero_grad) after a call
        self.keys: list[_Key | None] = []  # per slot: its gradient key, None if no grad flows
        self.specs: list[tuple[tuple[int, ...], np.dtype]] = []  # per slot: (shape, dtype)
        self.n_slots = n_args
        self.returns: Any = None  # fn's result, with slots (ints) in place of Tensors
        self.modules: list[Any] = []  # the modules called (jit.py keys on their settings_of)
        self.leaf_state: list[tuple[Any, bool, tuple, Any]] = []  # (leaf, grad?, shape, dtype)
        self.generators: list[Any] = []  # what dropout masks draw from (check=True rewinds)
        self.segments: list[tuple[list[tuple], Any]] = []  # compile(): programs and events
        self._fast: dict[bool, tuple[Any, dict[int, Any]]] = {}  # replay_codegen's, by traced
        self.source = ""  # the generated replay function's Python source, once written

    # ---- replay -----------------------------------------------------------------------------
    def run(self, arrays: list[np.ndarray], arg_tensors: list[Any],
            trace: list | None = None) -> Any:
        """Replay on the argument arrays (flattened as recorded); returns the values of fn's
        result (slots filled), after every backward has added into its leaves' `.grad`.
        `trace`, if given, receives each call's output (check=True compares them)."""
        fast = self._fast.get(trace is not None)
        if fast is None and trace is not None and self._fast:  # check=True: written on demand
            from tinygrad_rnn.replay_codegen import generate
            fast = self._fast[True] = generate(self, traced=True)
        if fast is not None:
            return self._run_generated(fast, arrays, arg_tensors, trace)
        values: list[Any] = [None] * self.n_slots
        values[:self.n_args] = arrays
        for slot, t in self.leaves:
            values[slot] = t._data
        try:
            for program, event in self.segments:
                _forward(program, values, trace)
                if event is not None:
                    self._event(event, values, arg_tensors)
        except _CallFailed as failed:
            raise _named(failed.err, failed.call) from None
        finally:
            for c in self.calls:  # nothing of this step outlives it, as in eager mode
                if c.keep:
                    c.op.__dict__.clear()
        if all(ev.compiled is not None for ev in self.events if isinstance(ev, _Backward)):
            from tinygrad_rnn.replay_codegen import generate
            self._fast[False] = generate(self, traced=False)
        return values

    def _run_generated(self, fast: tuple[Any, dict[int, Any]], arrays: list[np.ndarray],
                       arg_tensors: list[Any], trace: list | None) -> Any:
        replay, line_call = fast
        try:
            return replay(arrays, arg_tensors, trace)
        except (ValueError, IndexError, TypeError) as err:
            tb, call = err.__traceback__, None
            while tb is not None:
                if tb.tb_frame.f_code.co_filename == "<jit replay>":
                    call = line_call.get(tb.tb_lineno)
                tb = tb.tb_next
            for c in self.calls:
                c.op.__dict__.clear()
            if call is None:
                raise
            raise _named(err, call) from None

    def return_slots(self) -> list[int]:
        return _slots_in(self.returns)

    def compile(self) -> None:
        """Split the calls at the events into straight-line programs of plain tuples."""
        self.segments = []
        program: list[tuple] = []
        events = iter(self.events)
        event = next(events, None)
        for i, call in enumerate(self.calls):
            while event is not None and _at(event) == i:
                self.segments.append((program, event))
                program, event = [], next(events, None)
            kwargs = call.kwargs
            program.append((call.op.forward, tuple(call.ins), kwargs, call.bound, call.outs,
                            None if call.keep else call.op.__dict__.clear, call.drop, call))
        while event is not None:
            self.segments.append((program, event))
            program, event = [], next(events, None)
        self.segments.append((program, None))

    def _event(self, event: Any, values: list, arg_tensors: list[Any]) -> None:
        if isinstance(event, _Backward):  # the interpreter runs only a recording's first replay
            self._backward_logged(event, values, arg_tensors)
        else:
            event[1]()  # (at, host call): a zero_grad inside the step

    def _backward_logged(self, ev: _Backward, values: list, arg_tensors: list[Any]) -> None:
        """engine._sweep over the recorded plan (same order, routing and sums), noting how
        each gradient was routed: replay_codegen writes later replays along those notes."""
        root_key = self.keys[ev.root]
        seed = ev.seed if ev.seed_slot is None else values[ev.seed_slot]
        grads: dict[Any, Any] = {root_key: seed.copy()}
        owned: set[Any] = set()
        compiled = []
        for ci in ev.plan:
            call = self.calls[ci]
            outs = call.outs
            if type(outs) is int:
                out: Any = self.keys[outs]
                g = grads.pop(out, None)
                if g is None:
                    continue
                if type(g) is OuterGrad:
                    g = g.value().astype(out._dtype, copy=False)
            else:
                out = tuple(self.keys[s] for s in outs)
                g = [grads.pop(k, None) for k in out]
                if all(x is None for x in g):
                    continue
            op = call.op
            routes = []
            for pos, (key, pg) in enumerate(zip(call.in_keys, op.backward(g))):
                if pg is None or key is None:
                    continue
                mode = _route(grads, owned, key, pg, op)
                routes.append((pos, key, mode))
            clear = None if ev.retain else op.__dict__.clear
            if clear is not None:
                clear()
            compiled.append((op.backward, out, tuple(routes), clear, op))
        _to_leaves(ev, grads, owned, arg_tensors)
        ev.compiled = compiled


class _CallFailed(Exception):
    def __init__(self, err: Exception, call: _Call):
        super().__init__(str(err))
        self.err, self.call = err, call


def _named(err: Exception, call: _Call) -> Exception:
    """`err` raised by a replayed primitive, of its own type where it can be rebuilt from a
    message (ClassIndexError stays one), naming the op and its scope as an eager call does."""
    message = f"{call.name}: {err} (replayed by jit, scope {'/'.join(call.scope) or 'top'})"
    try:
        return type(err)(message)
    except TypeError:  # an exception type that takes other arguments
        kind = next(k for k in (IndexError, TypeError, ValueError) if isinstance(err, k))
        return kind(message)


def _forward(program: list[tuple], values: list, trace: list | None) -> None:
    """One straight-line run of primitive calls; an error comes out as _CallFailed."""
    call = None
    try:
        for forward, ins, kwargs, bound, outs, clear, drop, call in program:
            if bound:
                kwargs = _bind(kwargs, bound, values)
            n = len(ins)
            if n == 1:
                out = forward(values[ins[0]], **kwargs)
            elif n == 2:
                out = forward(values[ins[0]], values[ins[1]], **kwargs)
            else:
                out = forward(*[values[s] for s in ins], **kwargs)
            if type(outs) is int:
                values[outs] = out
            else:
                for s, piece in zip(outs, out):
                    values[s] = piece
            if trace is not None:
                trace.append(out)
            if clear is not None:
                clear()
            for s in drop:
                values[s] = None
    except (ValueError, IndexError, TypeError) as err:
        if call is None:
            raise
        raise _CallFailed(err, call) from None


SET, IADD, ADD, OUTER, OTHER = 0, 1, 2, 3, 4  # how a gradient was routed (see _route)


def _route(grads: dict, owned: set, key: _Key, pg: Any, op: Any) -> int:
    """Add `pg` into key's pending gradient as engine._sweep does; returns which way."""
    pending = grads.get(key)
    plain = type(pg) is np.ndarray and pg.shape == key._shape and pg.dtype == key._dtype
    if key.port:  # as engine._accumulate_port: dense, summed out of place
        if pending is None and plain:
            grads[key] = pg
            return SET
        pg = engine._densify(pg, key._shape, key._dtype, op)
        grads[key] = pg if pending is None else pending + pg
        return OTHER
    if type(pg) is OuterGrad and (pending is None or type(pending) is OuterGrad):
        grads[key] = pg if pending is None else pending.merge(pg)
        return OUTER
    if not plain or pg.shape != key._shape or (
            pg.dtype is not key._dtype and pg.dtype != key._dtype):
        engine._accumulate(grads, owned, key, pg, op)
        return OTHER
    if pending is None:
        grads[key] = pg
        return SET
    if key in owned:
        pending += pg
        return IADD
    if type(pending) is not np.ndarray:
        grads[key] = engine._summed(pending, key._dtype) + pg
        owned.add(key)
        return OTHER
    grads[key] = pending + pg
    owned.add(key)
    return ADD


def _to_leaves(ev: _Backward, grads: dict, owned: set, arg_tensors: list[Any]) -> None:
    for key, target in ev.leaves:
        g = grads.pop(key, None)
        if type(g) is OuterGrad:
            g = engine._summed(g, key._dtype)
            owned.add(key)
        if g is not None:
            leaf = arg_tensors[target] if type(target) is int else target
            leaf.grad = engine._accumulate_leaf(leaf.grad, g, key in owned)


def _at(event: Any) -> int:
    return event.at if isinstance(event, _Backward) else event[0]


def _bind(kwargs: dict, bound: list, values: list) -> dict:
    """kwargs with the recorded arrays replaced by this replay's (by slot)."""
    return _bind_values(kwargs, bound, tuple(values[s] for _, _, s in bound))


def _bind_values(kwargs: dict, bound: list, arrays: tuple) -> dict:
    """kwargs with the recorded arrays replaced by `arrays` (one per entry of `bound`)."""
    kwargs = dict(kwargs)
    for (name, pos, _), arr in zip(bound, arrays):
        if pos is None:
            kwargs[name] = arr
        else:
            items = list(kwargs[name])
            items[pos] = arr
            kwargs[name] = tuple(items)
    return kwargs


class Recorder:
    """Installed as tensor._TRACE while a step runs eagerly: told of every primitive call,
    backward, zero_grad and module call, it builds a Recording (or notes why it cannot)."""

    def __init__(self, arg_arrays: list[np.ndarray], arg_tensors: list[Any],
                 keep_outputs: bool = False):
        self.rec = Recording(len(arg_arrays))
        self.slot_of: dict[int, int] = {}  # id(array) -> slot; `held` keeps the ids unique
        self.held: list[Any] = list(arg_arrays)
        self.leaf_key: dict[int, _Key] = {}  # id(leaf Tensor) -> its gradient key
        self.leaf_slot: dict[int, int] = {}  # id(leaf Tensor) -> its value slot
        self.op_call: dict[int, int] = {}  # id(Op) -> call index
        self.arg_of_tensor = {id(t): k for k, t in enumerate(arg_tensors) if t is not None}
        self.reason: str | None = None
        self.outputs: list[Any] | None = [] if keep_outputs else None
        self.rec.keys = [None] * len(arg_arrays)
        self.rec.specs = [(a.shape, a.dtype) for a in arg_arrays]
        for k, a in enumerate(arg_arrays):
            self.slot_of[id(a)] = k
        for k, t in enumerate(arg_tensors):
            if t is not None and t.requires_grad:
                key = self.leaf_key[id(t)] = _Key(t._data.shape, t._data.dtype)
                self.rec.keys[k] = key

    def unreplayable(self, reason: str) -> None:
        if self.reason is None:
            self.reason = reason

    # ---- told by tensor.apply & co (an error here must not break the eager run) -------------
    def record(self, op: Any, inputs: Any, kwargs: dict, out: Any) -> None:
        if self.reason is None:
            try:
                self._record(op, inputs, kwargs, out)
            except Unreplayable as err:
                self.reason = str(err)

    def backward(self, root: Any, seed: np.ndarray, retain_graph: bool) -> None:
        if self.reason is None:
            try:
                self._backward(root, seed, retain_graph)
            except Unreplayable as err:
                self.reason = str(err)

    def _record(self, op: Any, inputs: Any, kwargs: dict, out: Any) -> None:
        rec = self.rec
        ins, in_keys = [], []
        for t in inputs:
            ins.append(self._slot_for_input(t))
            in_keys.append(self._grad_key(t) if t.requires_grad else None)
        bound: list[tuple[str, int | None, int]] = []
        for name, v in kwargs.items():
            if type(v) is np.ndarray and id(v) in self.slot_of:
                bound.append((name, None, self.slot_of[id(v)]))
            elif type(v) is tuple:
                for pos, item in enumerate(v):
                    if type(item) is np.ndarray and id(item) in self.slot_of:
                        bound.append((name, pos, self.slot_of[id(item)]))
        fresh = type(op)()
        fresh.needs = op.needs
        holds = any(_has_array(v) for v in op.__dict__.values())
        if type(out) is list:
            outs: Any = tuple(self._new_slot(piece, port=True) for piece in out)
            recorded = bool(out) and out[0]._op is not None
        else:
            outs = self._new_slot(out, port=False)
            recorded = out._op is not None
        call = _Call(fresh, ins, dict(kwargs), bound, outs, in_keys, current_scope())
        call.holds = holds
        if not recorded:
            call.in_keys = [None] * len(ins)
        self.op_call[id(op)] = len(rec.calls)
        self.held.append(op)
        rec.calls.append(call)
        if type(op).name == "dropout_mask":
            rec.generators.append(kwargs.get("rng"))
        if self.outputs is not None:
            self.outputs.append([t._data for t in out] if type(out) is list else out._data)

    def _new_slot(self, t: Any, port: bool) -> int:
        rec = self.rec
        slot = rec.n_slots
        rec.n_slots += 1
        self.slot_of[id(t._data)] = slot
        self.held.append(t._data)
        rec.keys.append(_Key(t._data.shape, t._data.dtype, port) if t.requires_grad else None)
        rec.specs.append((t._data.shape, t._data.dtype))
        return slot

    def _slot_for_input(self, t: Any) -> int:
        if t._op is None and t.requires_grad and id(t) not in self.arg_of_tensor:
            slot = self.leaf_slot.get(id(t))  # a parameter: its own slot, read afresh, also
            return self._new_leaf(t) if slot is None else slot  # when an argument shares it
        slot = self.slot_of.get(id(t._data))
        if slot is not None:
            return slot
        if t._op is not None:
            raise Unreplayable("an input carries a graph made outside the step (computed with "
                               "grad before the call): pass it detached, or make it inside")
        return self._new_leaf(t)

    def _new_leaf(self, t: Any) -> int:
        """A slot for leaf `t` (a parameter, a constant), read from t._data at each replay."""
        rec = self.rec
        slot = rec.n_slots
        rec.n_slots += 1
        rec.keys.append(None)
        rec.specs.append((t._data.shape, t._data.dtype))
        self.slot_of.setdefault(id(t._data), slot)  # an argument keeps its own binding
        self.leaf_slot[id(t)] = slot
        self.held.extend((t, t._data))
        rec.leaves.append((slot, t))
        return slot

    def _grad_key(self, t: Any) -> _Key | None:
        """The gradient key of input `t`: its op output's slot key, or its leaf key."""
        if t._op is not None:
            return self.rec.keys[self.slot_of[id(t._data)]]
        key = self.leaf_key.get(id(t))
        if key is None:
            key = self.leaf_key[id(t)] = _Key(t._data.shape, t._data.dtype)
            self.held.append(t)
        return key

    # ---- told by Tensor.backward, zero_grad, Module.__call__ ----------------------------------
    def _backward(self, root: Any, seed: np.ndarray, retain_graph: bool) -> None:
        rec = self.rec
        slot = self.slot_of.get(id(root._data))
        if root._op is None or slot is None:
            raise Unreplayable("backward() from a tensor the step did not compute")
        order = engine.toposort(root)
        plan, leaves = [], []
        for node in order:
            if node._op is node:  # an Op
                ci = self.op_call.get(id(node))
                if ci is None:
                    raise Unreplayable("backward() through ops recorded outside the step")
                plan.append(ci)
                rec.calls[ci].keep = True
            else:
                target: Any = self.arg_of_tensor.get(id(node), node)
                leaves.append((cast(_Key, self._grad_key(node)), target))
        plan.sort(reverse=True)
        event = _Backward(len(rec.calls), slot, seed.copy(), retain_graph, plan, leaves)
        event.seed_slot = self.slot_of.get(id(seed))  # backward(grad): grad read afresh
        rec.events.append(event)

    def host(self, call: Any) -> None:
        """A host call (zero_grad) the replay repeats at this point of the step."""
        self.rec.events.append((len(self.rec.calls), call))

    def module(self, mod: Any) -> None:
        if getattr(mod, "stateful", False) is True:
            self.unreplayable(f"{type(mod).__name__} is stateful (its state carries from one "
                              f"call to the next)")
        if getattr(mod, "step_observers", None):
            self.unreplayable(f"{type(mod).__name__} has step observers")
        for _, m in mod.named_modules():  # a layer calls its cells' step directly
            if all(m is not seen for seen in self.rec.modules):
                self.rec.modules.append(m)

    # ---- the end ----------------------------------------------------------------------------
    def finish(self, result: Any) -> Recording:
        """Bind fn's result to slots, and plan when each slot's array can be dropped."""
        rec = self.rec
        rec.returns = _map_returns(result, self._slot_for_return)
        last: dict[int, int] = {}
        for i, call in enumerate(rec.calls):
            for s in call.ins:
                last[s] = i
            for _, _, s in call.bound:
                last[s] = i
        live = set(_slots_in(rec.returns))
        for ev in rec.events:
            if isinstance(ev, _Backward):
                live.add(ev.root)
                if ev.seed_slot is not None:
                    live.add(ev.seed_slot)
        drops: dict[int, list[int]] = {}
        for s, i in last.items():
            if s >= rec.n_args and s not in live:
                drops.setdefault(i, []).append(s)
        for i, slots in drops.items():
            rec.calls[i].drop = tuple(slots)
        for ev in rec.events:
            if isinstance(ev, _Backward):
                ev.root_key = rec.keys[ev.root]
        rec.leaf_state = [(t, t.requires_grad, t._data.shape, t._data.dtype)
                          for _, t in rec.leaves]
        rec.compile()
        return rec

    def _slot_for_return(self, t: Any) -> int:
        slot = self.slot_of.get(id(t._data))
        if slot is None:
            slot = self._slot_for_input(t)  # a parameter or a constant returned as it is
        return slot


_PLAIN = (bool, int, float, str, type(None))
# by identity: dropout's generators, and the parameters and sub-modules (a replaced layer)
_BY_IDENTITY = (np.random.Generator, np.random.RandomState, Parameter, Module)


def settings_of(mod: Any) -> tuple:
    """A module's plain attributes (training, a dropout rate, flags), and its generators,
    parameters and sub-modules by identity, as a comparable tuple: a recording read them, so
    a change (model.eval(), a new rate or generator, a layer or Parameter replaced) must record
    again."""
    return tuple([(k, v if type(v) in _PLAIN else id(v)) for k, v in vars(mod).items()
                  if type(v) in _PLAIN or isinstance(v, _BY_IDENTITY)])


def _has_array(value: Any) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_has_array(v) for v in value)
    return isinstance(value, np.ndarray)


def _map_returns(result: Any, slot_for: Any) -> Any:
    from tinygrad_rnn.tensor import Tensor
    if isinstance(result, Tensor):
        return slot_for(result)
    if result is None:
        return None
    if isinstance(result, (tuple, list)):
        mapped = [_map_returns(r, slot_for) for r in result]
        return ("tuple" if isinstance(result, tuple) else "list", mapped)
    if isinstance(result, dict):
        return ("dict", {k: _map_returns(v, slot_for) for k, v in result.items()})
    raise Unreplayable(f"fn returned a {type(result).__name__}; a replayed step returns Tensors "
                       f"(or None, or tuples, lists and dicts of them): a Python value would be "
                       f"the recording's, frozen")


def _slots_in(mapped: Any) -> list[int]:
    if type(mapped) is int:
        return [mapped]
    if mapped is None:
        return []
    kind, inner = mapped
    items = inner.values() if kind == "dict" else inner
    return [s for m in items for s in _slots_in(m)]


def build_returns(mapped: Any, values: list) -> Any:
    """fn's result at replay: Tensors around this replay's arrays (no grad, no graph)."""
    from tinygrad_rnn.tensor import _wrap
    if type(mapped) is int:
        return _wrap(values[mapped])
    if mapped is None:
        return None
    kind, inner = mapped
    if kind == "dict":
        return {k: build_returns(v, values) for k, v in inner.items()}
    items = [build_returns(m, values) for m in inner]
    return tuple(items) if kind == "tuple" else items
