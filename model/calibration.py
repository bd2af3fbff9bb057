"""Calibration: temperature scaling and expected calibration error (ECE).

A model's softmax is often over-confident. Temperature scaling divides the logits by one
scalar T > 0 fitted on held-out data by minimising the negative log-likelihood; it changes
confidence but never the predicted class. `fit_temperature_fn` minimises any NLL(T), so the
fit can run through the same chunk aggregation that `DocClassifier` applies.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .aggregate import softmax

T_MIN = 0.05
T_MAX = 20.0
_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log-likelihood of the true labels under `probs` (rows sum to 1)."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    picked = p[np.arange(len(y)), y]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())


def fit_temperature_fn(
    loss: Callable[[float], float],
    t_min: float = T_MIN,
    t_max: float = T_MAX,
    grid: int = 25,
    tol: float = 1e-4,
) -> float:
    """The T in [t_min, t_max] minimising `loss(T)`: a log-spaced grid, then golden section.

    The grid finds the basin robustly; golden-section search refines it in log T until the
    bracket is narrower than `tol` (relative).
    """
    if not 0 < t_min < t_max:
        raise ValueError(f"need 0 < t_min < t_max, got {t_min}, {t_max}")
    logs = np.linspace(math.log(t_min), math.log(t_max), grid)
    values = [loss(math.exp(x)) for x in logs]
    best = int(np.argmin(values))
    lo = logs[max(best - 1, 0)]
    hi = logs[min(best + 1, grid - 1)]
    c = hi - _GOLDEN * (hi - lo)
    d = lo + _GOLDEN * (hi - lo)
    fc, fd = loss(math.exp(c)), loss(math.exp(d))
    while hi - lo > tol:
        if fc < fd:
            hi, d, fd = d, c, fc
            c = hi - _GOLDEN * (hi - lo)
            fc = loss(math.exp(c))
        else:
            lo, c, fc = c, d, fd
            d = lo + _GOLDEN * (hi - lo)
            fd = loss(math.exp(d))
    t = math.exp((lo + hi) / 2)
    # Never return something worse than the best grid point (e.g. a flat or edge minimum).
    return t if loss(t) <= values[best] else math.exp(logs[best])


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising the NLL of `softmax(logits / T)` for `labels`.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> y = rng.integers(0, 3, 500)
        >>> z = rng.normal(size=(500, 3)); z[np.arange(500), y] += 1.0
        >>> fit_temperature(z * 5, y) > 1.0   # over-confident logits get T > 1
        True
    """
    z = np.asarray(logits, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    if z.ndim != 2 or len(z) != len(y) or len(y) == 0:
        raise ValueError(f"need logits (n, k) and n labels, got {z.shape} and {len(y)}")
    return fit_temperature_fn(lambda t: nll(softmax(z, t), y))


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    """One confidence bin of a reliability diagram."""

    lower: float
    upper: float
    count: int
    confidence: float
    accuracy: float


def reliability_bins(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = 15
) -> list[ReliabilityBin]:
    """Equal-width bins of top-class confidence, with mean confidence and accuracy in each.

    A confidence exactly on an edge goes to the bin above it, except 1.0 (the last bin).
    """
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels, dtype=np.int64)
    conf = p.max(axis=1)
    correct = (p.argmax(axis=1) == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.searchsorted(edges, conf, side="right") - 1, 0, n_bins - 1)
    bins = []
    for b in range(n_bins):
        mask = which == b
        n = int(mask.sum())
        bins.append(
            ReliabilityBin(
                lower=float(edges[b]),
                upper=float(edges[b + 1]),
                count=n,
                confidence=float(conf[mask].mean()) if n else 0.0,
                accuracy=float(correct[mask].mean()) if n else 0.0,
            )
        )
    return bins


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, n_bins: int = 15) -> float:
    """ECE: the count-weighted mean |accuracy - confidence| over confidence bins.

    Example:
        >>> p = np.array([[0.9, 0.1], [0.9, 0.1], [0.6, 0.4], [0.6, 0.4]])
        >>> round(expected_calibration_error(p, np.array([0, 1, 0, 0]), n_bins=10), 6)
        0.4
    """
    bins = reliability_bins(probs, labels, n_bins)
    total = sum(b.count for b in bins)
    if total == 0:
        return 0.0
    return float(sum(b.count * abs(b.accuracy - b.confidence) for b in bins) / total)
