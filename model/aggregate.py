"""How the chunks of a long document add up to one prediction.

Rule `confidence_weighted` (the default): the document's class probabilities are the
average of its chunks' probabilities, each chunk weighted by its confidence
``1 - H(p) / log(K)`` (one minus its normalised entropy) times its token count. A chunk
that says something decisive (p ≈ 1 for one class) counts fully; a chunk of filler whose
probabilities are nearly flat counts almost nothing. So one deciding sentence anywhere,
the last chunk included, carries the document, while several agreeing chunks reinforce
each other. Rule `mean` is the plain token-weighted average, kept for comparison.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

AggregateRule = Literal["confidence_weighted", "mean"]


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of `logits / temperature`, computed stably in float64."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    z = np.asarray(logits, dtype=np.float64) / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def confidence(probs: np.ndarray) -> np.ndarray:
    """One minus normalised entropy, in [0, 1], per row."""
    k = probs.shape[-1]
    p = np.clip(probs, 1e-12, 1.0)
    entropy = -(p * np.log(p)).sum(axis=-1)
    return 1.0 - entropy / np.log(k)


def aggregate_chunks(
    chunk_probs: np.ndarray,
    chunk_tokens: Sequence[int],
    rule: AggregateRule = "confidence_weighted",
) -> np.ndarray:
    """Combine the probability rows of one document's chunks into one row.

    Example:
        >>> p = np.array([[0.3, 0.35, 0.35], [0.98, 0.01, 0.01]])
        >>> int(aggregate_chunks(p, [100, 20]).argmax())
        0
    """
    probs = np.asarray(chunk_probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] == 0:
        raise ValueError(f"chunk_probs must be a non-empty 2-D array, got shape {probs.shape}")
    if probs.shape[0] == 1:
        return probs[0]
    tokens = np.asarray(chunk_tokens, dtype=np.float64).clip(min=1.0)
    if rule == "mean":
        weights = tokens
    elif rule == "confidence_weighted":
        weights = tokens * (confidence(probs) + 1e-6)
    else:
        raise ValueError(f"unknown aggregation rule {rule!r}; use 'confidence_weighted' or 'mean'")
    out = (probs * weights[:, None]).sum(axis=0) / weights.sum()
    return out / out.sum()
