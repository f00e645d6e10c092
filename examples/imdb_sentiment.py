"""IMDB review sentiment with Embedding + LSTM + Linear, from the standard Keras `imdb.npz`.

    python examples/imdb_sentiment.py --path imdb.npz                 # full data, slow
    python examples/imdb_sentiment.py --path imdb.npz --limit 2000    # a few minutes
    python examples/imdb_sentiment.py --path imdb.npz --masking packed

The file is the one Keras' `imdb.load_data()` downloads (~17 MB, 25,000 training and 25,000
test reviews as word-index lists); this script never downloads anything. Without --path it
looks in Keras' cache, ~/.keras/datasets/imdb.npz. Reviews are read with
tinygrad_rnn.data.load_imdb (Keras semantics: words beyond --num-words become the OOV index 2),
cut to their last --maxlen words and padded with zeros after the end by data.pad_sequences.
The LSTM skips the padding, so the classifier reads the hidden state after each review's real
last word. --masking picks how: `mask_zero` (default, Keras: Embedding(mask_zero=True) and its
compute_mask passed as the LSTM's mask), `packed` (torch: pack_padded_sequence into the LSTM)
or `lengths` (the lengths= keyword); all three give the same numbers. The test split serves as validation data, as in the Keras IMDB example; the accuracy on
it is printed after every epoch.
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # small matrices: BLAS threads only add overhead

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

try:
    import tinygrad_rnn as tg
except ImportError:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    import tinygrad_rnn as tg
from tinygrad_rnn import functional as F
from tinygrad_rnn import nn, optim
from tinygrad_rnn.data import batches, load_imdb, pad_sequences
from tinygrad_rnn.nn.utils.rnn import pack_padded_sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/_cli.py: flags, errors
import _cli

KERAS_CACHE = Path.home() / ".keras" / "datasets" / "imdb.npz"
NEEDS_FILE = """This example needs the Keras IMDB file imdb.npz (about 17 MB: 25,000 training and
25,000 test movie reviews as word-index lists, with keys x_train, y_train, x_test, y_test).
Get it once, either with Keras:
    python -c "import keras; keras.datasets.imdb.load_data()"   # saves ~/.keras/datasets/imdb.npz
or directly from https://storage.googleapis.com/tensorflow/tf-keras-datasets/imdb.npz
then run:  python examples/imdb_sentiment.py --path imdb.npz"""


MASKING = ("mask_zero", "packed", "lengths")


class SentimentLSTM(nn.Module):
    """Embedding -> LSTM -> Linear on the hidden state after each review's last real word.

    `masking` says how the LSTM skips the padding (index 0): see MASKING and the module doc.
    Shape: ids (B, T) int, lengths (B,) -> logits (B,) (positive review when > 0).
    """

    def __init__(self, num_words: int, embed: int, hidden: int, masking: str = "mask_zero"):
        super().__init__()
        self.masking = masking
        self.embedding = nn.Embedding(num_words, embed, padding_idx=0,
                                      mask_zero=masking == "mask_zero")
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, ids: np.ndarray, lengths: np.ndarray) -> tg.Tensor:
        ids = ids[:, :int(lengths.max())]  # padding after every review's end: skip those steps
        x = self.embedding(ids)
        if self.masking == "mask_zero":  # Keras: the mask is ids != 0
            _, (h_n, _) = self.lstm(x, mask=self.embedding.compute_mask(ids))
        elif self.masking == "packed":  # torch: h_n comes back in the batch's own order
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            _, (h_n, _) = self.lstm(packed)
        else:
            _, (h_n, _) = self.lstm(x, lengths=lengths)
        return self.head(h_n[-1]).reshape(-1)


def prepare(x: np.ndarray, maxlen: int) -> tuple[np.ndarray, np.ndarray]:
    """Keep each review's last `maxlen` words, pad after its end: ids (N, maxlen), lengths."""
    ids, lengths = pad_sequences(x, maxlen=maxlen, padding="post", truncating="pre",
                                 return_lengths=True)
    return ids.astype(np.int64), np.maximum(lengths, 1)  # an empty review reads one pad step


def accuracy(model: SentimentLSTM, x: np.ndarray, lengths: np.ndarray, y: np.ndarray,
             batch_size: int) -> float:
    model.eval()
    correct = 0
    with tg.no_grad():
        for xb, lb, yb in batches(x, lengths, y, batch_size=batch_size):
            correct += int(((model(xb, lb).data > 0) == (yb > 0.5)).sum())
    model.train()
    return correct / len(y)


def train(model: SentimentLSTM, opt: optim.Adam, data: tuple[np.ndarray, ...],
          val: tuple[np.ndarray, ...], args: argparse.Namespace) -> None:
    """Epochs of shuffled batches, validation accuracy after each; Diverged on a bad loss."""
    x_train, len_train, y_train = data
    for epoch in range(1, args.epochs + 1):
        start, total, seen = time.perf_counter(), 0.0, 0
        bar = tqdm(batches(x_train, len_train, y_train, batch_size=args.batch_size,
                           shuffle=True, rng=args.seed * 1000 + epoch),
                   total=-(-len(y_train) // args.batch_size), desc=f"epoch {epoch}",
                   unit="batch", dynamic_ncols=True)
        with bar:
            for i, (xb, lb, yb) in enumerate(bar):
                loss = F.binary_cross_entropy_with_logits(model(xb, lb), yb)
                value = _cli.check_loss(loss.item(), f"epoch {epoch}, batch {i + 1}")
                opt.zero_grad()
                loss.backward()
                opt.step()
                total, seen = total + value * len(yb), seen + len(yb)
                bar.set_postfix(loss=f"{total / seen:.4f}")
        acc = accuracy(model, *val, 256)
        print(f"epoch {epoch}/{args.epochs}: train loss {total / seen:.4f}, validation accuracy "
              f"{acc:.2%} ({time.perf_counter() - start:.0f} s)", flush=True)


def main(argv: list[str] | None = None) -> int:
    ap = _cli.Parser(description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--path", help=f"the Keras imdb.npz (default: {KERAS_CACHE} if present)")
    ap.add_argument("--num-words", type=_cli.integer(4, 10_000_000), default=10_000,
                    help="vocabulary size (indices 0-2 are padding, start and OOV)")
    ap.add_argument("--maxlen", type=_cli.integer(1, 100_000), default=200,
                    help="words kept per review (the last)")
    ap.add_argument("--epochs", type=_cli.integer(1), default=3)
    ap.add_argument("--limit", type=_cli.integer(1),
                    help="use only the first N training and N test reviews")
    ap.add_argument("--embed", type=_cli.integer(1, 4096), default=32)
    ap.add_argument("--hidden", type=_cli.integer(1, 4096), default=64)
    ap.add_argument("--batch-size", type=_cli.integer(1), default=64)
    ap.add_argument("--lr", type=_cli.number(0, above=True), default=3e-3,
                    help="Adam learning rate")
    ap.add_argument("--seed", type=_cli.seed, default=0)
    ap.add_argument("--masking", choices=MASKING, default="mask_zero",
                    help="how the LSTM skips padding: Embedding(mask_zero=True)'s mask (Keras), "
                         "a PackedSequence (torch) or lengths=; the same numbers")
    args = ap.parse_args(argv)
    if args.num_words * args.embed > 50_000_000:
        ap.error(f"--num-words {args.num_words} times --embed {args.embed} is over 50,000,000 "
                 "embedding weights, this example's limit")
    name = Path(sys.argv[0]).name
    path = args.path or (str(KERAS_CACHE) if KERAS_CACHE.is_file() else None)
    if path is None or not Path(path).is_file():
        problem = f"no file at {path}" if path else f"no --path given and no {KERAS_CACHE}"
        print(f"{name}: error: {problem}\n{NEEDS_FILE}", file=sys.stderr)
        return 2
    try:
        (x_train, y_train), (x_test, y_test) = load_imdb(path, num_words=args.num_words)
    except (ValueError, TypeError, OSError) as err:  # not a Keras IMDB npz
        print(f"{name}: error: {err}\n{NEEDS_FILE}", file=sys.stderr)
        return 2
    if args.limit:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
        x_test, y_test = x_test[:args.limit], y_test[:args.limit]
    y_train, y_test = np.asarray(y_train, np.float32), np.asarray(y_test, np.float32)
    x_train, len_train = prepare(x_train, args.maxlen)
    x_test, len_test = prepare(x_test, args.maxlen)
    print(f"imdb: {len(y_train):,} training and {len(y_test):,} validation reviews, "
          f"{args.num_words:,} words, last {args.maxlen} words of each "
          f"({(len_train == args.maxlen).mean():.0%} truncated); "
          f"{y_train.mean():.0%} of training reviews positive; padding skipped by "
          f"{args.masking}")

    np.random.seed(args.seed)
    model = SentimentLSTM(args.num_words, args.embed, args.hidden, args.masking)
    opt = optim.Adam(model.parameters(), lr=args.lr, hooks=[optim.ClipGlobalNorm(1.0)])
    try:
        train(model, opt, (x_train, len_train, y_train), (x_test, len_test, y_test), args)
    except _cli.Diverged as err:
        return _cli.fail(f"training diverged: {err}; try a lower --lr")
    return 0


if __name__ == "__main__":
    sys.exit(main())
