"""Invalid use of the losses, softmax, dropout and embedding: the error type torch (or Python)
would raise, naming the function and the argument; and the empty cases torch answers with NaN."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_rnn import Tensor
from tinygrad_rnn import functional as F


def t(*shape, fill=0.5):
    return Tensor(np.full(shape, fill))


P = t(2, 3)  # probabilities / logits (2, 3)
IDX = np.array([0, 2])
STRINGS = np.array(["a", "b"])
LOSSES_2 = {  # name -> call(input, target) for elementwise losses on shape (2,)
    "mse_loss": F.mse_loss,
    "binary_cross_entropy": F.binary_cross_entropy,
    "binary_cross_entropy_with_logits": F.binary_cross_entropy_with_logits,
}

ELEMENTWISE = []
for name, fn in LOSSES_2.items():
    ELEMENTWISE += [
        (f"{name} string input", lambda fn=fn: fn(STRINGS, np.zeros(2)), TypeError,
         rf"{name}: input must hold real numbers"),
        (f"{name} object input", lambda fn=fn: fn(np.array([None, 1.0]), np.zeros(2)), TypeError,
         rf"{name}: input must hold real numbers, got ndarray of dtype object"),
        (f"{name} integer input", lambda fn=fn: fn(np.array([0, 1]), np.zeros(2)), TypeError,
         rf"{name}: input must be a floating tensor, got int64"),
        (f"{name} ragged input", lambda fn=fn: fn([[0.5], [0.5, 0.5]], np.zeros(2)), ValueError,
         rf"{name}: input is ragged"),
        (f"{name} string target", lambda fn=fn: fn(t(2), STRINGS), TypeError,
         rf"{name}: target must hold real numbers"),
        (f"{name} None target", lambda fn=fn: fn(t(2), None), TypeError,
         rf"{name}: target must hold real numbers, got NoneType"),
        (f"{name} ragged target", lambda fn=fn: fn(t(2), [[0.0], [1.0, 0.0]]), ValueError,
         rf"{name}: target is ragged"),
        (f"{name} target shape", lambda fn=fn: fn(t(3, 1), np.zeros(3)), ValueError,
         rf"{name}: target shape \(3,\) differs from input shape \(3, 1\)"),
        (f"{name} reduction", lambda fn=fn: fn(t(2), np.zeros(2), reduction="avg"), ValueError,
         rf"{name}: reduction must be one of \('mean', 'sum', 'none'\), got 'avg'"),
        (f"{name} reduction None", lambda fn=fn: fn(t(2), np.zeros(2), reduction=None),
         ValueError, rf"{name}: reduction must be one of"),
    ]
    if name != "mse_loss":
        ELEMENTWISE += [
            (f"{name} string weight", lambda fn=fn: fn(t(2), np.zeros(2), weight="w"), TypeError,
             rf"{name}: weight must hold real numbers"),
            (f"{name} weight shape", lambda fn=fn: fn(t(2), np.zeros(2), weight=np.ones(3)),
             ValueError, rf"{name}: weight of shape \(3,\) does not broadcast to \(2,\)"),
        ]

BCE = "binary_cross_entropy"
OTHERS = [
    ("bce NaN input", lambda: F.binary_cross_entropy(Tensor(np.array([np.nan, 0.5])), np.zeros(2)),
     ValueError, (rf"{BCE}: input must be probabilities in \[0, 1\] \(all elements of input "
                  r"should be between 0 and 1\), got nan")),
    ("bce input above 1", lambda: F.binary_cross_entropy(Tensor(np.array([1.5, 0.5])), np.zeros(2)),
     RuntimeError, rf"{BCE}: input must be probabilities .* got 1.5"),
    ("bce input below 0", lambda: F.binary_cross_entropy(Tensor(np.array([-0.1])), np.zeros(1)),
     ValueError, rf"{BCE}: input must be probabilities .* got -0.1"),
    ("bce target above 1", lambda: F.binary_cross_entropy(t(2), np.array([1.5, 0.0])),
     RuntimeError, rf"{BCE}: target must be probabilities in \[0, 1\] .* got 1.5"),
    ("bce target NaN", lambda: F.binary_cross_entropy(t(2), np.array([np.nan, 0.0])),
     ValueError, rf"{BCE}: target must be probabilities .* got nan"),
    ("bce target negative", lambda: F.binary_cross_entropy(t(2), Tensor(np.array([-1.0, 0.0]))),
     ValueError, rf"{BCE}: target must be probabilities .* got -1"),
    ("bce inf input", lambda: F.binary_cross_entropy(Tensor(np.array([np.inf])), np.zeros(1)),
     ValueError, rf"{BCE}: input must be probabilities .* got inf"),
    ("bcel pos_weight shape", lambda: F.binary_cross_entropy_with_logits(
        t(2, 3), np.zeros((2, 3)), pos_weight=np.ones(2)), ValueError,
     r"binary_cross_entropy_with_logits: pos_weight of shape \(2,\) does not broadcast"),
    ("bcel string pos_weight", lambda: F.binary_cross_entropy_with_logits(
        t(2), np.zeros(2), pos_weight=STRINGS), TypeError,
     r"binary_cross_entropy_with_logits: pos_weight must hold real numbers"),
    ("ce string target", lambda: F.cross_entropy(P, STRINGS), TypeError,
     r"cross_entropy: target must hold real numbers"),
    ("ce object target", lambda: F.cross_entropy(P, np.array([0, None])), TypeError,
     r"cross_entropy: target must hold real numbers, got ndarray of dtype object"),
    ("ce float index target", lambda: F.cross_entropy(P, np.array([0.0, 1.0])), ValueError,
     r"cross_entropy: class-index targets must be integers, got float64"),
    ("ce bool target", lambda: F.cross_entropy(P, np.array([True, False])), ValueError,
     r"cross_entropy: class-index targets must be integers, got bool"),
    ("ce target above C", lambda: F.cross_entropy(P, np.array([0, 3])), IndexError,
     r"cross_entropy: target 3 is out of range for 3 classes"),
    ("ce negative target", lambda: F.cross_entropy(P, np.array([-1, 0])), IndexError,
     r"cross_entropy: target -1 is out of range for 3 classes"),
    ("ce out of range is a ValueError too", lambda: F.cross_entropy(P, np.array([0, 5])),
     ValueError, r"cross_entropy: target 5 is out of range"),
    ("ce target shape", lambda: F.cross_entropy(P, np.array([0, 1, 2])), ValueError,
     r"cross_entropy: target shape \(3,\) does not match input shape \(2, 3\)"),
    ("ce zero classes", lambda: F.cross_entropy(t(2, 0), np.array([0, 0])), ValueError,
     r"cross_entropy: input needs a class dimension of at least one class, got shape \(2, 0\)"),
    ("ce 0-d input", lambda: F.cross_entropy(t(), np.array(0)), ValueError,
     r"cross_entropy: input needs a class dimension"),
    ("ce integer input", lambda: F.cross_entropy(np.zeros((2, 3), int), IDX), TypeError,
     r"cross_entropy: input must be a floating tensor, got int64"),
    ("ce ignore_index float", lambda: F.cross_entropy(P, IDX, ignore_index=1.5), TypeError,
     r"cross_entropy: ignore_index must be an integer, got float"),
    ("ce ignore_index None", lambda: F.cross_entropy(P, IDX, ignore_index=None), TypeError,
     r"cross_entropy: ignore_index must be an integer, got NoneType"),
    ("ce label_smoothing str", lambda: F.cross_entropy(P, IDX, label_smoothing="0.1"), TypeError,
     r"cross_entropy: label_smoothing must be a real number, got str"),
    ("ce label_smoothing 1.5", lambda: F.cross_entropy(P, IDX, label_smoothing=1.5), ValueError,
     r"cross_entropy: label_smoothing must be in \[0, 1\], got 1.5"),
    ("ce label_smoothing NaN", lambda: F.cross_entropy(P, IDX, label_smoothing=np.nan),
     ValueError, r"cross_entropy: label_smoothing must be in \[0, 1\], got nan"),
    ("ce weight strings", lambda: F.cross_entropy(P, IDX, weight=["a", "b", "c"]), TypeError,
     r"cross_entropy: weight must hold real numbers"),
    ("ce weight shape", lambda: F.cross_entropy(P, IDX, weight=np.ones(4)), ValueError,
     r"cross_entropy: weight of shape \(4,\) does not broadcast to \(3,\)"),
    ("ce weight 2-D", lambda: F.cross_entropy(P, IDX, weight=np.ones((1, 3))), ValueError,
     r"cross_entropy: weight of shape \(1, 3\)"),
    ("ce reduction", lambda: F.cross_entropy(P, IDX, reduction="max"), ValueError,
     r"cross_entropy: reduction must be one of"),
    ("nll target above C", lambda: F.nll_loss(P, np.array([0, 3])), IndexError,
     r"nll_loss: target 3 is out of range for 3 classes"),
    ("nll string target", lambda: F.nll_loss(P, STRINGS), TypeError,
     r"nll_loss: target must hold real numbers"),
    ("nll float target", lambda: F.nll_loss(P, np.array([0.0, 1.0])), ValueError,
     r"nll_loss: class-index targets must be integers"),
    ("nll ignore_index str", lambda: F.nll_loss(P, IDX, ignore_index="x"), TypeError,
     r"nll_loss: ignore_index must be an integer, got str"),
    ("nll 0-d input", lambda: F.nll_loss(t(), np.array(0)), ValueError,
     r"nll_loss: input needs a class dimension"),
    ("softmax axis out of range", lambda: F.softmax(P, 2), IndexError,
     r"softmax: axis 2 is out of range for a tensor of 2 dimension"),
    ("softmax axis -3", lambda: F.softmax(P, -3), IndexError, r"softmax: axis -3 is out of range"),
    ("softmax float axis", lambda: F.softmax(P, 1.0), TypeError,
     r"softmax: axis must be an integer, got float"),
    ("log_softmax axis", lambda: F.log_softmax(P, 5), IndexError,
     r"log_softmax: axis 5 is out of range"),
    ("log_softmax integer", lambda: F.log_softmax(np.zeros((2, 2), int)), TypeError,
     r"log_softmax: input must be a floating tensor"),
    ("softmax strings", lambda: F.softmax(STRINGS), TypeError,
     r"softmax: input must hold real numbers"),
    ("dropout p above 1", lambda: F.dropout(P, 1.5), ValueError,
     r"dropout: p must be in \[0, 1\], got 1.5"),
    ("dropout p NaN", lambda: F.dropout(P, float("nan")), ValueError,
     r"dropout: p must be in \[0, 1\], got nan"),
    ("dropout p str", lambda: F.dropout(P, "0.5"), TypeError,
     r"dropout: p must be a real number, got str"),
    ("dropout p bool", lambda: F.dropout(P, True), TypeError,
     r"dropout: p must be a real number, got bool"),
    ("dropout training str", lambda: F.dropout(P, 0.5, "yes"), TypeError,
     r"dropout: training must be a bool, got str"),
    ("dropout rng int", lambda: F.dropout(P, 0.5, True, 3), TypeError,
     r"dropout: rng must be a numpy Generator or None, got int"),
    ("dropout integer input", lambda: F.dropout(np.zeros(3, int), 0.5), TypeError,
     r"dropout: input must be a floating tensor"),
    ("embedding padding_idx above", lambda: F.embedding(IDX, t(3, 2), padding_idx=3), ValueError,
     r"embedding: padding_idx 3 is out of range for a table of 3 rows"),
    ("embedding padding_idx below", lambda: F.embedding(IDX, t(3, 2), padding_idx=-4),
     ValueError, r"embedding: padding_idx -4 is out of range for a table of 3 rows"),
    ("embedding padding_idx float", lambda: F.embedding(IDX, t(3, 2), padding_idx=1.0),
     TypeError, r"embedding: padding_idx must be an integer, got float"),
    ("embedding padding_idx bool", lambda: F.embedding(IDX, t(3, 2), padding_idx=True),
     TypeError, r"embedding: padding_idx must be an integer, got bool"),
    ("embedding weight 1-D", lambda: F.embedding(IDX, t(3)), ValueError,
     r"embedding: weight must be 2-D \(num_embeddings, embedding_dim\), got shape \(3,\)"),
    ("embedding weight 3-D", lambda: F.embedding(IDX, t(3, 2, 2)), ValueError,
     r"embedding: weight must be 2-D"),
    ("embedding string weight", lambda: F.embedding(IDX, np.full((3, 2), "w")), TypeError,
     r"embedding: weight must hold real numbers"),
    ("embedding float indices", lambda: F.embedding(np.array([0.0]), t(3, 2)), IndexError,
     r"embedding: indices must be integers, got float64"),
    ("embedding string indices", lambda: F.embedding(STRINGS, t(3, 2)), TypeError,
     r"embedding: indices must hold real numbers"),
    ("embedding index above", lambda: F.embedding(np.array([3]), t(3, 2)), IndexError,
     r"embedding: index 3 is out of range for a table of 3 rows"),
    ("embedding ragged indices", lambda: F.embedding([[0], [0, 1]], t(3, 2)), ValueError,
     r"embedding: indices is ragged"),
]
CASES = ELEMENTWISE + OTHERS


@pytest.mark.parametrize("what, call, error, match", CASES, ids=[c[0] for c in CASES])
def test_functional_rejects(what, call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_a_rejected_loss_leaves_its_input_untouched():
    x = Tensor(np.array([0.25, 1.5]), requires_grad=True)
    with pytest.raises(ValueError, match="binary_cross_entropy: input must be probabilities"):
        F.binary_cross_entropy(x, np.zeros(2))
    assert x.grad is None and x.data.tolist() == [0.25, 1.5]


@pytest.mark.parametrize("loss", [
    lambda x: F.mse_loss(x, np.zeros(0)),
    lambda x: F.binary_cross_entropy(x, np.zeros(0)),
    lambda x: F.binary_cross_entropy_with_logits(x, np.zeros(0)),
    lambda x: F.cross_entropy(x.reshape(0, 3), np.zeros(0, int)),
    lambda x: F.cross_entropy(x.reshape(0, 3), np.zeros((0, 3))),
    lambda x: F.nll_loss(x.reshape(0, 3), np.zeros(0, int)),
])
def test_the_mean_of_an_empty_loss_is_nan_with_an_empty_gradient(loss):
    x = Tensor(np.zeros(0), requires_grad=True)
    value = loss(x)
    assert value.shape == () and np.isnan(value.item())
    value.backward()
    assert x.grad.shape == (0,)


def test_sums_of_empty_losses_are_zero():
    assert F.mse_loss(Tensor(np.zeros(0)), np.zeros(0), reduction="sum").item() == 0.0
    assert F.cross_entropy(Tensor(np.zeros((0, 3))), np.zeros(0, int),
                           reduction="none").shape == (0,)


def test_softmax_along_an_empty_axis_is_empty():
    assert F.softmax(Tensor(np.zeros((2, 0))), 1).shape == (2, 0)
    assert F.log_softmax(Tensor(np.zeros((0, 3))), 0).shape == (0, 3)
