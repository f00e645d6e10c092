"""Character-level language model on the Python standard library: the README's main command.

    python examples/char_lm.py                       # ~3 minutes on 2 cores, no download
    python examples/char_lm.py --text book.txt --steps 5000 --time-limit 0
    python examples/char_lm.py --sample-only runs/char_lm.npz --temperature 0.6
    python examples/char_lm.py --dropout 0.25 --recurrent-dropout 0.25 --time-limit 900
    python examples/char_lm.py --no-jit                # every step eagerly (slower, same bits)

Text: by default a deterministic ~1.5 MB subset of the running interpreter's own stdlib
sources (top-level *.py files of sysconfig's "stdlib" folder in sorted name order, each
at most 100 KB, skipping unreadable or non-UTF-8 ones, until 1.5 MB); every 10th chosen file
is held out as validation text. With --text, the last 10% of the file is the validation text.
Vocabulary: the 100 most frequent printable training characters (newline and tab count as
printable); every other character maps to one UNK character, U+FFFD.

Model: Embedding -> LSTM (or RNN / GRU) -> Linear, trained with truncated BPTT: the text is cut
into `batch_size` parallel streams, each read in chunks of `seq_len` characters; the state is
carried from chunk to chunk and detached between them, so gradients span one chunk while the
state remembers the whole stream. --dropout drops embeddings, outputs and (with --layers > 1)
the values passed between layers; --recurrent-dropout drops the recurrent state h where it
enters each step's hidden matmul, with one mask per stream held for a whole chunk (Keras'
variational recurrent_dropout; the carried state is never masked). Adam with a ClipGlobalNorm
hook. Each step's forward and backward run through tinygrad_rnn.jit: recorded on the first
chunk of a pass (zero state) and on the next (carried state), then replayed without the
Python graph, which is faster and gives the same bits/char; --no-jit runs every step eagerly.
The validation loss is reported in bits per character next to the unigram baseline (the cross-entropy of the
training character frequencies, add-one smoothed, on the validation text). The best
checkpoint (weights plus a JSON "__meta__" entry with the vocabulary and the model's shape)
is saved with tinygrad_rnn.save; --sample-only reloads it and only samples.
"""

from __future__ import annotations

import os

# BLAS threads: one per core, at most 2. A replayed step is nearly all matmuls (about
# 1.2 GFLOP at the defaults), which two threads share: 1.25x the steps per second of one on a
# 2-core machine. On a busy machine threads spin for cores they do not get: set
# OPENBLAS_NUM_THREADS=1 there.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, str(max(1, min(2, os.cpu_count() or 1))))

import argparse
import json
import math
import sys
import sysconfig
import time
import zipfile
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

sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/_cli.py: flags, errors
import _cli

UNK = "\ufffd"
VOCAB_SIZE = 100          # most frequent printable characters kept, plus UNK
CORPUS_CHARS = 1_500_000  # stdlib subset size
MAX_FILE_BYTES = 100_000  # no single module dominates the subset
VAL_EVERY_FILE = 10       # stdlib: every 10th chosen file is validation text
VAL_FRACTION = 0.1        # --text: the last 10% is validation text
CELLS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
GATES = {"rnn": 1, "lstm": 4, "gru": 3}  # weight_ih has GATES * hidden rows, as torch
LIMITS = {"embed": 4096, "hidden": 4096, "layers": 16}  # per size, for flags and checkpoints
MAX_PARAMS = 50_000_000   # ~200 MB of float32: far beyond a CPU run, far below tens of GB
MAX_META_CHARS = 1 << 20  # the __meta__ JSON of a real checkpoint is a few hundred characters


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
    the embeddings, between layers and on the last layer's outputs; recurrent_dropout on h
    where it enters each step (one mask per stream and chunk).

    Shape: ids (B, T) int -> logits (B, T, vocab_size); state as the stack's h_n (or (h_n, c_n)).
    """

    def __init__(self, vocab_size: int, embed: int, hidden: int, layers: int, cell: str,
                 dropout: float = 0.0, recurrent_dropout: float = 0.0):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed)
        self.rnn = CELLS[cell](embed, hidden, num_layers=layers, batch_first=True,
                               dropout=dropout, recurrent_dropout=recurrent_dropout)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(hidden, vocab_size)

    def forward(self, ids: np.ndarray, state=None):
        out, state = self.rnn(self.drop(self.embedding(ids)), state)
        return self.head(self.drop(out)), state


def detach(state):
    """Cut the carried state from the graph: the next chunk's BPTT stops here."""
    return tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()


def forward_backward(model: CharLM):
    """The training step: (ids, targets, state) -> (loss, detached state), after backward.

    Shape: ids, targets (B, T) int; state None (a zero state) or the previous step's."""
    def step(ids: np.ndarray, targets: np.ndarray, state):
        logits, state = model(ids, state)
        loss = F.cross_entropy(logits, targets)
        loss.backward()
        return loss, detach(state)
    return step


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
    # the JSON's utf-8 bytes: tg.save keeps to numeric arrays, and nothing loads with pickle
    state["__meta__"] = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
    tg.save(state, path)


def shapes(vocab: int, embed: int, hidden: int, layers: int, cell: str) -> dict[str, tuple]:
    """Every parameter's shape in a CharLM of these sizes (torch's stack layout), by name."""
    rows = GATES[cell] * hidden
    out = {"embedding.weight": (vocab, embed)}
    for k in range(layers):
        out.update({f"rnn.weight_ih_l{k}": (rows, embed if k == 0 else hidden),
                    f"rnn.weight_hh_l{k}": (rows, hidden), f"rnn.bias_ih_l{k}": (rows,),
                    f"rnn.bias_hh_l{k}": (rows,)})
    out.update({"head.weight": (vocab, hidden), "head.bias": (vocab,)})
    return out


def n_params(shapes_: dict[str, tuple]) -> int:
    return sum(math.prod(shape) for shape in shapes_.values())


def npz_headers(path: str, flag: str) -> dict[str, tuple[tuple, np.dtype]]:
    """name -> (shape, dtype) of every array in an .npz, read from the .npy headers only:
    nothing is allocated for the data, whatever the file claims."""
    try:
        with zipfile.ZipFile(path) as zf:
            headers = {}
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    raise UsageError(f"{flag} {path}: member {info.filename!r} is not an array")
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    read = {(1, 0): np.lib.format.read_array_header_1_0,
                            (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                    if read is None:
                        raise UsageError(f"{flag} {path}: {info.filename} has .npy format "
                                         f"{version}, expected 1.0 or 2.0")
                    shape, _, dtype = read(f)
                headers[info.filename[:-4]] = (shape, dtype)
            return headers
    except FileNotFoundError:
        raise UsageError(f"{flag} {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{flag} {path}: a folder, not a checkpoint file") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as err:
        raise UsageError(f"{flag} {path}: not a checkpoint written by char_lm.py (not a "
                         f"readable .npz: {err})") from None


def check_meta(meta: object, where: str) -> dict:
    """The checkpoint's metadata if its types and sizes are sane, else a UsageError."""
    if not isinstance(meta, dict):
        raise UsageError(f"{where}: __meta__ is not a JSON object")
    vocab = meta.get("vocab")
    if not (isinstance(vocab, str) and vocab.startswith(UNK)
            and 2 <= len(vocab) <= VOCAB_SIZE + 1 and len(set(vocab)) == len(vocab)):
        raise UsageError(f"{where}: __meta__ vocab must be 2 to {VOCAB_SIZE + 1} distinct "
                         "characters starting with U+FFFD")
    if meta.get("cell") not in CELLS:
        raise UsageError(f"{where}: __meta__ cell must be one of {sorted(CELLS)}, got "
                         f"{meta.get('cell')!r}"[:200])
    for key, high in LIMITS.items():
        value = meta.get(key)
        if not (type(value) is int and 1 <= value <= high):
            raise UsageError(f"{where}: __meta__ {key} must be an integer from 1 to {high}, got "
                             f"{value!r}"[:200])
    for key in ("prime", "source"):
        if not isinstance(meta.get(key, ""), str):
            raise UsageError(f"{where}: __meta__ {key} must be a string")
    for key in ("val_bits", "unigram_bits", "dropout", "recurrent_dropout", "step"):
        value = meta.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UsageError(f"{where}: __meta__ {key} must be a number, got {value!r}"[:200])
    return meta


def load_checkpoint(path: str, flag: str = "--sample-only") -> tuple[CharLM, Vocab, dict]:
    """The model, vocabulary and metadata of a checkpoint written by this script.

    The .npy headers and the metadata are checked (sizes within LIMITS and MAX_PARAMS, every
    array's name, shape and float dtype) before any array is read or any model is built.
    """
    where = f"{flag} {path}"
    headers = npz_headers(path, flag)
    meta_shape, meta_dtype = headers.pop("__meta__", ((None,), None))
    if (len(meta_shape) != 1 or meta_dtype != np.uint8
            or meta_shape[0] > 4 * MAX_META_CHARS):
        raise UsageError(f"{where}: no usable __meta__ entry (a JSON text's utf-8 bytes); it "
                         "was not written by char_lm.py")
    with np.load(path, allow_pickle=False) as npz:
        raw = npz["__meta__"].tobytes()
    try:
        meta = check_meta(json.loads(raw.decode("utf-8")), where)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise UsageError(f"{where}: __meta__ is not valid JSON ({err})") from None
    want = shapes(len(meta["vocab"]), meta["embed"], meta["hidden"], meta["layers"],
                  meta["cell"])
    if n_params(want) > MAX_PARAMS:
        raise UsageError(f"{where}: __meta__ describes {n_params(want):,} parameters, more "
                         f"than this script's limit of {MAX_PARAMS:,}")
    problems = [f"missing {k}" for k in want if k not in headers]
    problems += [f"unexpected {k}" for k in headers if k not in want]
    problems += [f"{k} has shape {headers[k][0]} and dtype {headers[k][1]}, expected {shape} "
                 "float" for k, shape in want.items()
                 if k in headers and (headers[k][0] != shape or headers[k][1].kind != "f")]
    if problems:
        raise UsageError(f"{where}: arrays do not match its __meta__: "
                         + "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else ""))
    with np.load(path, allow_pickle=False) as npz:
        state = {k: npz[k] for k in want}
    bad = [k for k, a in state.items() if not np.isfinite(a).all()]
    if bad:
        raise UsageError(f"{where}: {bad[0]} holds NaN or inf (saved from a diverged run?)")
    vocab = Vocab(meta["vocab"])
    model = CharLM(len(vocab), meta["embed"], meta["hidden"], meta["layers"], meta["cell"])
    model.load_state_dict(state)
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
            z = logits.data[0, -1].astype(np.float64)
            if not np.isfinite(z).all():
                raise _cli.Diverged("the model's logits are not finite while sampling (weights "
                                    "this large come from a diverged run)")
            p = np.exp((z - z.max()) / temperature)  # shift first: a tiny temperature gives 0s
            nxt = int(rng.choice(len(p), p=p / p.sum()))
            out.append(nxt)
            logits, state = model(np.array([[nxt]]), state)
    return prime + vocab.decode(np.array(out, np.int64))


# ---- main -----------------------------------------------------------------------------------

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The flags; a bad value exits 2 with one line naming the flag and what was expected."""
    ap = _cli.Parser(description=__doc__.split("\n\n")[0],
                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    size = {key: _cli.integer(1, high) for key, high in LIMITS.items()}
    ap.add_argument("--text", help="train on this UTF-8 file instead of the stdlib sources")
    ap.add_argument("--cell", choices=sorted(CELLS), default="lstm")
    ap.add_argument("--hidden", type=size["hidden"], default=192, help="hidden units per layer")
    ap.add_argument("--layers", type=size["layers"], default=1)
    ap.add_argument("--embed", type=size["embed"], default=32, help="embedding size")
    ap.add_argument("--dropout", type=_cli.number(0, 1, below=True), default=0.0,
                    help="dropout probability (for longer runs, which overfit without it)")
    ap.add_argument("--recurrent-dropout", type=_cli.number(0, 1, below=True), default=0.0,
                    help="variational dropout probability on the recurrent state h (one mask "
                    "per stream and chunk, Keras' recurrent_dropout)")
    ap.add_argument("--seq-len", type=_cli.integer(1, 100_000), default=32,
                    help="BPTT chunk length")
    ap.add_argument("--batch-size", type=_cli.integer(1, 100_000), default=32,
                    help="parallel text streams")
    ap.add_argument("--steps", type=_cli.integer(1), default=3500, help="training steps (chunks)")
    ap.add_argument("--lr", type=_cli.number(0, above=True), default=5e-3,
                    help="Adam learning rate (decays 10x)")
    ap.add_argument("--clip", type=_cli.number(0, above=True, allow_inf=True), default=1.0,
                    help="ClipGlobalNorm max_norm (inf: no clipping)")
    ap.add_argument("--eval-every", type=_cli.integer(1), default=500,
                    help="steps between validations")
    ap.add_argument("--time-limit", type=_cli.number(0, allow_inf=True), default=240.0,
                    help="stop training after this many seconds (0: no limit)")
    ap.add_argument("--temperature", type=_cli.number(0, above=True), default=0.7,
                    help="sampling temperature")
    ap.add_argument("--sample-len", type=_cli.integer(0, 1_000_000), default=600,
                    help="characters to sample")
    ap.add_argument("--prime", help='text the sample starts from (default: "class " after '
                    'training on the stdlib, else a newline)')
    ap.add_argument("--sample-only", metavar="CHECKPOINT",
                    help="load a checkpoint saved by this script and only sample")
    ap.add_argument("--out", default="runs/char_lm.npz", help="best checkpoint path")
    ap.add_argument("--seed", type=_cli.seed, default=0)
    ap.add_argument("--no-jit", dest="jit", action="store_false",
                    help="run every training step eagerly instead of replaying it with "
                    "tinygrad_rnn.jit (same bits/char, slower)")
    args = ap.parse_args(argv)
    total = n_params(shapes(VOCAB_SIZE + 1, args.embed, args.hidden, args.layers, args.cell))
    if total > MAX_PARAMS:
        ap.error(f"--hidden {args.hidden}, --embed {args.embed} and --layers {args.layers} make "
                 f"{total:,} parameters, more than this example's limit of {MAX_PARAMS:,}")
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
    model = CharLM(len(vocab), args.embed, args.hidden, args.layers, args.cell, args.dropout,
                   args.recurrent_dropout)  # recurrent masks: numpy's global RNG, seeded above
    rng = np.random.default_rng(args.seed)
    model.drop.rng = model.rnn.dropout_rng = rng  # seeded dropout masks
    n_params = sum(p.size for p in model.parameters())
    drops = f"; dropout {args.dropout:g}" if args.dropout else ""
    drops += f"; recurrent dropout {args.recurrent_dropout:g}" if args.recurrent_dropout else ""
    print(f"model: Embedding({len(vocab)}, {args.embed}) -> {args.cell.upper()}(hidden "
          f"{args.hidden}, layers {args.layers}) -> Linear; {n_params:,} parameters, "
          f"float32{drops}")
    clip = optim.ClipGlobalNorm(args.clip, error_if_nonfinite=True)  # raises before the update
    opt = optim.Adam(model.named_parameters(), lr=args.lr, hooks=[clip])

    step_fn = forward_backward(model)
    if args.jit:  # recorded per state shape (None at a pass's start), replayed after
        step_fn = tg.jit(step_fn)
    x, y = streams(train_ids, args.batch_size, args.seq_len)
    chunks = x.shape[1] // args.seq_len
    meta = {"vocab": vocab.chars, "cell": args.cell, "embed": args.embed, "hidden": args.hidden,
            "layers": args.layers, "dropout": args.dropout,
            "recurrent_dropout": args.recurrent_dropout, "source": source,
            "unigram_bits": baseline, "prime": "\n" if args.text else "class "}
    best, best_step, state = math.inf, 0, None
    ema, ema_weight = 0.0, 0.0  # bias-corrected moving average of the training bits/char
    start = time.perf_counter()
    bar = tqdm(range(1, args.steps + 1), desc="train", unit="step", dynamic_ncols=True)
    try:
        for step in bar:
            k = (step - 1) % chunks
            if k == 0:
                state = None  # a new pass over the streams starts from a zero state
            cols = slice(k * args.seq_len, (k + 1) * args.seq_len)
            opt.lr = args.lr * 0.1 ** ((step - 1) / args.steps)  # exponential decay to lr / 10
            opt.zero_grad()
            loss, state = step_fn(x[:, cols], y[:, cols], state)  # forward and backward
            bits = _cli.check_loss(loss.item(), f"step {step}") / math.log(2)  # before the update
            try:
                opt.step()
            except RuntimeError as err:  # the clip hook: a non-finite gradient norm
                raise _cli.Diverged(f"the gradient norm is not finite at step {step} ({err})"
                                    ) from None
            ema, ema_weight = 0.98 * ema + bits, 0.98 * ema_weight + 1.0
            running = ema / ema_weight
            bar.set_postfix(bits=f"{running:.3f}", grad_norm=f"{clip.last_norm:.2f}",
                            refresh=False)  # drawn at the bar's own pace, not every step
            timed_out = args.time_limit and time.perf_counter() - start > args.time_limit
            if step % args.eval_every == 0 or step == args.steps or timed_out:
                val = evaluate(model, val_ids, args.seq_len)
                if not math.isfinite(val):
                    raise _cli.Diverged(f"the validation loss is {val} at step {step}")
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
    except _cli.Diverged as err:
        kept = (f"this run's best checkpoint (step {best_step}, {best:.3f} bits/char) is in "
                f"{out}" if best_step else f"this run saved no checkpoint ({out} is as it was)")
        raise _cli.Diverged(f"training diverged: {err}; {kept}; try a lower --lr or --clip") \
            from None
    finally:
        bar.close()
    minutes = (time.perf_counter() - start) / 60
    model, vocab, meta = load_checkpoint(str(out), "--out")
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
        return _cli.fail(str(err), 2)
    except _cli.Diverged as err:  # nothing is sampled: the run has no model to show
        return _cli.fail(str(err), 1)
    except KeyboardInterrupt:  # the best checkpoint so far stays in --out
        print("\ninterrupted", file=sys.stderr)
        return 130
    print(f"\nsample (temperature {args.temperature}):\n{'-' * 60}\n{text}\n{'-' * 60}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
