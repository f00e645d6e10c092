"""DESIGN.md's Tensor rules: copy vs share, comparisons and truth values, and a clear error,
naming the function and what was expected, for every kind of bad input to the core."""

import numpy as np
import pytest

from tinygrad_rnn import Tensor, cat, stack, where

# ---- copy vs share ---------------------------------------------------------------------------


def test_tensor_of_an_array_copies_it():
    arr = np.ones(3)
    t = Tensor(arr)
    arr[0] = 7.0
    assert t.data[0] == 1.0 and not np.shares_memory(t.data, arr)


def test_tensor_of_a_tensor_copies_it():
    a = Tensor(np.ones(3))
    b = Tensor(a)
    b.data[0] = 5.0
    assert a.data[0] == 1.0


def test_from_numpy_shares_memory():
    arr = np.ones(3, np.float32)
    t = Tensor.from_numpy(arr)
    arr[1] = 4.0
    assert t.data[1] == 4.0 and t.dtype == np.float32 and np.shares_memory(t.data, arr)


@pytest.mark.parametrize("bad", [[1.0, 2.0], 3.0, Tensor([1.0]), None, "abc"], ids=repr)
def test_from_numpy_needs_an_ndarray(bad):
    with pytest.raises(TypeError, match="from_numpy.*ndarray"):
        Tensor.from_numpy(bad)


def test_from_numpy_rejects_strings():
    with pytest.raises(TypeError, match="numeric"):
        Tensor.from_numpy(np.array(["a", "b"]))


def test_a_gradient_is_unaffected_by_the_callers_later_writes():
    arr = np.arange(3.0)
    x, w = Tensor(arr), Tensor(np.ones(3), requires_grad=True)
    loss = (x * w).sum()
    arr[:] = 100.0  # the caller reuses its buffer: the tensor holds a copy
    loss.backward()
    np.testing.assert_array_equal(w.grad, [0.0, 1.0, 2.0])


# ---- dtypes ----------------------------------------------------------------------------------

@pytest.mark.parametrize("data, dtype", [
    (np.ones(2, np.float64), np.float64), (np.ones(2, np.float16), np.float16),
    (np.arange(2), np.arange(2).dtype), (np.array([True]), np.bool_), ([1, 2], np.float32),
    (1.5, np.float32), (np.float64(2.0), np.float64),
])
def test_dtype_rules(data, dtype):
    assert Tensor(data).dtype == dtype


# ---- comparisons and truth values ------------------------------------------------------------

@pytest.mark.parametrize("op, expected", [
    ("__eq__", [False, True, False]), ("__ne__", [True, False, True]),
    ("__lt__", [True, False, False]), ("__le__", [True, True, False]),
    ("__gt__", [False, False, True]), ("__ge__", [False, True, True]),
])
@pytest.mark.parametrize("other", [2.0, np.array(2.0), Tensor(2.0), np.full(3, 2.0)],
                         ids=["float", "0d-array", "tensor", "array"])
def test_comparisons_are_elementwise_boolean_tensors(op, expected, other):
    out = getattr(Tensor([1.0, 2.0, 3.0]), op)(other)
    assert isinstance(out, Tensor) and out.dtype == np.bool_ and not out.requires_grad
    np.testing.assert_array_equal(out.data, expected)


def test_a_reflected_comparison_with_an_array_is_a_tensor():
    out = np.array([1.0, 5.0]) < Tensor([2.0, 2.0])
    assert isinstance(out, Tensor)
    np.testing.assert_array_equal(out.data, [True, False])


def test_a_comparison_is_usable_as_a_mask():
    x = Tensor([-1.0, 2.0, -3.0], requires_grad=True)
    y = where(x > 0, x, 0.0) + x[x < 0].sum()
    y.sum().backward()
    np.testing.assert_array_equal(x.grad, [3.0, 1.0, 3.0])  # the masked sum is added 3 times


def test_comparison_of_shapes_that_do_not_broadcast_names_the_op():
    with pytest.raises(ValueError, match="equal: shapes \\(2,\\) and \\(3,\\)"):
        Tensor([1.0, 2.0]) == Tensor([1.0, 2.0, 3.0])  # noqa: B015


def test_comparison_with_none_or_a_string_is_not_equal():
    t = Tensor([1.0])
    assert (t == None) is False and (t != "a") is True


@pytest.mark.parametrize("shape", [(2,), (2, 2), (0,)])
def test_bool_of_a_tensor_without_exactly_one_element_is_ambiguous(shape):
    with pytest.raises(ValueError, match="ambiguous"):
        bool(Tensor(np.zeros(shape)))


def test_bool_float_and_int_of_one_element():
    assert bool(Tensor([1.0])) and not bool(Tensor(0.0))
    assert float(Tensor([[2.5]])) == 2.5 and int(Tensor(3.0)) == 3


def test_tensors_hash_by_identity():
    a, b = Tensor([1.0]), Tensor([1.0])
    assert len({a, b}) == 2 and {a: 1}[a] == 1 and a in [a] and hash(a) != hash(b)


def test_len_of_a_0d_tensor_names_it():
    with pytest.raises(TypeError, match="0-d"):
        len(Tensor(1.0))


@pytest.mark.parametrize("shape", [(2,), (0,)])
def test_item_of_a_tensor_without_one_element(shape):
    with pytest.raises(ValueError, match="item.*one-element"):
        Tensor(np.zeros(shape)).item()


# ---- the constructor -------------------------------------------------------------------------

@pytest.mark.parametrize("data, err, match", [
    (np.array(["a", "b"]), TypeError, "numeric"), (np.array([object()]), TypeError, "numeric"),
    ("abc", TypeError, "str"), (b"ab", TypeError, "bytes"), (None, TypeError, "NoneType"),
    ({"a": 1}, TypeError, "dict"), ({1, 2}, TypeError, "set"),
    ([[1, 2], [3]], ValueError, "ragged"), ([1, [2, 3]], ValueError, "ragged"),
    ([1.0, "x"], TypeError, "numeric"), (np.array([1 + 2j]), TypeError, "numeric"),
    ([1 + 2j], TypeError, "numeric"), (np.array(["2020-01-01"], "datetime64[D]"), TypeError,
                                       "numeric"),
])
def test_the_constructor_rejects_non_numeric_data(data, err, match):
    with pytest.raises(err, match=f"Tensor.*{match}|{match}.*Tensor|Tensor: .*{match}"):
        Tensor(data)


@pytest.mark.parametrize("dtype, match", [("nonsense", "not a numpy dtype"),
                                          (str, "boolean, integer or floating"),
                                          (object, "boolean, integer or floating"),
                                          (np.complex64, "boolean, integer or floating")])
def test_the_constructor_names_a_bad_dtype(dtype, match):
    with pytest.raises(TypeError, match=f"Tensor: .*{match}"):
        Tensor([1.0], dtype=dtype)


@pytest.mark.parametrize("data", [np.arange(3), np.array([True])])
def test_requires_grad_needs_a_float(data):
    with pytest.raises(TypeError, match="requires_grad needs a floating dtype"):
        Tensor(data, requires_grad=True)


@pytest.mark.parametrize("flag", ["yes", 1, None, 1.0])
def test_requires_grad_must_be_a_bool(flag):
    with pytest.raises(TypeError, match="requires_grad must be a bool"):
        Tensor([1.0], requires_grad=flag)


@pytest.mark.parametrize("value, err", [(np.array(["a"]), TypeError), ("abc", TypeError),
                                        (np.arange(3), TypeError)])
def test_assigning_bad_data_names_tensor_data(value, err):
    t = Tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(err, match="Tensor"):
        t.data = value
    np.testing.assert_array_equal(t.data, [1.0, 2.0])


# ---- shape ops -------------------------------------------------------------------------------

X = Tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)


@pytest.mark.parametrize("call, err, match", [
    (lambda: X.split([1.5, 1.5]), TypeError, "split: sizes must be ints"),
    (lambda: X.split([1, 1]), ValueError, "split: sizes \\[1, 1\\] do not split axis 0"),
    (lambda: X.split([4, -1]), ValueError, "split"),
    (lambda: X.split(0), ValueError, "split: a split size must be >= 1"),
    (lambda: X.split("ab"), TypeError, "split: sizes must be an int or a sequence"),
    (lambda: X.split(2.0), TypeError, "split: sizes must be an int or a sequence"),
    (lambda: X.split([3], axis=2), IndexError, "split: axis 2 is out of range"),
    (lambda: X.split([3], axis=0.0), TypeError, "split: axis must be an int"),
    (lambda: X.chunk(1.5), TypeError, "chunk: chunks must be an int"),
    (lambda: X.chunk(True), TypeError, "chunk: chunks must be an int"),
    (lambda: X.chunk(0), ValueError, "chunk: chunks must be >= 1"),
    (lambda: X.chunk(2, axis=-3), IndexError, "chunk: axis -3 is out of range"),
    (lambda: X.unbind(axis=5), IndexError, "unbind: axis 5 is out of range"),
    (lambda: cat([Tensor(1.0), Tensor(2.0)]), ValueError, "cat: a zero-dimensional tensor"),
    (lambda: cat([X, Tensor(np.ones((2, 3)))]), ValueError, "cat: the tensor at position 1"),
    (lambda: cat([X, X], axis=2), IndexError, "cat: axis 2 is out of range"),
    (lambda: cat([]), ValueError, "cat: needs at least one tensor"),
    (lambda: cat(X), TypeError, "cat: tensors must be a sequence"),
    (lambda: cat(np.ones((2, 2))), TypeError, "cat: tensors must be a sequence"),
    (lambda: stack([X, Tensor(np.ones((4, 3)))]), ValueError, "stack: every tensor needs one"),
    (lambda: stack([X, X], axis=3), IndexError, "stack: axis 3 is out of range"),
    (lambda: stack(5), TypeError, "stack: tensors must be a sequence"),
    (lambda: X.reshape(5, 3), ValueError, "reshape"),
    (lambda: X.reshape(2.5, 4), TypeError, "reshape"),
    (lambda: X.transpose(0, 0), ValueError, "transpose: axes \\(0, 0\\)"),
    (lambda: X.transpose(0, 1.0), TypeError, "transpose: axes must be ints"),
    (lambda: X[5], IndexError, "getitem"),
    (lambda: X[0, 0, 0], IndexError, "getitem"),
    (lambda: X @ Tensor(np.ones((3, 2))), ValueError, "matmul: inner dims differ"),
    (lambda: Tensor(np.ones(3)) + Tensor(np.ones(2)), ValueError, "add"),
    (lambda: X.max(axis=(0, 5)), IndexError, "max: axis"),
    (lambda: Tensor(np.zeros(0)).max(), ValueError, "max of an empty tensor"),
])
def test_shape_ops_name_themselves_and_the_argument(call, err, match):
    before = X.data.copy()
    with pytest.raises(err, match=match):
        call()
    np.testing.assert_array_equal(X.data, before)


def test_split_takes_an_int_or_zero_sizes_as_torch():
    pieces = Tensor(np.arange(5.0)).split(2)
    assert [p.shape for p in pieces] == [(2,), (2,), (1,)]
    pieces = Tensor(np.arange(3.0), requires_grad=True).split([0, 3])
    assert [p.shape for p in pieces] == [(0,), (3,)]


# ---- backward --------------------------------------------------------------------------------

@pytest.mark.parametrize("grad, err, match", [
    (np.ones(2), ValueError, "backward: grad of shape \\(2,\\)"),
    ("x", TypeError, "backward: grad must be numeric"),
    (np.array(["a", "b", "c"]), TypeError, "backward: grad must be numeric"),
])
def test_backward_names_a_bad_seed(grad, err, match):
    x = Tensor(np.ones(3), requires_grad=True)
    with pytest.raises(err, match=match):
        (x * 2.0).backward(grad)
    assert x.grad is None


def test_backward_of_a_non_scalar_without_grad():
    with pytest.raises(RuntimeError, match="grad must be given"):
        (Tensor(np.ones(3), requires_grad=True) * 2.0).backward()


def test_backward_twice_through_a_freed_graph():
    y = (Tensor(np.ones(3), requires_grad=True) * 2.0).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="second time"):
        y.backward()


@pytest.mark.parametrize("call, err, match", [
    (lambda: X.reshape(-2, 6), ValueError, "reshape: shape \\(-2, 6\\) must be ints"),
    (lambda: X.reshape(-1, -1), ValueError, "reshape: .*at most one -1"),
    (lambda: X.clip("a", 1.0), TypeError, "clip: lo must be a real number"),
    (lambda: X.clip(0.0, [1.0]), TypeError, "clip: hi must be a real number"),
    (lambda: X.clip(), ValueError, "clip: at least one of lo and hi"),
    (lambda: X.sum(keepdims="yes"), TypeError, "sum: keepdims must be a bool"),
    (lambda: X.mean(axis=0, keepdims=1), TypeError, "mean: keepdims must be a bool"),
    (lambda: X.max(keepdims=None), TypeError, "max: keepdims must be a bool"),
])
def test_more_arguments_are_named(call, err, match):
    with pytest.raises(err, match=match):
        call()


@pytest.mark.parametrize("dtype, match", [("junk", "not a numpy dtype"), ("int32", "floating")])
def test_set_default_dtype_names_a_bad_dtype(dtype, match):
    from tinygrad_rnn import get_default_dtype, set_default_dtype
    before = get_default_dtype()
    with pytest.raises(TypeError, match=f"set_default_dtype: .*{match}"):
        set_default_dtype(dtype)
    assert get_default_dtype() == before


def test_chunk_of_an_empty_axis_gives_chunks_empty_pieces_as_torch():
    pieces = Tensor(np.zeros((2, 0)), requires_grad=True).chunk(4, axis=1)
    assert [p.shape for p in pieces] == [(2, 0)] * 4


# ---- grad mode: no_grad, enable_grad, set_grad_enabled (as torch) ---------------------------

def test_enable_grad_records_inside_no_grad_and_modes_nest():
    from tinygrad_rnn import enable_grad, no_grad, set_grad_enabled
    x = Tensor([1.0, 2.0], requires_grad=True)
    with no_grad():
        assert not (x * 2).requires_grad
        with enable_grad():
            assert (x * 2).requires_grad
        with set_grad_enabled(True):
            assert (x * 2).requires_grad
        assert not (x * 2).requires_grad
    with set_grad_enabled(False):
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad


@pytest.mark.parametrize("mode", [1, None, "yes"])
def test_set_grad_enabled_refuses_a_mode_that_is_not_a_bool(mode):
    from tinygrad_rnn import set_grad_enabled
    with pytest.raises(TypeError, match="set_grad_enabled: mode must be a bool"):
        set_grad_enabled(mode)
