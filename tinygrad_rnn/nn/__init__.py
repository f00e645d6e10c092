"""Neural-network modules: Module, Parameter, layers, recurrent cells and stacks."""

from tinygrad_rnn.nn.layers import Dropout, Embedding, Linear, Sequential
from tinygrad_rnn.nn.module import Module, Parameter, StateDictError

__all__ = ["Module", "Parameter", "StateDictError"]
__all__ += ["Dropout", "Embedding", "Linear", "Sequential"]
