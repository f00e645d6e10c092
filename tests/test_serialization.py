"""save / load: round trips, atomic writes, and clear errors for truncated or foreign files."""

import os

import numpy as np
import pytest

import tinygrad_rnn as tg
from tinygrad_rnn import nn


def test_module_round_trip_reproduces_outputs(tmp_path):
    lstm = nn.LSTM(3, 4, num_layers=2, batch_first=True)
    path = tmp_path / "lstm.npz"
    tg.save(lstm, path)
    state = tg.load(path)
    assert list(state) == list(lstm.state_dict())
    other = nn.LSTM(3, 4, num_layers=2, batch_first=True)
    other.load_state_dict(state)
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    np.testing.assert_array_equal(lstm(x)[0].data, other(x)[0].data)


def test_a_plain_dict_and_any_npz_load(tmp_path):
    tg.save({"a": np.arange(3.0), "b": tg.Tensor([1.0, 2.0])}, tmp_path / "d.npz")
    np.savez(tmp_path / "foreign.npz", w=np.ones((2, 2)))
    assert tg.load(tmp_path / "d.npz")["b"].tolist() == [1.0, 2.0]
    assert tg.load(tmp_path / "foreign.npz")["w"].shape == (2, 2)


def test_save_leaves_no_temporary_file_and_replaces_atomically(tmp_path):
    path = tmp_path / "m.npz"
    tg.save({"w": np.zeros(2)}, path)
    tg.save({"w": np.ones(2)}, path)
    assert os.listdir(tmp_path) == ["m.npz"]
    assert tg.load(path)["w"].tolist() == [1.0, 1.0]


def test_a_failed_save_keeps_the_old_file(tmp_path):
    path = tmp_path / "m.npz"
    tg.save({"w": np.zeros(2)}, path)
    with pytest.raises(TypeError):
        tg.save(42, path)
    assert tg.load(path)["w"].tolist() == [0.0, 0.0]


def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "m.npz"
    tg.save({"w": np.arange(1000.0)}, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="not a readable .npz"):
        tg.load(path)


def test_foreign_files_are_clear_errors(tmp_path):
    (tmp_path / "text.npz").write_text("hello")
    np.save(tmp_path / "single.npy", np.ones(3))
    with pytest.raises(ValueError, match="text.npz"):
        tg.load(tmp_path / "text.npz")
    with pytest.raises(ValueError, match="single.npy"):
        tg.load(tmp_path / "single.npy")
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        tg.load(tmp_path / "missing.npz")


def test_save_into_a_missing_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tg.save({"w": np.ones(1)}, tmp_path / "nope" / "m.npz")
