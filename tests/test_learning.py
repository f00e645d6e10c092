"""Small real tasks learn: each runs the example's own `run` with its defaults (seeded)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def example(name: str):
    """Import examples/<name>.py as a module (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def float32_default():
    from tinygrad_rnn import get_default_dtype, set_default_dtype
    before = get_default_dtype()
    set_default_dtype("float32")  # the figures in docs/training.md are float32
    yield
    set_default_dtype(before)


def test_gru_learns_4bit_binary_subtraction():
    result = example("binary_subtraction").run()
    assert result["bit_accuracy"] >= 0.99
    assert result["number_accuracy"] >= 0.95


def test_rnn_learns_to_echo_the_previous_input():
    result = example("echo").run()
    assert result["mse"] < 1e-3
    assert result["history"].history["val_loss"][-1] < 1e-3


def test_mlp_fits_the_three_class_spiral():
    result = example("spiral").run()
    assert result["accuracy"] >= 0.97
