"""Neural-network modules: Module, Parameter, layers, recurrent cells and stacks."""

from tinygrad_rnn.nn.cells import Cell, GRUCell, LSTMCell, RNNCell
from tinygrad_rnn.nn.layers import Dropout, Embedding, Linear, Sequential
from tinygrad_rnn.nn.module import Module, Parameter, StateDictError
from tinygrad_rnn.nn.recurrent import GRU, LSTM, RNN, Bidirectional, Recurrent

__all__ = ["Module", "Parameter", "StateDictError"]
__all__ += ["Dropout", "Embedding", "Linear", "Sequential"]
__all__ += ["Cell", "GRUCell", "LSTMCell", "RNNCell"]
__all__ += ["GRU", "LSTM", "RNN", "Bidirectional", "Recurrent"]
