"""Hypothesis strategies: one small, named case generator per primitive in the registry.

`op_case(name)` draws float64 inputs inside the op's domain (broadcast pairs included) and the
keyword arguments the op takes. A primitive without an entry here fails the registry test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import hypothesis.extra.numpy as hnp
import numpy as np
from hypothesis import strategies as st

from tinygrad_rnn import Tensor
from tinygrad_rnn.ops import OPS

SHAPES = st.sampled_from([(), (3,), (2, 3), (1, 3), (4, 1, 3)])
BROADCAST_PAIRS = st.sampled_from([
    ((), (2, 3)), ((3,), (2, 3)), ((2, 3), (1, 3)), ((4, 1, 3), (2, 3)), ((1, 3), (4, 1, 3)),
    ((2, 3), ()), ((4, 1, 3), (3,)),
])


@dataclass
class Case:
    tensors: list[Tensor]
    kwargs: dict[str, Any] = field(default_factory=dict)


def values(shape, domain, *, away_from=(), unique=False):
    """float64 arrays in `domain`, optionally at least 0.05 away from kinks such as 0."""
    lo, hi = domain
    elems = st.floats(lo, hi, allow_nan=False, allow_subnormal=False)
    if away_from:
        elems = elems.filter(lambda v: all(abs(v - k) > 0.05 for k in away_from))
    return hnp.arrays(np.float64, shape, elements=elems, unique=unique)


def leaf(arr) -> Tensor:
    return Tensor(arr, requires_grad=True)


@st.composite
def unary(draw, op, away_from=()):
    return Case([leaf(draw(values(draw(SHAPES), op.domain, away_from=away_from)))])


@st.composite
def binary(draw, op):
    sx, sy = draw(st.one_of(BROADCAST_PAIRS, hnp.mutually_broadcastable_shapes(
        num_shapes=2, max_dims=3, max_side=3).map(lambda s: s.input_shapes)))
    return Case([leaf(draw(values(sx, op.domain))), leaf(draw(values(sy, op.domain)))])


@st.composite
def matmul(draw, op):
    n, k, m = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sx, sy = draw(st.sampled_from([((n, k), (k, m)), ((2, n, k), (k, m)), ((k,), (k, m)),
                                   ((n, k), (k,)), ((k,), (k,)), ((2, 1, n, k), (3, k, m))]))
    return Case([leaf(draw(values(sx, op.domain))), leaf(draw(values(sy, op.domain)))])


@st.composite
def addmm(draw, op):
    n, k, m = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    sc = draw(st.sampled_from([(n, m), (m,), (1, m), (n, 1), ()]))  # broadcast to (n, m)
    return Case([leaf(draw(values(s, op.domain))) for s in (sc, (n, k), (k, m))])


@st.composite
def ternary(draw, op):
    """Three mutually broadcastable float inputs (addcmul)."""
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=3, max_dims=3, max_side=3))
    return Case([leaf(draw(values(s, op.domain))) for s in shapes.input_shapes])


@st.composite
def where(draw, op):
    sc, sa = draw(BROADCAST_PAIRS)
    cond = Tensor(draw(hnp.arrays(bool, sc)))
    return Case([cond, leaf(draw(values(sa, op.domain))), leaf(draw(values(sc, op.domain)))])


@st.composite
def clip(draw, op):
    lo, hi = draw(st.sampled_from([(-0.5, 0.5), (None, 0.3), (-0.3, None)]))
    kinks = tuple(b for b in (lo, hi) if b is not None)
    return Case([leaf(draw(values(draw(SHAPES), op.domain, away_from=kinks)))],
                {"lo": lo, "hi": hi})


@st.composite
def axis_and_keepdims(draw, ndim):
    axis = draw(st.one_of(st.none(), st.integers(-ndim, ndim - 1) if ndim else st.none(),
                          st.lists(st.integers(0, max(ndim - 1, 0)), min_size=1, max_size=ndim,
                                   unique=True).map(tuple) if ndim else st.none()))
    return {"axis": axis, "keepdims": draw(st.booleans())}


@st.composite
def reduction(draw, op, unique=False):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=3))
    if unique:  # values on a 0.1 grid: no ties and no near-ties within eps for max
        grid = st.integers(int(op.domain[0] * 10), int(op.domain[1] * 10)).map(lambda i: i / 10)
        x = draw(hnp.arrays(np.float64, shape, elements=grid, unique=True))
    else:
        x = draw(values(shape, op.domain))
    return Case([leaf(x)], draw(axis_and_keepdims(len(shape))))


@st.composite
def reshape(draw, op):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=3))
    target = draw(st.sampled_from([(-1,), tuple(reversed(shape)), (1,) + shape]))
    return Case([leaf(draw(values(shape, op.domain)))], {"shape": target})


@st.composite
def transpose(draw, op):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=3))
    perm = draw(st.permutations(range(len(shape))))
    negate = draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)))
    axes = tuple(a - len(shape) if neg else a for a, neg in zip(perm, negate))  # -1 is last
    return Case([leaf(draw(values(shape, op.domain)))],
                {"axes": draw(st.sampled_from([None, axes]))})


def index_part(n: int):
    """One part of an index into an axis of length n, in every form numpy accepts: ints (also
    negative and numpy ints), slices with any step, and the advanced forms: lists, tuples and
    ranges, integer arrays (with repeats), boolean masks."""
    ints = st.integers(-n, n - 1)
    return st.one_of(
        ints, ints.map(np.int64),
        st.builds(slice, st.none() | ints, st.none() | ints,
                  st.none() | st.sampled_from([1, 2, -1, -2])),
        st.lists(ints, min_size=1, max_size=4),
        st.lists(ints, min_size=1, max_size=4).map(tuple),
        st.integers(0, n).map(range),
        hnp.arrays(np.intp, st.integers(1, 4), elements=ints),
        hnp.arrays(np.bool_, n),
    )


ADVANCED = (list, tuple, range, np.ndarray)


@st.composite
def index(draw, shape):
    """An index into 2-D `shape`: one part per axis (at most one advanced, unless two integer
    arrays of one length), perhaps with a leading None, an Ellipsis or a boolean scalar."""
    parts = [draw(index_part(shape[0])), draw(index_part(shape[1]))]
    if all(isinstance(p, ADVANCED) for p in parts):
        parts[draw(st.integers(0, 1))] = slice(None)
    form = draw(st.sampled_from(["tuple", "first", "none", "ellipsis", "bool", "pair"]))
    if form == "first":  # a bare tuple would index several axes: as x[(0, 1),] instead
        return (parts[0],) if isinstance(parts[0], tuple) else parts[0]
    if form == "none":
        return (None, *parts)
    if form == "ellipsis":
        return (Ellipsis, parts[1])
    if form == "bool":  # False selects nothing: with an array that would not broadcast
        flag = draw(st.sampled_from([True, np.True_, False]))
        return (flag, *(slice(None) if isinstance(p, ADVANCED) else p for p in parts))
    if form == "pair":  # two integer arrays broadcast together, repeats included
        k = draw(st.integers(1, 4))
        return tuple(draw(hnp.arrays(np.intp, k, elements=st.integers(-n, n - 1)))
                     for n in shape)
    return tuple(parts)


@st.composite
def getitem(draw, op):
    x = draw(values((4, 3), op.domain))
    return Case([leaf(x)], {"index": draw(index((4, 3)))})


@st.composite
def split(draw, op):
    shape = draw(st.sampled_from([(2, 6), (6,), (3, 4, 2)]))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    n, sizes = shape[axis], []
    while sum(sizes) < n:
        sizes.append(draw(st.integers(1, n - sum(sizes))))
    return Case([leaf(draw(values(shape, op.domain)))], {"sizes": sizes, "axis": axis})


@st.composite
def unbind(draw, op):
    shape = draw(st.sampled_from([(2, 3), (4,), (3, 1, 2)]))
    axis = draw(st.integers(-len(shape), len(shape) - 1))
    return Case([leaf(draw(values(shape, op.domain)))], {"axis": axis})


@st.composite
def embedding(draw, op):
    weight = draw(values((5, 3), op.domain))
    indices = draw(hnp.arrays(np.int64, draw(st.sampled_from([(4,), (2, 3)])),
                              elements=st.integers(0, 3)))  # repeats accumulate
    # the padding row gets no gradient by definition, so it is a row no index touches here
    return Case([leaf(weight)], {"indices": indices,
                                 "padding_idx": draw(st.sampled_from([None, 4]))})


@st.composite
def class_pick(draw, op):
    """Scores (N, C) and one target per row, repeats and ignored rows (-100) included."""
    n, c = draw(st.integers(1, 5)), draw(st.integers(1, 4))
    target = draw(hnp.arrays(np.int64, (n,), elements=st.sampled_from([*range(c), -100])))
    return Case([leaf(draw(values((n, c), op.domain)))], {"target": target,
                                                           "ignore_index": -100})


@st.composite
def join(draw, op):
    n = draw(st.integers(1, 3))
    axis = draw(st.integers(0, 1))
    if op.name == "cat":
        shapes = [(2, draw(st.integers(1, 3))) if axis == 1 else (draw(st.integers(1, 3)), 2)
                  for _ in range(n)]
    else:
        shapes = [(2, 3)] * n
    return Case([leaf(draw(values(s, op.domain))) for s in shapes], {"axis": axis})


@st.composite
def broadcast_to(draw, op):
    shape = draw(st.sampled_from([(), (3,), (1, 3), (2, 1), (2, 3)]))
    target = draw(st.sampled_from([(2, 3), (4, 2, 3)]))
    return Case([leaf(draw(values(shape, op.domain)))], {"shape": target})


@st.composite
def scatter_add(draw, op):
    """Values for every index form getitem takes, scattered into a (4, 3) buffer."""
    idx = draw(index((4, 3)))
    shape = np.zeros((4, 3))[idx].shape
    return Case([leaf(draw(values(shape, op.domain)))], {"index": idx, "shape": (4, 3)})


@st.composite
def astype(draw, op):
    """A cast to float64: central differences in float64 cannot check a lossy cast."""
    shape = draw(st.sampled_from([(), (3,), (2, 3)]))
    return Case([leaf(draw(values(shape, op.domain)))], {"dtype": np.float64})


@st.composite
def compare(draw, op):
    """Broadcast pairs, with ties (rounded values) so equal and less_equal differ from the
    strict comparisons."""
    case = draw(binary(op))
    for t in case.tensors:
        t._assign(np.round(t._data, 1))
    return Case(case.tensors, {"op": draw(st.sampled_from(
        ["equal", "not_equal", "less", "less_equal", "greater", "greater_equal"]))})


@st.composite
def dropout_mask(draw, op):
    """No inputs: a shape, a rate, a dtype and a seeded generator."""
    shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
    return Case([], {"shape": shape, "p": draw(st.sampled_from([0.0, 0.25, 0.5])),
                     "dtype": np.float64, "rng": np.random.default_rng(draw(st.integers(0, 9)))})


@st.composite
def lengths_mask(draw, op):
    """Integer lengths (B,) in [1, steps] (B may be 0), in int64 or int32: no gradient."""
    steps = draw(st.integers(1, 5))
    lengths = draw(st.lists(st.integers(1, steps), max_size=4))
    dtype = draw(st.sampled_from([np.int64, np.int32]))
    return Case([Tensor(np.array(lengths, dtype))], {"steps": steps, "who": "LSTM"})


CASES = {
    "dropout_mask": dropout_mask, "lengths_mask": lengths_mask,
    "add": binary, "sub": binary, "mul": binary, "div": binary, "pow": binary,
    "matmul": matmul, "addmm": addmm, "addcmul": ternary, "where": where,
    "neg": unary, "exp": unary, "log": unary, "sqrt": unary, "tanh": unary, "sigmoid": unary,
    "abs": lambda op: unary(op, away_from=(0.0,)), "relu": lambda op: unary(op, away_from=(0.0,)),
    "clip": clip, "sum": reduction, "mean": reduction, "max": lambda op: reduction(op, unique=True),
    "reshape": reshape, "transpose": transpose, "getitem": getitem, "split": split, "unbind": unbind,
    "embedding": embedding, "class_pick": class_pick,
    "cat": join, "stack": join,
    "broadcast_to": broadcast_to, "scatter_add": scatter_add, "astype": astype,
    "compare": compare,
}

DIFFERENTIABLE = sorted(name for name, op in OPS.items() if op.differentiable)
CONSTANT = sorted(name for name, op in OPS.items()  # masks computed from inputs
                  if not op.differentiable and op.arity > 0)
RANDOM = sorted(name for name, op in OPS.items() if op.arity == 0)  # drawn, no inputs


def op_case(name: str):
    """The strategy drawing inputs and kwargs for primitive `name`."""
    if name not in CASES:
        raise KeyError(f"primitive {name!r} has no strategy in tests/strategies.py")
    return CASES[name](OPS[name])


def one_output(out):
    """A multi-output op's outputs (a list) as one scalar, weighted so that each piece gets a
    different gradient; a single output as it is."""
    if not isinstance(out, list):
        return out
    total = (out[0] * 1.0).sum()
    for k, piece in enumerate(out[1:], start=2):
        total = total + (piece * float(k)).sum()
    return total

