"""Classification metrics in numpy: accuracy, macro-F1, per-class P/R/F1, confusion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int) -> np.ndarray:
    """Counts, rows = true class, columns = predicted class."""
    m = np.zeros((n_labels, n_labels), dtype=np.int64)
    np.add.at(m, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return m


def _prf(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    tp = np.diag(m).astype(np.float64)
    predicted = m.sum(axis=0).astype(np.float64)
    support = m.sum(axis=1).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1, support


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of exact matches (0.0 for no rows)."""
    y_true = np.asarray(y_true)
    return float((y_true == np.asarray(y_pred)).mean()) if len(y_true) else 0.0


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int) -> float:
    """Unweighted mean F1 over the classes present in `y_true` or `y_pred`."""
    m = confusion_matrix(y_true, y_pred, n_labels)
    _, _, f1, support = _prf(m)
    present = (support > 0) | (m.sum(axis=0) > 0)
    return float(f1[present].mean()) if present.any() else 0.0


def per_class(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[str]) -> dict[str, Any]:
    """Precision, recall, F1 and support of each label."""
    m = confusion_matrix(y_true, y_pred, len(labels))
    precision, recall, f1, support = _prf(m)
    return {
        lab: {
            "precision": float(precision[i]),
            "recall": float(recall[i]),
            "f1": float(f1[i]),
            "support": int(support[i]),
        }
        for i, lab in enumerate(labels)
    }


def summary(y_true: np.ndarray, y_pred: np.ndarray, n_labels: int) -> dict[str, float]:
    """{"accuracy", "macro_f1"} of one prediction set."""
    return {"accuracy": accuracy(y_true, y_pred), "macro_f1": macro_f1(y_true, y_pred, n_labels)}
