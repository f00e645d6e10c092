"""Metrics for `fit`: fn(prediction ndarray, target ndarray) -> float, batch means (Keras')."""

from __future__ import annotations

import numpy as np


def accuracy(prediction: np.ndarray, target: np.ndarray) -> float:
    """Fraction of rows whose argmax over the last axis equals the target class. Shape:
    prediction (..., C) scores; target (...) classes, or (..., C) one-hot (its argmax)."""
    p, t = np.asarray(prediction), np.asarray(target)
    if t.shape == p.shape:
        t = t.argmax(axis=-1)
    if t.shape != p.shape[:-1]:
        raise ValueError(f"accuracy: target {t.shape} does not fit prediction {p.shape}")
    return float((p.argmax(axis=-1) == t).mean())


def binary_accuracy(prediction: np.ndarray, target: np.ndarray, threshold: float = 0.5) -> float:
    """Fraction of entries where (prediction > threshold) equals (target > 0.5), as Keras;
    0.5 suits probabilities (`binary_accuracy_logits` for logits). Shape: both (*), alike."""
    p, t = np.asarray(prediction), np.asarray(target)
    if p.size != t.size:
        raise ValueError(f"binary_accuracy: prediction {p.shape} and target {t.shape} differ")
    return float(((p.reshape(t.shape) > threshold) == (t > 0.5)).mean())


def binary_accuracy_logits(prediction: np.ndarray, target: np.ndarray) -> float:
    """binary_accuracy on logits: threshold 0, since sigmoid(0) = 0.5. Shape: as binary_accuracy."""
    return binary_accuracy(prediction, target, threshold=0.0)
