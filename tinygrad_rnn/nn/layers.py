"""Feed-forward layers as torch: Linear, Embedding, Dropout, Sequential.

Parameters are created in the default dtype. Random initialisation draws from `rng` (a numpy
Generator) when given, else from numpy's global generator, so `np.random.seed` makes a model
reproducible the way `torch.manual_seed` does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from tinygrad_rnn import functional as F
from tinygrad_rnn import ops
from tinygrad_rnn.nn.module import Module, Parameter
from tinygrad_rnn.tensor import Tensor, _wrap, apply, get_default_dtype
from tinygrad_rnn.validate import (
    as_array,
    check_bool,
    check_real,
    check_rng,
    check_size,
    float_input,
)


def _rng(rng: np.random.Generator | None, who: str) -> Any:
    return np.random if check_rng(who, rng) is None else rng


class Linear(Module):
    """y = x @ weight.T + bias, as torch.nn.Linear (weight and bias ~ U(-1/sqrt(in), 1/sqrt(in))).

    Shape: input (..., in_features) -> (..., out_features); weight (out_features, in_features),
    bias (out_features,).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 rng: np.random.Generator | None = None):
        super().__init__()
        in_features = check_size("Linear", "in_features", in_features)
        out_features = check_size("Linear", "out_features", out_features)
        bias = check_bool("Linear", "bias", bias)
        self.in_features, self.out_features = in_features, out_features
        k, dt, r = 1.0 / np.sqrt(max(in_features, 1)), get_default_dtype(), _rng(rng, "Linear")
        self.weight = Parameter(r.uniform(-k, k, (out_features, in_features)).astype(dt))
        self.bias = Parameter(r.uniform(-k, k, (out_features,)).astype(dt)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        x = float_input("Linear", "input", x)
        if x.shape[-1:] != (self.in_features,):
            raise ValueError(f"Linear: input of shape {x.shape} needs a last dim of "
                             f"{self.in_features}")
        if self.weight is None:
            raise TypeError("Linear: weight is None (assign a Parameter to it)")
        if self.weight.shape != (self.out_features, self.in_features):
            raise ValueError(f"Linear: weight has shape {self.weight.shape}, expected "
                             f"{(self.out_features, self.in_features)} (out, in_features)")
        if self.bias is not None and self.bias.shape != (self.out_features,):
            raise ValueError(f"Linear: bias has shape {self.bias.shape}, expected "
                             f"{(self.out_features,)} (out_features,)")
        out = x @ self.weight.T
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


class Embedding(Module):
    """A lookup table of num_embeddings vectors, as torch.nn.Embedding (weight ~ N(0, 1)).

    Shape: input integer array or Tensor (*) -> (*, embedding_dim); weight
    (num_embeddings, embedding_dim). The padding_idx row starts at zero and gets no gradient;
    an index out of range is an IndexError naming it and the table size. With mask_zero (Keras),
    `compute_mask(indices)` gives `indices != 0`, the `mask` a recurrent layer takes.
    """

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None,
                 *, mask_zero: bool = False, rng: np.random.Generator | None = None,
                 _weight: Any = None):
        super().__init__()
        num_embeddings = check_size("Embedding", "num_embeddings", num_embeddings)
        embedding_dim = check_size("Embedding", "embedding_dim", embedding_dim)
        padding_idx = F.check_padding_idx("Embedding", padding_idx, num_embeddings)
        self.mask_zero = check_bool("Embedding", "mask_zero", mask_zero)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.padding_idx = padding_idx
        if _weight is None:
            w = _rng(rng, "Embedding").standard_normal((num_embeddings, embedding_dim))
            w = w.astype(get_default_dtype())
            if padding_idx is not None:
                w[padding_idx] = 0.0
        else:
            w = as_array("Embedding", "_weight", _weight)
            if w.shape != (num_embeddings, embedding_dim):
                raise ValueError(f"Embedding: _weight has shape {w.shape}, expected "
                                 f"{(num_embeddings, embedding_dim)} (num_embeddings, "
                                 f"embedding_dim)")
        self.weight = Parameter(w, requires_grad=w.dtype.kind == "f")

    @classmethod
    def from_pretrained(cls, weights: Any, freeze: bool = True,
                        padding_idx: int | None = None, *, mask_zero: bool = False
                        ) -> Embedding:
        """An Embedding holding a copy of `weights` (num_embeddings, embedding_dim), as torch.

        freeze=True sets requires_grad=False. The dtype is kept, as torch: an integer or
        boolean table works frozen, and freeze=False with one is a TypeError (only floating
        parameters can learn). The padding row is kept as given (torch does not zero it here
        either). Errors: ValueError unless weights is 2-D.
        """
        who = "Embedding.from_pretrained"
        freeze = check_bool(who, "freeze", freeze)
        w = np.array(as_array(who, "weights", weights))
        if w.ndim != 2:
            raise ValueError(f"{who}: weights must be 2-D, got shape {w.shape} (expected "
                             f"(num_embeddings, embedding_dim))")
        if not freeze and w.dtype.kind != "f":
            raise TypeError(f"{who}: freeze=False needs floating weights (only they can "
                            f"require grad), got dtype {w.dtype}")
        emb = cls(w.shape[0], w.shape[1], padding_idx, mask_zero=mask_zero, _weight=w)
        emb.weight.requires_grad = not freeze
        return emb

    def forward(self, indices: Any) -> Tensor:
        return F.embedding(indices, self.weight, self.padding_idx)

    def compute_mask(self, indices: Any, mask: Any = None) -> Tensor | None:
        """Keras: `indices != 0` as a bool Tensor (*) when mask_zero, else None (no mask).

        Index 0 then means "no token here": pass the result as a recurrent layer's `mask`.
        `mask` is the incoming mask of Keras' signature; an Embedding starts a mask, so it is
        not read (as Keras). Indices must be integers (as the forward pass), of any shape.
        """
        if not self.mask_zero:
            return None
        idx = as_array("Embedding.compute_mask", "indices", indices)
        if idx.dtype.kind not in "iu":
            raise IndexError(f"Embedding.compute_mask: indices must be integers, got "
                             f"{idx.dtype} of shape {idx.shape}")
        # the compare primitive on the caller's array itself: a recorded step (jit.py) binds it
        return apply(ops.Compare, _wrap(idx), Tensor(np.zeros((), idx.dtype)), op="not_equal")

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        zero = ", mask_zero=True" if self.mask_zero else ""
        return f"{self.num_embeddings}, {self.embedding_dim}{pad}{zero}"


class Dropout(Module):
    """Inverted dropout while self.training (see functional.dropout); identity in eval mode.

    Shape: any; the output has the input's shape. `rng` seeds the masks.
    """

    def __init__(self, p: float = 0.5, *, rng: np.random.Generator | None = None):
        super().__init__()
        self.p, self.rng = check_real("Dropout", "p", p, 0.0, 1.0), check_rng("Dropout", rng)

    def forward(self, x: Tensor) -> Tensor:
        return F.dropout(x, self.p, self.training, self.rng)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Sequential(Module):
    """Modules applied in order; registered as "0", "1", ... as torch (state_dict "0.weight").

    Supports len, iteration and indexing (an int gives a module, a slice a new Sequential).
    Shape: whatever the first module takes -> whatever the last returns.
    """

    def __init__(self, *modules: Module):
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: argument {i} is a {type(m).__name__}, not a Module")
            setattr(self, str(i), m)

    def forward(self, x: Any) -> Any:
        for m in self:
            x = m(x)
        return x

    def __len__(self) -> int:
        return sum(1 for _ in self.children())

    def __iter__(self) -> Iterator[Module]:
        return self.children()

    def __getitem__(self, index: int | slice) -> Any:
        mods = list(self.children())
        if isinstance(index, slice):
            return Sequential(*mods[index])
        if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
            raise TypeError(f"Sequential: index must be an int or a slice, got "
                            f"{type(index).__name__}")
        if not -len(mods) <= index < len(mods):
            raise IndexError(f"Sequential: index {index} is out of range for {len(mods)} modules")
        return mods[index]
