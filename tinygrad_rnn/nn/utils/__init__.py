"""Utilities for recurrent modules, as torch.nn.utils: `rnn` packs and pads sequences."""

from tinygrad_rnn.nn.utils import rnn

__all__ = ["rnn"]
