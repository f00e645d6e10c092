"""Neural-network modules: Module, Parameter, layers, recurrent cells and stacks."""

from tinygrad_rnn.nn.module import Module, Parameter, StateDictError

__all__ = ["Module", "Parameter", "StateDictError"]
