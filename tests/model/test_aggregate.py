from __future__ import annotations

import numpy as np
import pytest

from docstream.model.aggregate import aggregate_chunks, confidence, softmax


def test_softmax_temperature_flattens() -> None:
    logits = np.array([[2.0, 0.0]])
    assert softmax(logits, 2.0)[0, 0] < softmax(logits, 1.0)[0, 0]
    with pytest.raises(ValueError):
        softmax(logits, 0.0)


def test_confidence_bounds() -> None:
    assert confidence(np.array([[0.25] * 4]))[0] == pytest.approx(0.0, abs=1e-9)
    assert confidence(np.array([[1.0, 0, 0, 0]]))[0] == pytest.approx(1.0, abs=1e-6)


def test_deciding_last_chunk_wins_over_longer_vague_chunks() -> None:
    vague = [0.40, 0.22, 0.20, 0.18]  # leans to class 0, weakly
    decisive = [0.02, 0.95, 0.02, 0.01]
    probs = np.array([vague, vague, vague, decisive])
    tokens = [126, 126, 126, 40]
    doc = aggregate_chunks(probs, tokens)
    assert int(doc.argmax()) == 1
    assert doc.sum() == pytest.approx(1.0)
    # the plain mean would have let the filler outvote it
    assert int(aggregate_chunks(probs, tokens, rule="mean").argmax()) == 0


def test_single_chunk_is_unchanged() -> None:
    p = np.array([[0.1, 0.9]])
    assert aggregate_chunks(p, [10]).tolist() == [0.1, 0.9]


def test_bad_input() -> None:
    with pytest.raises(ValueError):
        aggregate_chunks(np.zeros((0, 3)), [])
    with pytest.raises(ValueError):
        aggregate_chunks(np.ones((2, 2)) / 2, [1, 1], rule="max")  # type: ignore[arg-type]
