"""tinygrad_rnn: a numpy reverse-mode autodiff micro-framework for recurrent networks."""

from tinygrad_rnn import autograd, data, diagnostics, functional, nn, optim, train
from tinygrad_rnn.autograd import grad
from tinygrad_rnn.grad_check import (
    GradcheckError,
    GradcheckRecord,
    gradcheck,
    gradcheck_module,
    gradcheck_report,
)
from tinygrad_rnn.gradgrad_check import gradgradcheck, gradgradcheck_module
from tinygrad_rnn.jit import ReplayFallbackWarning, ReplayMismatchError, jit
from tinygrad_rnn.serialization import load, save
from tinygrad_rnn.tensor import (
    Tensor,
    cat,
    enable_grad,
    get_default_dtype,
    graph_scope,
    no_grad,
    set_default_dtype,
    set_grad_enabled,
    stack,
    where,
)
from tinygrad_rnn.viz import draw_graph

__version__ = "0.1.0"
__all__ = [
    "GradcheckError", "GradcheckRecord", "Tensor", "cat", "functional", "get_default_dtype",
    "gradcheck", "gradcheck_module", "gradcheck_report", "graph_scope", "load", "nn",
    "no_grad", "save", "set_default_dtype", "stack", "where",
]
__all__ += ["draw_graph"]
__all__ += ["optim"]
__all__ += ["diagnostics"]
__all__ += ["data", "train"]
__all__ += ["autograd", "grad"]
__all__ += ["gradgradcheck", "gradgradcheck_module"]
__all__ += ["enable_grad", "set_grad_enabled"]
__all__ += ["ReplayFallbackWarning", "ReplayMismatchError", "jit"]
