"""split / chunk: one multi-output node whose pieces reach their consumers as Ports."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_rnn import Tensor, draw_graph, gradcheck


def _x(*shape):
    return Tensor(np.random.default_rng(0).standard_normal(shape), requires_grad=True)


def test_chunk_pieces_match_numpy_and_torch_sizes():
    x = _x(2, 10)
    pieces = x.chunk(4, axis=1)  # torch.chunk: ceil(10 / 4) = 3, so 3, 3, 3, 1
    assert [p.shape for p in pieces] == [(2, 3), (2, 3), (2, 3), (2, 1)]
    np.testing.assert_array_equal(np.concatenate([p.data for p in pieces], axis=1), x.data)
    assert all(p.op_name == "split" and not p.is_leaf for p in pieces)


def test_unused_pieces_get_zero_gradient_and_used_ones_sum():
    x = _x(3, 6)
    a, _unused_b, _unused_c = x.split([1, 2, 3], axis=1)
    (a * 2 + a).sum().backward()  # a used twice, the other two not at all
    np.testing.assert_array_equal(x.grad[:, :1], 3.0)
    np.testing.assert_array_equal(x.grad[:, 1:], 0.0)


def test_pieces_mixed_with_slices_matmuls_and_broadcasts_gradcheck():
    w = Tensor(np.random.default_rng(1).standard_normal((2, 4)))

    def f(x):
        a, b = x.split([2, 2], axis=1)
        return ((a @ w) * b.sum()).sum() + (b[1:] * a[:1]).sum() + (a + b.sum(axis=0)).sum()

    assert gradcheck(f, [_x(3, 4)])


def test_backward_from_a_piece_and_retain_grad_of_a_piece():
    x = _x(4, 2)
    top, bottom = x.chunk(2, axis=0)
    bottom.retain_grad()
    top.backward(np.ones((2, 2)))  # a piece as the root: only its rows get gradient
    np.testing.assert_array_equal(x.grad, [[1, 1], [1, 1], [0, 0], [0, 0]])
    with pytest.raises(RuntimeError, match="a second time"):
        bottom.backward(np.ones((2, 2)))  # the split was freed with the first graph
    y = _x(4, 2)
    top, bottom = y.chunk(2, axis=0)
    bottom.retain_grad()
    ((bottom * 3).sum() + (bottom * bottom).sum()).backward()
    np.testing.assert_allclose(bottom.grad, 3 + 2 * y.data[2:])


def test_draw_graph_shows_the_split_once():
    x = _x(2, 4)
    a, b = x.chunk(2, axis=1)
    dot = draw_graph((a * b).sum()).source
    assert dot.count('label="split') == 1
    assert draw_graph(a).source.count('label="output: split') == 1


def test_bad_sizes_name_the_axis():
    with pytest.raises(ValueError, match=r"split: sizes \[1, 2\] do not split axis 1 of length 4"):
        _x(2, 4).split([1, 2], axis=1)


def test_bad_axes_are_index_errors_not_wrapped():
    with pytest.raises(IndexError, match=r"split: axis 2 is out of range for 2 dimension"):
        _x(2, 4).split([1, 1], axis=2)  # numpy-style wrapping would cut axis 0 instead
    with pytest.raises(IndexError, match=r"chunk: axis -3 is out of range"):
        _x(2, 4).chunk(2, axis=-3)
    with pytest.raises(IndexError, match=r"unbind: axis 0 is out of range for 0 dimension"):
        Tensor(np.float64(1.0), requires_grad=True).unbind()
