"""Hand-written numpy LSTM training step: the baseline of benchmarks/bench_lstm.py.

One step is forward, full BPTT and every weight gradient of a one-layer LSTM (torch layout and
gate order i, f, g, o) with a linear readout of the last h and softmax cross-entropy (mean over
the batch). It is written the way a careful numpy user would: the input projection of all
steps is one matmul, the four gates of a step come from one matmul, activations are computed in
place into buffers allocated once per call, and the weight gradients of all steps are two
matmuls after the time loop. This file is a yardstick only: the framework itself never has a
hand-written backward (its BPTT comes from the engine).

`python benchmarks/numpy_lstm.py --check` compares these gradients with tinygrad_rnn's in
float64 (nn.LSTM and a user-written cell loop) and, when installed, torch's.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "fc_weight", "fc_bias")


def init_params(input_size: int, hidden_size: int, classes: int, seed: int = 0,
                dtype=np.float32) -> dict[str, np.ndarray]:
    """Torch-like U(-k, k) parameters, torch layout: weight_ih (4H, I), weight_hh (4H, H),
    biases (4H,), fc_weight (C, H), fc_bias (C,)."""
    rng = np.random.default_rng(seed)
    k = 1.0 / np.sqrt(hidden_size)
    shapes = {"weight_ih": (4 * hidden_size, input_size),
              "weight_hh": (4 * hidden_size, hidden_size),
              "bias_ih": (4 * hidden_size,), "bias_hh": (4 * hidden_size,),
              "fc_weight": (classes, hidden_size), "fc_bias": (classes,)}
    return {n: rng.uniform(-k, k, shapes[n]).astype(dtype) for n in NAMES}


def make_batch(batch: int, steps: int, input_size: int, classes: int, seed: int = 1,
               dtype=np.float32) -> tuple[np.ndarray, np.ndarray]:
    """X (B, T, I) standard normal and integer targets y (B,) in [0, classes)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, steps, input_size)).astype(dtype)
    return x, rng.integers(0, classes, batch)


def _sigmoid_(a: np.ndarray) -> None:
    """In place: sigmoid(a) = (1 + tanh(a / 2)) / 2, which never overflows."""
    a *= 0.5
    np.tanh(a, out=a)
    a += 1.0
    a *= 0.5


def lstm_step(p: dict[str, np.ndarray], x: np.ndarray,
              y: np.ndarray) -> tuple[float, dict[str, np.ndarray]]:
    """Loss and gradients of one training step.

    Shape: x (B, T, I) batch first, y (B,) class indices; p as `init_params`.
    Returns (loss, grads) with grads[name] shaped like p[name].
    """
    B, T, _ = x.shape
    H = p["weight_hh"].shape[1]
    dt = x.dtype
    w_hh = p["weight_hh"]
    # time-major copy of x so each step's slice of the projection is contiguous
    x_tm = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(T * B, -1)
    gates = (x_tm @ p["weight_ih"].T).reshape(T, B, 4 * H)  # becomes the activations
    gates += p["bias_ih"]
    gates += p["bias_hh"]
    hs = np.zeros((T + 1, B, H), dt)  # hs[t + 1] = h_t, hs[0] = h_{-1} = 0
    cs = np.zeros((T + 1, B, H), dt)
    tanh_c = np.empty((T, B, H), dt)
    for t in range(T):
        a = gates[t]
        a += hs[t] @ w_hh.T
        _sigmoid_(a[:, :2 * H])  # i, f
        np.tanh(a[:, 2 * H:3 * H], out=a[:, 2 * H:3 * H])  # g
        _sigmoid_(a[:, 3 * H:])  # o
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        c = cs[t + 1]
        np.multiply(f, cs[t], out=c)
        c += i * g
        np.tanh(c, out=tanh_c[t])
        np.multiply(o, tanh_c[t], out=hs[t + 1])

    # readout and softmax cross-entropy (mean over the batch)
    h_last = hs[T]
    logits = h_last @ p["fc_weight"].T + p["fc_bias"]
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    s = e.sum(axis=1, keepdims=True)
    rows = np.arange(B)
    loss = float(np.mean(np.log(s[:, 0]) - logits[rows, y]))
    dlogits = e / s
    dlogits[rows, y] -= 1.0
    dlogits /= B
    grads = {"fc_weight": dlogits.T @ h_last, "fc_bias": dlogits.sum(axis=0)}

    # BPTT: dgates[t] = dLoss/d(pre-activation gates of step t)
    dgates = np.empty((T, B, 4 * H), dt)
    dh = dlogits @ p["fc_weight"]
    dc = np.zeros((B, H), dt)
    for t in range(T - 1, -1, -1):
        a, tc = gates[t], tanh_c[t]
        i, f, g, o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        d = dgates[t]
        di, df, dg, do = d[:, :H], d[:, H:2 * H], d[:, 2 * H:3 * H], d[:, 3 * H:]
        np.multiply(dh, tc, out=do)
        do *= o * (1.0 - o)
        dc += dh * o * (1.0 - tc * tc)
        np.multiply(dc, g, out=di)
        di *= i * (1.0 - i)
        np.multiply(dc, i, out=dg)
        dg *= 1.0 - g * g
        np.multiply(dc, cs[t], out=df)
        df *= f * (1.0 - f)
        dc *= f
        if t:
            dh = d @ w_hh
    dg_flat = dgates.reshape(T * B, 4 * H)
    grads["weight_ih"] = dg_flat.T @ x_tm
    grads["weight_hh"] = dg_flat.T @ hs[:T].reshape(T * B, H)
    grads["bias_ih"] = dg_flat.sum(axis=0)
    grads["bias_hh"] = grads["bias_ih"].copy()
    return loss, grads


# ---- gradient check against the framework (float64) ---------------------------------------

def _tinygrad_module_grads(p, x, y):
    """nn.LSTM(batch_first=True) + nn.Linear + functional.cross_entropy, float64."""
    from tinygrad_rnn import Tensor, nn
    from tinygrad_rnn import functional as F

    H, I = p["weight_hh"].shape[1], p["weight_ih"].shape[1]
    lstm, fc = nn.LSTM(I, H, batch_first=True), nn.Linear(H, p["fc_weight"].shape[0])
    lstm.to(np.float64), fc.to(np.float64)  # before loading: a load casts to the param dtype
    lstm.load_state_dict({f"{n}_l0": p[n] for n in NAMES[:4]})
    fc.load_state_dict({"weight": p["fc_weight"], "bias": p["fc_bias"]})
    _, (h_n, _) = lstm(Tensor(x))
    loss = F.cross_entropy(fc(h_n[-1]), y)
    loss.backward()
    got = {f"{n}": getattr(lstm, f"{n}_l0").grad for n in NAMES[:4]}
    got.update(fc_weight=fc.weight.grad, fc_bias=fc.bias.grad)
    return loss.item(), got


def _tinygrad_loop_grads(p, x, y):
    """A user's cell loop of Tensor ops on (I, 4H) / (H, 4H) weights, float64."""
    from tinygrad_rnn import Tensor
    from tinygrad_rnn import functional as F

    w_ih = Tensor(p["weight_ih"].T.copy(), requires_grad=True)
    w_hh = Tensor(p["weight_hh"].T.copy(), requires_grad=True)
    b = Tensor(p["bias_ih"] + p["bias_hh"], requires_grad=True)
    fw = Tensor(p["fc_weight"].T.copy(), requires_grad=True)
    fb = Tensor(p["fc_bias"], requires_grad=True)
    xs = Tensor(x)
    B, T, _ = x.shape
    h = c = Tensor(np.zeros((B, w_hh.shape[0]), x.dtype))
    for t in range(T):
        i, f, g, o = (xs[:, t] @ w_ih + h @ w_hh + b).chunk(4, axis=1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
    loss = F.cross_entropy(h @ fw + fb, y)
    loss.backward()
    return loss.item(), {"weight_ih": w_ih.grad.T, "weight_hh": w_hh.grad.T, "bias_ih": b.grad,
                         "bias_hh": b.grad, "fc_weight": fw.grad.T, "fc_bias": fb.grad}


def _torch_grads(p, x, y):
    import torch

    H, I = p["weight_hh"].shape[1], p["weight_ih"].shape[1]
    lstm = torch.nn.LSTM(I, H, batch_first=True).double()
    fc = torch.nn.Linear(H, p["fc_weight"].shape[0]).double()
    with torch.no_grad():
        for n in NAMES[:4]:
            getattr(lstm, f"{n}_l0").copy_(torch.from_numpy(p[n]))
        fc.weight.copy_(torch.from_numpy(p["fc_weight"]))
        fc.bias.copy_(torch.from_numpy(p["fc_bias"]))
    _, (h_n, _) = lstm(torch.from_numpy(x))
    loss = torch.nn.functional.cross_entropy(fc(h_n[-1]), torch.from_numpy(y))
    loss.backward()
    got = {n: getattr(lstm, f"{n}_l0").grad.numpy() for n in NAMES[:4]}
    got.update(fc_weight=fc.weight.grad.numpy(), fc_bias=fc.bias.grad.numpy())
    return loss.item(), got


def check(batch: int = 3, steps: int = 7, input_size: int = 4, hidden_size: int = 5,
          classes: int = 3, rtol: float = 1e-9, atol: float = 1e-12,
          with_torch: bool = True) -> list[str]:
    """Assert, in float64, that `lstm_step` matches the framework's loss and gradients.

    Returns the names of the references it was compared with; raises AssertionError naming
    the reference, the gradient and the worst error otherwise.
    """
    p = init_params(input_size, hidden_size, classes, seed=3, dtype=np.float64)
    x, y = make_batch(batch, steps, input_size, classes, seed=4, dtype=np.float64)
    loss, grads = lstm_step(p, x, y)
    refs = {"tinygrad_rnn nn.LSTM": _tinygrad_module_grads,
            "tinygrad_rnn cell loop": _tinygrad_loop_grads}
    if with_torch:
        try:
            import torch  # noqa: F401
            refs["torch nn.LSTM"] = _torch_grads
        except ImportError:
            pass
    for who, fn in refs.items():
        ref_loss, ref = fn(p, x, y)
        if not np.isclose(loss, ref_loss, rtol=rtol, atol=atol):
            raise AssertionError(f"numpy_lstm: loss {loss!r} differs from {who}'s {ref_loss!r}")
        for n in NAMES:
            if grads[n].shape != ref[n].shape or not np.allclose(grads[n], ref[n], rtol, atol):
                err = np.abs(grads[n] - ref[n]).max() if grads[n].shape == ref[n].shape else None
                raise AssertionError(f"numpy_lstm: d{n} {grads[n].shape} differs from {who}'s "
                                     f"{ref[n].shape} (max abs err {err})")
    return list(refs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="compare gradients with tinygrad_rnn (and torch) in float64")
    args = ap.parse_args()
    if not args.check:
        ap.print_help()
        return
    refs = check()
    print(f"numpy_lstm gradients match {', '.join(refs)} (float64, rtol 1e-9)")


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
