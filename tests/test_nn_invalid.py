"""Invalid use of layers, cells, Recurrent, Bidirectional, the stacks and Module methods: each
case raises the error type torch (or Python) would, with a message naming the culprit, and a
failed call leaves the module exactly as it was."""

from __future__ import annotations

import numpy as np
import pytest

from tinygrad_rnn import Tensor
from tinygrad_rnn.nn import (
    GRU,
    LSTM,
    RNN,
    Bidirectional,
    Cell,
    Dropout,
    Embedding,
    GRUCell,
    Linear,
    LSTMCell,
    Module,
    Parameter,
    Recurrent,
    RNNCell,
    Sequential,
)


def z(*shape, dtype=np.float32):
    return np.zeros(shape, dtype)


X = z(3, 2)  # a batch of 3 steps of width 2
SEQ = z(3, 5, 2)  # (B, T, I) for Recurrent
TSEQ = z(5, 3, 2)  # (T, B, I) for the stacks


class Scaled(Cell):
    """A custom cell with a tuple state of two different widths (own initial_state)."""

    def __init__(self):
        super().__init__()
        self.hidden_size = 3
        self.w = Parameter(np.ones((2, 3), np.float32))

    def initial_state(self, batch_size):
        return Tensor(z(batch_size, 3)), Tensor(z(batch_size, 1))

    def forward(self, x, state):
        h, s = state
        return (x @ self.w + h).tanh(), s + 1.0


# ---- constructors: sizes, flags, choices ---------------------------------------------------

CONSTRUCTORS = [
    # (what, build, error type, message)
    ("negative input_size", lambda: RNNCell(-1, 4),
     ValueError, r"RNNCell: input_size must be >= 0, got -1"),
    ("negative hidden_size", lambda: LSTMCell(2, -3),
     ValueError, r"LSTMCell: hidden_size must be >= 0, got -3"),
    ("float input_size", lambda: GRUCell(2.0, 4),
     TypeError, r"GRUCell: input_size must be an integer, got float"),
    ("float hidden_size", lambda: LSTMCell(2, 4.5),
     TypeError, r"LSTMCell: hidden_size must be an integer, got float"),
    ("bool hidden_size", lambda: RNNCell(2, True),
     TypeError, r"RNNCell: hidden_size must be an integer, got bool"),
    ("str input_size", lambda: GRUCell("2", 4),
     TypeError, r"GRUCell: input_size must be an integer, got str"),
    ("None hidden_size", lambda: GRUCell(2, None),
     TypeError, r"GRUCell: hidden_size must be an int"),
    ("cell bias str", lambda: LSTMCell(2, 4, bias="no"),
     TypeError, r"LSTMCell: bias must be a bool"),
    ("cell bias int", lambda: GRUCell(2, 4, bias=0), TypeError, r"GRUCell: bias must be a bool"),
    ("rnncell nonlinearity", lambda: RNNCell(2, 4, nonlinearity="sigmoid"),
     ValueError, r"RNNCell: nonlinearity must be 'tanh' or 'relu'"),
    ("rnncell nonlinearity None", lambda: RNNCell(2, 4, nonlinearity=None),
     ValueError, r"RNNCell: nonlinearity"),
    ("stack hidden_size 0", lambda: LSTM(2, 0),
     ValueError, r"LSTM: hidden_size must be >= 1, got 0"),
    ("stack input_size 0", lambda: GRU(0, 3), ValueError, r"GRU: input_size must be >= 1, got 0"),
    ("stack negative hidden", lambda: RNN(2, -1),
     ValueError, r"RNN: hidden_size must be >= 1, got -1"),
    ("stack float input", lambda: LSTM(2.0, 3),
     TypeError, r"LSTM: input_size must be an integer, got float"),
    ("stack float hidden", lambda: GRU(2, 3.0),
     TypeError, r"GRU: hidden_size must be an integer, got float"),
    ("stack bool hidden", lambda: LSTM(2, True),
     TypeError, r"LSTM: hidden_size must be an integer, got bool"),
    ("num_layers 0", lambda: GRU(2, 3, num_layers=0),
     ValueError, r"GRU: num_layers must be >= 1, got 0"),
    ("num_layers -1", lambda: LSTM(2, 3, num_layers=-1),
     ValueError, r"LSTM: num_layers must be >= 1"),
    ("num_layers float", lambda: RNN(2, 3, num_layers=2.0),
     TypeError, r"RNN: num_layers must be an int"),
    ("dropout negative", lambda: GRU(2, 3, 2, dropout=-0.1),
     ValueError, r"GRU: dropout must be in \[0, 1\], got -0.1"),
    ("dropout above 1", lambda: LSTM(2, 3, 2, dropout=1.5),
     ValueError, r"LSTM: dropout must be in \[0, 1\], got 1.5"),
    ("dropout nan", lambda: RNN(2, 3, 2, dropout=float("nan")),
     ValueError, r"RNN: dropout must be a number, got nan"),
    ("dropout str", lambda: GRU(2, 3, 2, dropout="0.1"),
     TypeError, r"GRU: dropout must be a real number, got str"),
    ("dropout bool", lambda: GRU(2, 3, 2, dropout=True),
     TypeError, r"GRU: dropout must be a real number, got bool"),
    ("batch_first int", lambda: GRU(2, 3, batch_first=1),
     TypeError, r"GRU: batch_first must be a bool, got int"),
    ("bidirectional int", lambda: LSTM(2, 3, bidirectional=2),
     TypeError, r"LSTM: bidirectional must be a bool"),
    ("stack bias str", lambda: RNN(2, 3, bias="yes"),
     TypeError, r"RNN: bias must be a bool, got str"),
    ("stack nonlinearity", lambda: RNN(2, 3, nonlinearity="gelu"),
     ValueError, r"RNN: nonlinearity must be 'tanh' or 'relu'"),
    ("Recurrent of a Linear", lambda: Recurrent(Linear(2, 3)),
     TypeError, r"Recurrent: cell must be a Cell, got Linear"),
    ("Recurrent return_sequences str", lambda: Recurrent(GRUCell(2, 3), return_sequences="yes"),
     TypeError, r"Recurrent: return_sequences must be a bool"),
    ("Recurrent return_state int", lambda: Recurrent(GRUCell(2, 3), return_state=1),
     TypeError, r"Recurrent: return_state must be a bool"),
    ("Recurrent reverse None", lambda: Recurrent(GRUCell(2, 3), reverse=None),
     TypeError, r"Recurrent: reverse must be a bool"),
    ("Recurrent batch_first str", lambda: Recurrent(GRUCell(2, 3), batch_first="no"),
     TypeError, r"Recurrent: batch_first must be a bool"),
    ("Bidirectional of a cell", lambda: Bidirectional(GRUCell(2, 3)),
     TypeError, r"Bidirectional: layer must be a Recurrent, got GRUCell"),
    ("Bidirectional of a stack", lambda: Bidirectional(GRU(2, 3)),
     TypeError, r"Bidirectional: layer must be a Recurrent, got GRU"),
    ("merge_mode unknown", lambda: Bidirectional(Recurrent(GRUCell(2, 3)), merge_mode="max"),
     ValueError, r"Bidirectional: merge_mode must be one of"),
    ("merge_mode list", lambda: Bidirectional(Recurrent(GRUCell(2, 3)), merge_mode=["sum"]),
     ValueError, r"Bidirectional: merge_mode must be one of"),
    ("Linear negative", lambda: Linear(-1, 2),
     ValueError, r"Linear: in_features must be >= 0, got -1"),
    ("Linear float", lambda: Linear(2, 2.5),
     TypeError, r"Linear: out_features must be an integer, got float"),
    ("Linear bool", lambda: Linear(True, 2),
     TypeError, r"Linear: in_features must be an integer, got bool"),
    ("Linear bias str", lambda: Linear(2, 2, bias="no"), TypeError, r"Linear: bias must be a bool"),
    ("Embedding negative", lambda: Embedding(-1, 2),
     ValueError, r"Embedding: num_embeddings must be >= 0, got -1"),
    ("Embedding float dim", lambda: Embedding(3, 2.0),
     TypeError, r"Embedding: embedding_dim must be an integer, got float"),
    ("Embedding padding_idx too big", lambda: Embedding(3, 2, padding_idx=3),
     ValueError, r"Embedding: padding_idx 3 is out of range for a table of 3 rows"),
    ("Embedding padding_idx too small", lambda: Embedding(3, 2, padding_idx=-4),
     ValueError, r"Embedding: padding_idx -4 is out of range"),
    ("Embedding padding_idx float", lambda: Embedding(3, 2, padding_idx=1.0),
     TypeError, r"Embedding: padding_idx must be an integer, got float"),
    ("Embedding _weight 1-D", lambda: Embedding(3, 2, _weight=z(3)),
     ValueError, r"Embedding: _weight has shape \(3,\), expected \(3, 2\)"),
    ("Embedding _weight wrong rows", lambda: Embedding(3, 2, _weight=z(4, 2)),
     ValueError, r"Embedding: _weight has shape \(4, 2\), expected \(3, 2\)"),
    ("from_pretrained 1-D", lambda: Embedding.from_pretrained(z(3)),
     ValueError, r"Embedding.from_pretrained: weights must be 2-D, got shape \(3,\)"),
    ("from_pretrained 3-D", lambda: Embedding.from_pretrained(z(2, 2, 2)),
     ValueError, r"weights must be 2-D, got shape \(2, 2, 2\)"),
    ("from_pretrained int unfrozen",
     lambda: Embedding.from_pretrained(np.array([[1, 2]]), freeze=False),
     TypeError, r"Embedding.from_pretrained: freeze=False needs floating weights.*int64"),
    ("from_pretrained strings", lambda: Embedding.from_pretrained(np.array([["a", "b"]])),
     TypeError, r"Embedding.from_pretrained: weights must hold real numbers"),
    ("from_pretrained ragged", lambda: Embedding.from_pretrained([[1.0, 2.0], [3.0]]),
     ValueError, r"Embedding.from_pretrained: weights is ragged"),
    ("from_pretrained freeze str", lambda: Embedding.from_pretrained(z(2, 2), freeze="no"),
     TypeError, r"Embedding.from_pretrained: freeze must be a bool"),
    ("from_pretrained padding_idx out", lambda: Embedding.from_pretrained(z(3, 2), padding_idx=5),
     ValueError, r"padding_idx 5 is out of range for a table of 3 rows"),
    ("Dropout p above 1", lambda: Dropout(2), ValueError, r"Dropout: p must be in \[0, 1\], got 2"),
    ("Dropout p negative", lambda: Dropout(-0.5),
     ValueError, r"Dropout: p must be in \[0, 1\], got -0.5"),
    ("Dropout p nan", lambda: Dropout(float("nan")),
     ValueError, r"Dropout: p must be a number, got nan"),
    ("Dropout p str", lambda: Dropout("0.5"),
     TypeError, r"Dropout: p must be a real number, got str"),
    ("Dropout p bool", lambda: Dropout(True),
     TypeError, r"Dropout: p must be a real number, got bool"),
    ("Sequential of an int", lambda: Sequential(Linear(2, 2), 3),
     TypeError, r"Sequential: argument 1 is a int, not a Module"),
    ("Linear rng int", lambda: Linear(2, 2, rng=5),
     TypeError, r"Linear: rng must be a numpy Generator \(np.random.default_rng\(seed\)\) or None"),
    ("Embedding rng str", lambda: Embedding(3, 2, rng="seed"),
     TypeError, r"Embedding: rng must be a numpy Generator"),
    ("Dropout rng int", lambda: Dropout(0.5, rng=1), TypeError, r"Dropout: rng must be a numpy"),
    ("cell rng int", lambda: LSTMCell(2, 3, rng=7),
     TypeError, r"LSTMCell.reset_parameters: rng must be a numpy Generator"),
    ("stack rng int", lambda: GRU(2, 3, rng=7), TypeError, r"GRU: rng must be a numpy Generator"),
    ("Parameter of strings", lambda: Parameter(np.array(["a"])),
     TypeError, r"Parameter: data must be numeric"),
    ("Parameter int trainable", lambda: Parameter(np.array([1, 2])),
     TypeError, r"Parameter: requires_grad needs a floating dtype, got int64"),
]


@pytest.mark.parametrize("what, build, error, match", CONSTRUCTORS,
                         ids=[c[0] for c in CONSTRUCTORS])
def test_constructor_rejects(what, build, error, match):
    with pytest.raises(error, match=match):
        build()


# ---- calls: inputs and states ---------------------------------------------------------------

def _observed(module):
    module.step_observers.append(3)
    return module


def _bi(layer_kw=None):
    return Bidirectional(Recurrent(GRUCell(2, 4), **(layer_kw or {})))


CALLS = [
    # (what, make module, call(module), error type, message)
    ("RNNCell h of batch 1", lambda: RNNCell(2, 4), lambda m: m(X, z(1, 4)),
     ValueError, r"RNNCell: state h has shape \(1, 4\), expected \(3, 4\) \(batch 3, hidden_size"),
    ("GRUCell h of batch 1", lambda: GRUCell(2, 4), lambda m: m(X, z(1, 4)),
     ValueError, r"GRUCell: state h has shape \(1, 4\), expected \(3, 4\)"),
    ("LSTMCell h of batch 1", lambda: LSTMCell(2, 4), lambda m: m(X, (z(1, 4), z(3, 4))),
     ValueError, r"LSTMCell: state h has shape \(1, 4\), expected \(3, 4\)"),
    ("LSTMCell c of width 1", lambda: LSTMCell(2, 4), lambda m: m(X, (z(3, 4), z(3, 1))),
     ValueError, r"LSTMCell: state c has shape \(3, 1\), expected \(3, 4\)"),
    ("RNNCell h too wide", lambda: RNNCell(2, 4), lambda m: m(X, z(3, 5)),
     ValueError, r"RNNCell: state h has shape \(3, 5\), expected \(3, 4\)"),
    ("GRUCell h 1-D", lambda: GRUCell(2, 4), lambda m: m(X, z(4)),
     ValueError, r"GRUCell: state h has shape \(4,\), expected \(3, 4\)"),
    ("GRUCell h 3-D", lambda: GRUCell(2, 4), lambda m: m(X, z(1, 3, 4)),
     ValueError, r"GRUCell: state h has shape \(1, 3, 4\)"),
    ("LSTMCell one tensor", lambda: LSTMCell(2, 4), lambda m: m(X, Tensor(z(3, 4))),
     TypeError, r"LSTMCell: state must be a tuple \(h, c\) of 2 tensors, got Tensor"),
    ("LSTMCell one ndarray", lambda: LSTMCell(2, 4), lambda m: m(X, z(3, 4)),
     TypeError, r"LSTMCell: state must be a tuple \(h, c\) of 2 tensors, got ndarray"),
    ("LSTMCell three parts", lambda: LSTMCell(2, 4), lambda m: m(X, (z(3, 4),) * 3),
     ValueError, r"LSTMCell: state must be a tuple \(h, c\) of 2 tensors, got 3"),
    ("LSTMCell one part", lambda: LSTMCell(2, 4), lambda m: m(X, (z(3, 4),)),
     ValueError, r"LSTMCell: state must be a tuple \(h, c\) of 2 tensors, got 1"),
    ("LSTMCell h None", lambda: LSTMCell(2, 4), lambda m: m(X, (None, z(3, 4))),
     TypeError, r"LSTMCell: state h is None"),
    ("GRUCell tuple state", lambda: GRUCell(2, 4), lambda m: m(X, (z(3, 4),)),
     TypeError, r"GRUCell: state must be one Tensor \(h\), got a tuple of 1"),
    ("RNNCell pair state", lambda: RNNCell(2, 4), lambda m: m(X, (z(3, 4), z(3, 4))),
     TypeError, r"RNNCell: state must be one Tensor"),
    ("GRUCell integer state", lambda: GRUCell(2, 4), lambda m: m(X, np.zeros((3, 4), int)),
     TypeError, r"GRUCell: state h must be a floating tensor, got dtype int64"),
    ("GRUCell string state", lambda: GRUCell(2, 4), lambda m: m(X, "h"),
     TypeError, r"GRUCell: state h must hold real numbers"),
    ("LSTMCell bool c", lambda: LSTMCell(2, 4), lambda m: m(X, (z(3, 4), np.zeros((3, 4), bool))),
     TypeError, r"LSTMCell: state c must be a floating tensor, got dtype bool"),
    ("cell integer input", lambda: GRUCell(2, 4), lambda m: m(np.zeros((3, 2), int)),
     TypeError, r"GRUCell: input must be a floating tensor, got dtype int64"),
    ("cell string input", lambda: RNNCell(2, 4), lambda m: m(np.array([["a", "b"]])),
     TypeError, r"RNNCell: input must hold real numbers"),
    ("cell ragged input", lambda: RNNCell(2, 4), lambda m: m([[0.0, 1.0], [1.0]]),
     ValueError, r"RNNCell: input is ragged"),
    ("cell 1-D input", lambda: GRUCell(2, 4), lambda m: m(z(2)),
     ValueError, r"GRUCell: expected input \(batch, input_size\), got shape \(2,\)"),
    ("cell 3-D input", lambda: LSTMCell(2, 4), lambda m: m(z(1, 3, 2)),
     ValueError, r"LSTMCell: expected input \(batch, input_size\), got shape \(1, 3, 2\)"),
    ("cell input width", lambda: LSTMCell(2, 4), lambda m: m(z(3, 5)),
     ValueError, r"LSTMCell: expected input width \(input_size\) 2, got 5"),
    ("cell None input", lambda: GRUCell(2, 4), lambda m: m(None),
     TypeError, r"GRUCell: input must hold real numbers"),
    ("custom cell part of batch 1", Scaled, lambda m: m(X, (z(3, 3), z(1, 1))),
     ValueError, r"Scaled: state \[1\] has shape \(1, 1\), expected \(3, 1\) \(what Scaled.init"),
    ("custom cell single tensor", Scaled, lambda m: m(X, z(3, 3)),
     TypeError, r"Scaled: state must be a tuple \(\[0\], \[1\]\) of 2 tensors, got ndarray"),
    ("initial_state negative batch", lambda: LSTMCell(2, 4), lambda m: m.initial_state(-1),
     ValueError, r"LSTMCell.initial_state: batch_size must be >= 0, got -1"),
    ("initial_state float batch", lambda: GRUCell(2, 4), lambda m: m.initial_state(2.0),
     TypeError, r"GRUCell.initial_state: batch_size must be an integer, got float"),
    ("Recurrent state of batch 1", lambda: Recurrent(GRUCell(2, 4)), lambda m: m(SEQ, z(1, 4)),
     ValueError, r"Recurrent\(GRUCell\): initial_state h has shape \(1, 4\), expected \(3, 4\)"),
    ("Recurrent LSTM c of width 1",
     lambda: Recurrent(LSTMCell(2, 4)), lambda m: m(SEQ, (z(3, 4), z(3, 1))),
     ValueError, r"Recurrent\(LSTMCell\): initial_state c has shape \(3, 1\), expected \(3, 4\)"),
    ("Recurrent LSTM one tensor", lambda: Recurrent(LSTMCell(2, 4)), lambda m: m(SEQ, z(3, 4)),
     TypeError, r"Recurrent\(LSTMCell\): initial_state must be a tuple \(h, c\)"),
    ("Recurrent state too wide", lambda: Recurrent(RNNCell(2, 4)), lambda m: m(SEQ, z(3, 6)),
     ValueError, r"Recurrent\(RNNCell\): initial_state h has shape \(3, 6\), expected \(3, 4\)"),
    ("Recurrent time-first state",
     lambda: Recurrent(RNNCell(2, 4), batch_first=False), lambda m: m(TSEQ, z(5, 4)),
     ValueError, r"initial_state h has shape \(5, 4\), expected \(3, 4\)"),
    ("Recurrent custom state", lambda: Recurrent(Scaled()), lambda m: m(SEQ, (z(3, 3), z(3, 3))),
     ValueError, r"Recurrent\(Scaled\): initial_state \[1\] has shape \(3, 3\), expected \(3, 1\)"),
    ("Recurrent 0 steps", lambda: Recurrent(GRUCell(2, 4)), lambda m: m(z(3, 0, 2)),
     ValueError, r"Recurrent: expected a non-empty 3-D input \(B, T, input_size\), .*\(3, 0, 2"),
    ("Recurrent 2-D input", lambda: Recurrent(GRUCell(2, 4)), lambda m: m(z(3, 2)),
     ValueError, r"Recurrent: expected a non-empty 3-D input"),
    ("Recurrent 4-D input", lambda: Recurrent(GRUCell(2, 4)), lambda m: m(z(1, 3, 5, 2)),
     ValueError, r"Recurrent: expected a non-empty 3-D input"),
    ("Recurrent input width", lambda: Recurrent(GRUCell(2, 4)), lambda m: m(z(3, 5, 3)),
     ValueError, r"Recurrent: the cell expects input width \(input_size\) 2, got 3"),
    ("Recurrent integer input",
     lambda: Recurrent(GRUCell(2, 4)), lambda m: m(np.zeros((3, 5, 2), int)),
     TypeError, r"Recurrent: input must be a floating tensor, got dtype int64"),
    ("Recurrent string input", lambda: Recurrent(GRUCell(2, 4)), lambda m: m("abc"),
     TypeError, r"Recurrent: input must hold real numbers"),
    ("Recurrent float lengths",
     lambda: Recurrent(GRUCell(2, 4)), lambda m: m(SEQ, lengths=[1.0, 2.0, 3.0]),
     TypeError, r"Recurrent: lengths must be 3 integers .*, got list of dtype float64"),
    ("Recurrent string lengths", lambda: Recurrent(GRUCell(2, 4)), lambda m: m(SEQ, lengths="abc"),
     TypeError, r"Recurrent: lengths must be 3 integers"),
    ("Recurrent ragged lengths",
     lambda: Recurrent(GRUCell(2, 4)), lambda m: m(SEQ, lengths=[[1], [1, 2]]),
     ValueError, r"Recurrent: lengths must be 3 integers .* ragged"),
    ("Recurrent lengths count", lambda: Recurrent(GRUCell(2, 4)), lambda m: m(SEQ, lengths=[1, 2]),
     ValueError, r"Recurrent: lengths must be 3 integers \(one per sequence\), got shape \(2,\)"),
    ("Recurrent lengths 0", lambda: Recurrent(GRUCell(2, 4)), lambda m: m(SEQ, lengths=[0, 2, 3]),
     ValueError, r"Recurrent: lengths must be in \[1, T=5\], got \[0\]"),
    ("Recurrent lengths above T",
     lambda: Recurrent(GRUCell(2, 4)), lambda m: m(SEQ, lengths=[6, 2, 3]),
     ValueError, r"Recurrent: lengths must be in \[1, T=5\], got \[6\]"),
    ("Bidirectional state not a pair", _bi, lambda m: m(SEQ, z(3, 4)),
     TypeError, r"Bidirectional: initial_state must be a pair \(forward_state, .* got ndarray"),
    ("Bidirectional state of 3", _bi, lambda m: m(SEQ, [z(3, 4)] * 3),
     ValueError, r"Bidirectional: initial_state must be a pair .* got 3 items"),
    ("Bidirectional state of batch 1", _bi, lambda m: m(SEQ, (z(3, 4), z(1, 4))),
     ValueError, r"Recurrent\(GRUCell\): initial_state h has shape \(1, 4\), expected \(3, 4\)"),
    ("Bidirectional bad lengths", _bi, lambda m: m(SEQ, lengths=[1, 2]),
     ValueError, r"lengths must be 3 integers"),
    ("GRU hx of batch 1", lambda: GRU(2, 3), lambda m: m(TSEQ, z(1, 1, 3)),
     ValueError, r"GRU: expected hx of shape \(1, 3, 3\) \(num_layers .* for h_0, got \(1, 1, 3\)"),
    ("GRU hx too wide", lambda: GRU(2, 3), lambda m: m(TSEQ, z(1, 3, 4)),
     ValueError, r"GRU: expected hx of shape \(1, 3, 3\) .* got \(1, 3, 4\)"),
    ("GRU hx layers", lambda: GRU(2, 3, num_layers=2), lambda m: m(TSEQ, z(1, 3, 3)),
     ValueError, r"GRU: expected hx of shape \(2, 3, 3\)"),
    ("GRU hx bidirectional", lambda: GRU(2, 3, bidirectional=True), lambda m: m(TSEQ, z(1, 3, 3)),
     ValueError, r"GRU: expected hx of shape \(2, 3, 3\)"),
    ("GRU hx tuple", lambda: GRU(2, 3), lambda m: m(TSEQ, (z(1, 3, 3),)),
     TypeError, r"GRU: hx must be one Tensor h_0, got a tuple of 1"),
    ("RNN hx integer", lambda: RNN(2, 3), lambda m: m(TSEQ, np.zeros((1, 3, 3), int)),
     TypeError, r"RNN: hx h_0 must be a floating tensor, got dtype int64"),
    ("LSTM hx one tensor", lambda: LSTM(2, 3), lambda m: m(TSEQ, z(1, 3, 3)),
     TypeError, r"LSTM: hx must be a tuple \(h_0, c_0\), got ndarray"),
    ("LSTM hx three", lambda: LSTM(2, 3), lambda m: m(TSEQ, (z(1, 3, 3),) * 3),
     ValueError, r"LSTM: hx must be a tuple \(h_0, c_0\) of 2 tensors, got 3"),
    ("LSTM c_0 of width 1", lambda: LSTM(2, 3), lambda m: m(TSEQ, (z(1, 3, 3), z(1, 3, 1))),
     ValueError, r"LSTM: expected hx of shape \(1, 3, 3\) .* for c_0, got \(1, 3, 1\)"),
    ("LSTM h_0 of batch 1", lambda: LSTM(2, 3), lambda m: m(TSEQ, (z(1, 1, 3), z(1, 3, 3))),
     ValueError, r"LSTM: expected hx of shape \(1, 3, 3\) .* for h_0, got \(1, 1, 3\)"),
    ("LSTM c_0 None", lambda: LSTM(2, 3), lambda m: m(TSEQ, (z(1, 3, 3), None)),
     TypeError, r"LSTM: hx c_0 must hold real numbers"),
    ("unbatched hx 3-D", lambda: GRU(2, 3), lambda m: m(z(5, 2), z(1, 1, 3)),
     ValueError, r"GRU: expected hx of shape \(1, 3\) \(num_layers \* num_directions, hidden_"),
    ("stack 4-D input", lambda: GRU(2, 3), lambda m: m(z(5, 3, 2, 1)),
     ValueError, r"GRU: expected a non-empty 3-D input \(or 2-D unbatched\), got .*\(5, 3, 2, 1"),
    ("stack 1-D input", lambda: LSTM(2, 3), lambda m: m(z(2)),
     ValueError, r"LSTM: expected a non-empty 3-D input"),
    ("stack 0 steps", lambda: LSTM(2, 3), lambda m: m(z(0, 3, 2)),
     ValueError, r"LSTM: expected a non-empty 3-D input"),
    ("stack 0 steps batch_first", lambda: LSTM(2, 3, batch_first=True), lambda m: m(z(3, 0, 2)),
     ValueError, r"LSTM: expected a non-empty 3-D input"),
    ("stack input width", lambda: LSTM(2, 3), lambda m: m(z(5, 3, 4)),
     ValueError, r"LSTM: expected input width \(input_size\) 2, got 4"),
    ("stack integer input", lambda: GRU(2, 3), lambda m: m(np.zeros((5, 3, 2), int)),
     TypeError, r"GRU: input must be a floating tensor, got dtype int64"),
    ("stack None input", lambda: GRU(2, 3), lambda m: m(None),
     TypeError, r"GRU: input must hold real numbers"),
    ("stack bad lengths", lambda: LSTM(2, 3), lambda m: m(TSEQ, lengths=[6, 1, 1]),
     ValueError, r"LSTM: lengths must be in \[1, T=5\], got \[6\]"),
    ("Linear input width", lambda: Linear(3, 2), lambda m: m(z(2, 5)),
     ValueError, r"Linear: input of shape \(2, 5\) needs a last dim of 3"),
    ("Linear integer input", lambda: Linear(2, 2), lambda m: m(np.zeros((3, 2), int)),
     TypeError, r"Linear: input must be a floating tensor, got dtype int64"),
    ("Linear string input", lambda: Linear(2, 2), lambda m: m("ab"),
     TypeError, r"Linear: input must hold real numbers"),
    ("Embedding float indices", lambda: Embedding(3, 2), lambda m: m(np.array([0.0])),
     IndexError, r"embedding: indices must be integers, got float64"),
    ("Embedding bool indices", lambda: Embedding(3, 2), lambda m: m(np.array([True])),
     IndexError, r"embedding: indices must be integers, got bool"),
    ("Embedding string indices", lambda: Embedding(3, 2), lambda m: m(np.array(["a"])),
     TypeError, r"embedding: indices must hold real numbers"),
    ("Embedding index out of range", lambda: Embedding(3, 2), lambda m: m(np.array([3])),
     IndexError, r"embedding: index 3 is out of range for a table of 3 rows"),
    ("Embedding negative index", lambda: Embedding(3, 2), lambda m: m(np.array([-1])),
     IndexError, r"embedding: index -1 is out of range for a table of 3 rows"),
    ("Recurrent observer not callable",
     lambda: _observed(Recurrent(GRUCell(2, 4))), lambda m: m(SEQ),
     TypeError, r"Recurrent: step_observers\[0\] is a int, expected a callable"),
    ("stack observer not callable", lambda: _observed(LSTM(2, 3)), lambda m: m(TSEQ),
     TypeError, r"LSTM: step_observers\[0\] is a int"),
    ("reset_parameters rng", lambda: GRUCell(2, 3), lambda m: m.reset_parameters(rng=3),
     TypeError, r"GRUCell.reset_parameters: rng must be a numpy Generator"),
    ("Sequential string index", lambda: Sequential(Linear(2, 2)), lambda m: m["0"],
     TypeError, r"Sequential: index must be an int or a slice, got str"),
    ("Sequential index out of range", lambda: Sequential(Linear(2, 2)), lambda m: m[1],
     IndexError, r"Sequential: index 1 is out of range for 1 modules"),
]


def _snapshot(module: Module) -> list:
    return [(name, id(p), p.data.copy(), p.grad, p.requires_grad)
            for name, p in module.named_parameters()]


def _unchanged(module: Module, before: list) -> None:
    after = _snapshot(module)
    assert [(n, i, g, r) for n, i, _, g, r in after] == [(n, i, g, r) for n, i, _, g, r in before]
    for (_, _, a, _, _), (_, _, b, _, _) in zip(after, before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("what, make, call, error, match", CALLS, ids=[c[0] for c in CALLS])
def test_call_rejects_and_changes_nothing(what, make, call, error, match):
    module = make()
    before = _snapshot(module)
    with pytest.raises(error, match=match):
        call(module)
    _unchanged(module, before)


# ---- Module methods -------------------------------------------------------------------------

def _lin_state(**over):
    state = {"weight": z(2, 3), "bias": z(2)}
    state.update(over)
    return state


MODULE_CALLS = [
    ("assign Tensor over Parameter", lambda m: setattr(m, "weight", Tensor(z(2, 3))),
     TypeError, r"Linear: cannot assign Tensor to parameter 'weight' \(a Parameter or None ex"),
    ("assign ndarray over Parameter", lambda m: setattr(m, "weight", z(2, 3)),
     TypeError, r"Linear: cannot assign ndarray to parameter 'weight'"),
    ("assign float over Parameter", lambda m: setattr(m, "bias", 0.0),
     TypeError, r"Linear: cannot assign float to parameter 'bias'"),
    ("assign Module over Parameter", lambda m: setattr(m, "bias", Linear(1, 1)),
     TypeError, r"Linear: cannot assign Linear to parameter 'bias'"),
    ("load a list", lambda m: m.load_state_dict([("weight", z(2, 3))]),
     TypeError, r"load_state_dict into Linear: state_dict must be a mapping .*, got list"),
    ("load None", lambda m: m.load_state_dict(None),
     TypeError, r"load_state_dict into Linear: state_dict must be a mapping"),
    ("load strings", lambda m: m.load_state_dict(_lin_state(weight=np.full((2, 3), "a"))),
     RuntimeError, r"into Linear: weight: expected a real numeric array, got dtype <U1"),
    ("load objects", lambda m: m.load_state_dict(_lin_state(bias=np.array([None, None]))),
     ValueError, r"bias: expected a real numeric array, got dtype object"),
    ("load complex", lambda m: m.load_state_dict(_lin_state(weight=np.zeros((2, 3), complex))),
     ValueError, r"weight: expected a real numeric array, got dtype complex128"),
    ("load ragged", lambda m: m.load_state_dict(_lin_state(weight=[[1.0, 2.0], [3.0]])),
     ValueError, r"weight: expected an array, got list that numpy cannot read"),
    ("load wrong shape", lambda m: m.load_state_dict(_lin_state(bias=z(3))),
     ValueError, r"bias: shape \(3,\) in the state dict, \(2,\) in the module"),
    ("load all problems at once", lambda m: m.load_state_dict({"weight": z(3, 3), "extra": z(1)}),
     ValueError, r"weight: shape \(3, 3\).*missing key bias.*unexpected key extra"),
    ("load strict str", lambda m: m.load_state_dict(_lin_state(), strict="no"),
     TypeError, r"load_state_dict into Linear: strict must be a bool, got str"),
    ("to a non-dtype", lambda m: m.to("foo"),
     TypeError, r"to: dtype must be a numpy float dtype or its name, got str 'foo'"),
    ("to None", lambda m: m.to(None),
     TypeError, r"to: dtype must be a numpy float dtype or its name, got NoneType"),
    ("to int", lambda m: m.to(np.int32), TypeError, r"to: expected a floating dtype, got int32"),
    ("train(1)", lambda m: m.train(1), ValueError, r"train: mode must be a bool, got int 1"),
    ("train('yes')", lambda m: m.train("yes"), ValueError, r"train: mode must be a bool, got str"),
    ("summary print_fn", lambda m: m.summary(print_fn=3),
     TypeError, r"summary: print_fn must be a callable or None, got int"),
    ("forward with weight None", lambda m: (setattr(m, "weight", None), m(z(1, 3))),
     TypeError, r"Linear: weight is None"),
]


@pytest.mark.parametrize("what, call, error, match", MODULE_CALLS, ids=[c[0] for c in MODULE_CALLS])
def test_module_method_rejects_and_changes_nothing(what, call, error, match):
    lin = Linear(3, 2)
    lin.weight.grad = np.ones((2, 3), np.float32)
    before, training = _snapshot(lin), lin.training
    with pytest.raises(error, match=match):
        call(lin)
    if what != "forward with weight None":  # that case emptied the slot on purpose
        _unchanged(lin, before)
        assert lin.weight is lin._parameters["weight"] and lin.training is training


class Sizeless(Cell):
    def forward(self, x, state):
        return state


def test_a_cell_without_hidden_size_says_what_to_define():
    cell = Sizeless()
    with pytest.raises(AttributeError, match=r"Sizeless: set self.hidden_size or override "
                                             r"initial_state"):
        cell(X)
    with pytest.raises(AttributeError, match=r"Sizeless.reset_parameters: set self.hidden_size"):
        Bidirectional(Recurrent(cell))
    state = cell(X, Tensor(z(3, 7)))  # given a state, only its batch can be checked
    assert state.shape == (3, 7)
    with pytest.raises(ValueError, match=r"Sizeless: state h has shape \(1, 7\), expected a "
                                         r"batch of 3 first"):
        cell(X, z(1, 7))


def test_sequential_rejects_a_non_module_over_a_child():
    seq = Sequential(Linear(2, 2))
    child = seq[0]
    with pytest.raises(TypeError, match=r"Sequential: cannot assign int to sub-module '0' "
                                        r"\(a Module or None expected\)"):
        seq.__setattr__("0", 3)
    assert seq[0] is child and list(seq.state_dict()) == ["0.weight", "0.bias"]
