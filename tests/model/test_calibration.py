"""model.calibration: temperature scaling and ECE."""

from __future__ import annotations

import numpy as np
import pytest

from docstream.model.aggregate import softmax
from docstream.model.calibration import (
    expected_calibration_error,
    fit_temperature,
    nll,
    reliability_bins,
)


def test_temperature_reduces_nll_of_overconfident_logits() -> None:
    rng = np.random.default_rng(0)
    n, k = 2000, 4
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += 1.5  # right about 70% of the time
    overconfident = logits * 6.0
    t = fit_temperature(overconfident, y)
    assert t > 2.0
    assert nll(softmax(overconfident, t), y) < nll(softmax(overconfident), y) - 0.1
    # The fitted T is (near) the best one: nudging it either way does not help.
    for factor in (0.9, 1.1):
        assert nll(softmax(overconfident, t), y) <= nll(softmax(overconfident, t * factor), y)
    # Temperature never changes the predicted class.
    assert (softmax(overconfident, t).argmax(1) == overconfident.argmax(1)).all()


def test_ece_hand_computed() -> None:
    # Bin [0.8, 0.9): two rows at confidence 0.85, one right -> |0.5 - 0.85| = 0.35
    # Bin [0.6, 0.7): two rows at confidence 0.65, both right -> |1.0 - 0.65| = 0.35
    # Bin [0.9, 1.0]: one row at 0.95, right -> |1.0 - 0.95| = 0.05
    probs = np.array([
        [0.85, 0.15], [0.15, 0.85],
        [0.65, 0.35], [0.35, 0.65],
        [0.95, 0.05],
    ])
    labels = np.array([0, 0, 0, 1, 0])
    expected = (2 * 0.35 + 2 * 0.35 + 1 * 0.05) / 5
    assert expected_calibration_error(probs, labels, n_bins=10) == pytest.approx(expected)
    bins = reliability_bins(probs, labels, n_bins=10)
    assert [b.count for b in bins] == [0, 0, 0, 0, 0, 0, 2, 0, 2, 1]
    assert bins[8].accuracy == pytest.approx(0.5) and bins[8].confidence == pytest.approx(0.85)


def test_ece_is_zero_when_perfectly_calibrated() -> None:
    probs = np.array([[1.0, 0.0]] * 4)
    assert expected_calibration_error(probs, np.zeros(4, dtype=int)) == 0.0
