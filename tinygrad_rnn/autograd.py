"""Higher-order derivatives and functional transforms: `grad` (torch.autograd.grad, also at the
top level), torch.autograd.functional's vjp, jvp, jacobian, hessian, hvp and vhp, and
`checkpoint` (torch.utils.checkpoint). Every primitive's backward is differentiable, so
`grad(..., create_graph=True)` can be differentiated again, to any order.
"""

from __future__ import annotations

from tinygrad_rnn.autograd_grad import GradArgumentError, UnusedInputError, grad
from tinygrad_rnn.checkpoint import checkpoint
from tinygrad_rnn.functional_transforms import hessian, hvp, jacobian, jvp, vhp, vjp

__all__ = ["GradArgumentError", "UnusedInputError", "checkpoint", "grad", "hessian", "hvp",
           "jacobian", "jvp", "vhp", "vjp"]
