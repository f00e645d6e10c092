"""The round-two layer features together: a packed, unsorted batch through a 2-layer
bidirectional LSTM with proj_size equals torch (values, final states, every gradient)."""

import numpy as np
import pytest

from tinygrad_rnn import Tensor, nn
from tinygrad_rnn.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("batch_first", [True, False])
def test_packed_projected_bidirectional_lstm_equals_torch(batch_first):
    torch.manual_seed(0)
    theirs = torch.nn.LSTM(3, 6, num_layers=2, bidirectional=True, proj_size=4,
                           batch_first=batch_first).double()
    ours = nn.LSTM(3, 6, num_layers=2, bidirectional=True, proj_size=4,
                   batch_first=batch_first).to(np.float64)
    ours.load_state_dict({k: v.detach().numpy() for k, v in theirs.state_dict().items()})
    lengths = [2, 5, 3]
    x = np.random.default_rng(0).standard_normal((3, 5, 3) if batch_first else (5, 3, 3))
    tx = torch.tensor(x, requires_grad=True)
    tpacked = torch.nn.utils.rnn.pack_padded_sequence(tx, torch.tensor(lengths), batch_first,
                                                      enforce_sorted=False)
    tout, (th, tc) = theirs(tpacked)
    tpad, _ = torch.nn.utils.rnn.pad_packed_sequence(tout, batch_first)
    X = Tensor(x, requires_grad=True)
    out, (h, c) = ours(pack_padded_sequence(X, lengths, batch_first, enforce_sorted=False))
    pad, _ = pad_packed_sequence(out, batch_first)
    for a, b in ((pad, tpad), (h, th), (c, tc)):
        np.testing.assert_allclose(a.data, b.detach().numpy(), atol=1e-12)
    (tpad.sum() + 2 * th.sum() + 3 * tc.sum()).backward()
    (pad.sum() + 2 * h.sum() + 3 * c.sum()).backward()
    np.testing.assert_allclose(X.grad, tx.grad.numpy(), atol=1e-12)
    for (name, p), (_, tp) in zip(ours.named_parameters(), theirs.named_parameters()):
        np.testing.assert_allclose(p.grad, tp.grad.numpy(), atol=1e-12, err_msg=name)
