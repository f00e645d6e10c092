"""examples/imdb_sentiment.py skips the padding three ways (--masking mask_zero, packed,
lengths): the same logits and gradients, the same training run; a bad --masking is one line."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "imdb_sentiment.py"


def _example():
    spec = importlib.util.spec_from_file_location("imdb_masking_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


imdb = _example()


def test_the_three_ways_give_the_same_logits_and_gradients():
    rng = np.random.default_rng(0)
    reviews = [list(rng.integers(3, 50, n)) for n in (9, 3, 12, 1, 6)]
    ids, lengths = imdb.prepare(reviews, maxlen=10)
    results = []
    for masking in imdb.MASKING:
        np.random.seed(0)
        model = imdb.SentimentLSTM(50, 4, 5, masking).to(np.float64)
        logits = model(ids, lengths)
        (logits * np.arange(1.0, 6.0)).sum().backward()
        results.append((logits.data, {n: p.grad for n, p in model.named_parameters()}))
    (first, grads), *others = results
    for logits, other in others:
        np.testing.assert_allclose(logits, first, atol=1e-12)
        for name, g in grads.items():
            np.testing.assert_allclose(other[name], g, atol=1e-12, err_msg=name)
    assert not grads["embedding.weight"][0].any()  # the padding is never read


def _write_npz(path: Path, n: int = 40) -> None:
    rng = np.random.default_rng(0)
    arrays = {}
    for split in ("train", "test"):
        xs, ys = np.empty(n, dtype=object), rng.integers(0, 2, n)
        for i in range(n):
            xs[i] = [int(w) for w in rng.integers(10, 60, int(rng.integers(3, 15)))]
        arrays[f"x_{split}"], arrays[f"y_{split}"] = xs, ys
    np.savez(path, **arrays)


def test_training_runs_are_the_same_with_each_way(tmp_path, capsys):
    path = tmp_path / "imdb.npz"
    _write_npz(path)
    args = ["--path", str(path), "--epochs", "2", "--num-words", "60", "--maxlen", "12",
            "--hidden", "6", "--embed", "4", "--batch-size", "8"]
    logs = {}
    for masking in imdb.MASKING:
        assert imdb.main(args + ["--masking", masking]) == 0
        out = capsys.readouterr().out
        assert f"padding skipped by {masking}" in out
        logs[masking] = re.findall(r"train loss ([\d.]+), validation accuracy ([\d.]+)%", out)
    assert len(logs["mask_zero"]) == 2
    assert logs["mask_zero"] == logs["packed"] == logs["lengths"]


def test_a_bad_masking_is_one_line_naming_the_flag(capsys):
    with pytest.raises(SystemExit) as info:
        imdb.main(["--masking", "zeros"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and len(err.strip().splitlines()) == 1
    assert re.search(r"argument --masking: invalid choice: 'zeros'", err)
