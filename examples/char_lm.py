"""Character-level language model on the Python standard library: the README's main command.

    python examples/char_lm.py                       # ~3 minutes on 2 cores, no download
    python examples/char_lm.py --text book.txt --steps 5000 --time-limit 0
    python examples/char_lm.py --sample-only runs/char_lm.npz --temperature 0.6

Text: by default a deterministic ~1.5 MB subset of the running interpreter's own stdlib
sources (top-level *.py files of sysconfig's "stdlib" folder in sorted name order, each
at most 100 KB, skipping unreadable or non-UTF-8 ones, until 1.5 MB); every 10th chosen file
is held out as validation text. With --text, the last 10% of the file is the validation text.
Vocabulary: the 100 most frequent printable training characters (newline and tab count as
printable); every other character maps to one UNK character, U+FFFD.

Model: Embedding -> LSTM (or RNN / GRU) -> Linear, trained with truncated BPTT: the text is cut
into `batch_size` parallel streams, each read in chunks of `seq_len` characters; the state is
carried from chunk to chunk and detached between them, so gradients span one chunk while the
state remembers the whole stream. Adam with a ClipGlobalNorm hook. The validation loss is
reported in bits per character next to the unigram baseline (the cross-entropy of the
training character frequencies, add-one smoothed, on the validation text). The best
checkpoint (weights plus a JSON "__meta__" entry with the vocabulary and the model's shape)
is saved with tinygrad_rnn.save; --sample-only reloads it and only samples.
"""

from __future__ import annotations

import os

# The matrices here are small (batch x hidden); BLAS threads only add overhead, and on a
# busy machine they spin for cores they do not get. Set OPENBLAS_NUM_THREADS to override.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import json
import math
import sys
import sysconfig
import time
from collections import Counter
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

UNK = "\ufffd"
VOCAB_SIZE = 100          # most frequent printable characters kept, plus UNK
CORPUS_CHARS = 1_500_000  # stdlib subset size
MAX_FILE_BYTES = 100_000  # no single module dominates the subset
VAL_EVERY_FILE = 10       # stdlib: every 10th chosen file is validation text
VAL_FRACTION = 0.1        # --text: the last 10% is validation text
CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


class UsageError(Exception):
    """Bad input from the user: reported as one line on stderr, exit status 2."""


# ---- text -----------------------------------------------------------------------------------

def decode(data: bytes, where: str) -> str:
    """UTF-8 text with newlines normalised to \\n; binary or non-UTF-8 data is a UsageError."""
    if b"\0" in data:
        raise UsageError(f"{where} looks binary (it contains NUL bytes); pass a UTF-8 text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UsageError(f"{where} is not UTF-8 text ({err.reason} at byte {err.start}); "
                         "pass a UTF-8 text file") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def stdlib_text() -> tuple[str, str, str]:
    """(train, validation, description) from the running interpreter's stdlib sources."""
    root = Path(sysconfig.get_paths()["stdlib"])
    train, val, total, used = [], [], 0, 0
    for path in sorted(root.glob("*.py")):
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                continue
            text = decode(path.read_bytes(), str(path))
        except (OSError, UsageError):
            continue
        (val if used % VAL_EVERY_FILE == VAL_EVERY_FILE - 1 else train).append(text)
        used, total = used + 1, total + len(text)
        if total >= CORPUS_CHARS:
            break
    if not train or not val:
        raise UsageError(f"found too few readable .py files in {root}; pass --text PATH")
    return "\n".join(train), "\n".join(val), f"{used} stdlib files from {root}"


def file_text(path: str, min_train: int) -> tuple[str, str, str]:
    """(train, validation, description) from a UTF-8 file: the last 10% is validation."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"--text {path}: " + ("a folder, not a file" if p.is_dir()
                                               else "no such file"))
    try:
        text = decode(p.read_bytes(), f"--text {path}")
    except OSError as err:
        raise UsageError(f"--text {path}: cannot read it ({err.strerror})") from None
    def n_val(n: int) -> int:
        return max(2, int(n * VAL_FRACTION))

    if len(text) - n_val(len(text)) < min_train:
        need = next(n for n in range(min_train, 20 * min_train) if n - n_val(n) >= min_train)
        raise UsageError(f"--text {path} is too short: {len(text)} characters, but one training "
                         f"sequence needs {min_train} (--seq-len + 1) plus 10% held out for "
                         f"validation, so at least {need}; use a longer file or a smaller "
                         "--seq-len")
    cut = len(text) - n_val(len(text))
    return text[:cut], text[cut:], f"{path}"


class Vocab:
    """Characters <-> ids; id 0 is UNK, which stands for every character outside the table."""

    def __init__(self, chars: str):
        self.chars = chars if chars.startswith(UNK) else UNK + chars.replace(UNK, "")
        self.lookup = np.zeros(max(map(ord, self.chars)) + 1, np.int64)
        for i, ch in enumerate(self.chars):
            self.lookup[ord(ch)] = i

    @classmethod
    def build(cls, text: str, size: int = VOCAB_SIZE) -> Vocab:
        """The `size` most frequent printable characters of `text` (ties by code point)."""
        counts = Counter(text)
        ok = [c for c in counts if (c.isprintable() or c in "\n\t") and c != UNK]
        ok.sort(key=lambda c: (-counts[c], c))
        return cls("".join(sorted(ok[:size])))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """(N,) int64 ids; characters outside the table become 0 (UNK)."""
        codes = np.frombuffer(text.encode("utf-32-le"), np.uint32).astype(np.int64)
        inside = codes < len(self.lookup)
        ids = np.zeros(len(codes), np.int64)
        ids[inside] = self.lookup[codes[inside]]
        return ids

    def decode(self, ids: np.ndarray) -> str:
        return "".join(self.chars[i] for i in ids)


def unigram_bits(train_ids: np.ndarray, val_ids: np.ndarray, vocab_size: int) -> float:
    """Bits/char on validation of add-one smoothed training character frequencies."""
    counts = np.bincount(train_ids, minlength=vocab_size) + 1.0
    return float(-np.log2(counts / counts.sum())[val_ids].mean())


# ---- model ----------------------------------------------------------------------------------

class CharLM(nn.Module):
    """Embedding -> recurrent stack -> Linear over the vocabulary; dropout (training only) on
    the embeddings, between layers and on the last layer's outputs.

    Shape: ids (B, T) int -> logits (B, T, vocab_size); state as the stack's h_n (or (h_n, c_n)).
    """

    def __init__(self, vocab_size: int, embed: int, hidden: int, layers: int, cell: str,
                 dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed)
        self.rnn = CELLS[cell](embed, hidden, num_layers=layers, batch_first=True,
                               dropout=dropout)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, ids: np.ndarray, state=None):
        out, state = self.rnn(self.drop(self.embedding(ids)), state)
        return self.head(self.drop(out)), state


def detach(state):
    """Cut the carried state from the graph: the next chunk's BPTT stops here."""
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def streams(ids: np.ndarray, n: int, seq_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and next-character targets as `n` contiguous streams: each (n, L)."""
    n = max(1, min(n, (len(ids) - 1) // seq_len))
    length = (len(ids) - 1) // n
    x = ids[:n * length].reshape(n, length)
    y = ids[1:n * length + 1].reshape(n, length)
    return x, y


def evaluate(model: CharLM, ids: np.ndarray, seq_len: int, n_streams: int = 128) -> float:
    """Mean next-character cross-entropy in bits, state carried across chunks.

    128 streams (whatever the training batch) make few, wide steps: fast, comparable runs.
    """
    x, y = streams(ids, n_streams, seq_len)
    model.eval()
    total, state = 0.0, None
    with tg.no_grad():
        for s in range(0, x.shape[1], seq_len):
            logits, state = model(x[:, s:s + seq_len], state)
            total += F.cross_entropy(logits, y[:, s:s + seq_len], reduction="sum").item()
    model.train()
    return total / y.size / math.log(2)


# ---- checkpoint and sampling ----------------------------------------------------------------

def save_checkpoint(model: CharLM, path: Path, meta: dict) -> None:
    state = model.state_dict()
    state["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)  # save takes numbers
    tg.save(state, path)


def load_checkpoint(path: str) -> tuple[CharLM, Vocab, dict]:
    try:
        state = tg.load(path)
    except (FileNotFoundError, ValueError) as err:
        raise UsageError(f"--sample-only: {err}") from None
    if "__meta__" not in state:
        raise UsageError(f"--sample-only: {path} has no __meta__ entry; it was not written by "
                         "char_lm.py")
    meta = json.loads(state.pop("__meta__").astype(np.uint8).tobytes())
    vocab = Vocab(meta["vocab"])
    model = CharLM(len(vocab), meta["embed"], meta["hidden"], meta["layers"], meta["cell"])
    try:
        model.load_state_dict(state)
    except nn.StateDictError as err:
        raise UsageError(f"--sample-only: {err}") from None
    return model, vocab, meta


def sample(model: CharLM, vocab: Vocab, prime: str, length: int, temperature: float,
           rng: np.random.Generator) -> str:
    """`prime` followed by `length` characters drawn from softmax(logits / temperature)."""
    model.eval()
    ids = vocab.encode(prime or "\n")
    out = []
    with tg.no_grad():
        logits, state = model(ids[None, :])
        for _ in range(length):
            z = logits.data[0, -1].astype(np.float64) / temperature
            p = np.exp(z - z.max())
            nxt = int(rng.choice(len(p), p=p / p.sum()))
            out.append(nxt)
            logits, state = model(np.array([[nxt]]), state)
    return prime + vocab.decode(np.array(out, np.int64))


# ---- main -----------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--text", help="train on this UTF-8 file instead of the stdlib sources")
    ap.add_argument("--cell", choices=sorted(CELLS), default="lstm")
    ap.add_argument("--hidden", type=int, default=192, help="hidden units per layer")
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--embed", type=int, default=32, help="embedding size")
    ap.add_argument("--dropout", type=float, default=0.0,
                    help="dropout probability (for longer runs, which overfit without it)")
    ap.add_argument("--seq-len", type=int, default=32, help="BPTT chunk length")
    ap.add_argument("--batch-size", type=int, default=32, help="parallel text streams")
    ap.add_argument("--steps", type=int, default=3500, help="training steps (chunks)")
    ap.add_argument("--lr", type=float, default=5e-3, help="Adam learning rate (decays 10x)")
    ap.add_argument("--clip", type=float, default=1.0, help="ClipGlobalNorm max_norm")
    ap.add_argument("--eval-every", type=int, default=500, help="steps between validations")
    ap.add_argument("--time-limit", type=float, default=240.0,
                    help="stop training after this many seconds (0: no limit)")
    ap.add_argument("--temperature", type=float, default=0.7, help="sampling temperature")
    ap.add_argument("--sample-len", type=int, default=600, help="characters to sample")
    ap.add_argument("--prime", help='text the sample starts from (default: "class " after '
                    'training on the stdlib, else a newline)')
    ap.add_argument("--sample-only", metavar="CHECKPOINT",
                    help="load a checkpoint saved by this script and only sample")
    ap.add_argument("--out", default="runs/char_lm.npz", help="best checkpoint path")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    for name in ("hidden", "layers", "embed", "seq_len", "batch_size", "steps", "eval_every"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be >= 1")
    for name in ("temperature", "lr"):
        if not getattr(args, name) > 0:
            ap.error(f"--{name} must be > 0")
    if not 0.0 <= args.dropout < 1.0:
        ap.error("--dropout must be in [0, 1)")
    if args.sample_len < 0:
        ap.error("--sample-len must be >= 0")
    return args


def train(args: argparse.Namespace) -> tuple[CharLM, Vocab, dict]:
    out = Path(args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"--out {out}: cannot create its folder ({err.strerror})") from None
    if out.is_dir():
        raise UsageError(f"--out {out} is a folder; give a file name such as {out / 'lm.npz'}")
    if args.text:
        train_text, val_text, source = file_text(args.text, args.seq_len + 1)
    else:
        train_text, val_text, source = stdlib_text()
    vocab = Vocab.build(train_text)
    train_ids, val_ids = vocab.encode(train_text), vocab.encode(val_text)
    unk = float((train_ids == 0).mean())
    print(f"text: {source}\n  {len(train_ids):,} training and {len(val_ids):,} validation "
          f"characters; vocabulary {len(vocab)} (UNK = U+FFFD covers {unk:.3%} of training)")
    baseline = unigram_bits(train_ids, val_ids, len(vocab))

    np.random.seed(args.seed)  # layer initialisation draws from numpy's global generator
    model = CharLM(len(vocab), args.embed, args.hidden, args.layers, args.cell, args.dropout)
    rng = np.random.default_rng(args.seed)
    model.drop.rng = model.rnn.dropout_rng = rng  # seeded dropout masks
    n_params = sum(p.size for p in model.parameters())
    print(f"model: Embedding({len(vocab)}, {args.embed}) -> {args.cell.upper()}(hidden "
          f"{args.hidden}, layers {args.layers}) -> Linear; {n_params:,} parameters, float32")
    clip = optim.ClipGlobalNorm(args.clip)
    opt = optim.Adam(model.named_parameters(), lr=args.lr, hooks=[clip])

    x, y = streams(train_ids, args.batch_size, args.seq_len)
    chunks = x.shape[1] // args.seq_len
    meta = {"vocab": vocab.chars, "cell": args.cell, "embed": args.embed, "hidden": args.hidden,
            "layers": args.layers, "dropout": args.dropout, "source": source,
            "unigram_bits": baseline, "prime": "\n" if args.text else "class "}
    best, best_step, state = math.inf, 0, None
    ema, ema_weight = 0.0, 0.0  # bias-corrected moving average of the training bits/char
    start = time.perf_counter()
    bar = tqdm(range(1, args.steps + 1), desc="train", unit="step", dynamic_ncols=True)
    for step in bar:
        k = (step - 1) % chunks
        if k == 0:
            state = None  # a new pass over the streams starts from a zero state
        cols = slice(k * args.seq_len, (k + 1) * args.seq_len)
        opt.lr = args.lr * 0.1 ** ((step - 1) / args.steps)  # exponential decay to lr / 10
        logits, state = model(x[:, cols], state)
        loss = F.cross_entropy(logits, y[:, cols])
        opt.zero_grad()
        loss.backward()
        opt.step()
        state = detach(state)
        ema, ema_weight = 0.98 * ema + loss.item() / math.log(2), 0.98 * ema_weight + 1.0
        running = ema / ema_weight
        bar.set_postfix(bits=f"{running:.3f}", grad_norm=f"{clip.last_norm:.2f}")
        timed_out = args.time_limit and time.perf_counter() - start > args.time_limit
        if step % args.eval_every == 0 or step == args.steps or timed_out:
            val = evaluate(model, val_ids, args.seq_len)
            note = ""
            if val < best:
                best, best_step = val, step
                save_checkpoint(model, out, {**meta, "step": step, "val_bits": val})
                note = f", saved {out}"
            bar.write(f"step {step}: train {running:.3f}, validation {val:.3f} bits/char "
                      f"(unigram {baseline:.3f}){note}")
        if timed_out:
            bar.write(f"time limit of {args.time_limit:g} s reached at step {step} of "
                      f"{args.steps}; pass --time-limit 0 to run every step")
            break
    bar.close()
    minutes = (time.perf_counter() - start) / 60
    model, vocab, meta = load_checkpoint(str(out))
    print(f"\nbest validation: {best:.3f} bits/char at step {best_step} "
          f"(unigram baseline {baseline:.3f} bits/char); trained {minutes:.1f} min; "
          f"checkpoint {out}")
    return model, vocab, meta


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.sample_only:
            model, vocab, meta = load_checkpoint(args.sample_only)
            print(f"loaded {args.sample_only}: {meta['cell']} hidden {meta['hidden']}, "
                  f"validation {meta.get('val_bits', float('nan')):.3f} bits/char")
        else:
            model, vocab, meta = train(args)
        rng = np.random.default_rng(args.seed)
        prime = meta.get("prime", "\n") if args.prime is None else args.prime
        text = sample(model, vocab, prime, args.sample_len, args.temperature, rng)
    except UsageError as err:
        print(f"{Path(sys.argv[0]).name}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the best checkpoint so far stays in --out
        print("\ninterrupted", file=sys.stderr)
        return 130
    print(f"\nsample (temperature {args.temperature}):\n{'-' * 60}\n{text}\n{'-' * 60}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
