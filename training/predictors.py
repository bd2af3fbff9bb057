"""Logits providers for `DocClassifier`: cached logits and cached sentence vectors.

`DocClassifier` only calls `logits(chunks)` (the `model.classify.LogitsProvider` protocol).
These classes answer that call without re-running the encoder, so that validation,
temperature fitting and reports go through `DocClassifier`'s own aggregation and
calibration, like `docstream run`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from docstream.model.predictor import Predictor


def _key(seqs: Sequence[Sequence[int]]) -> int:
    return hash(tuple(tuple(s) for s in seqs))


class CachingPredictor:
    """Wraps a `Predictor`; repeated calls with the same chunks reuse the logits."""

    def __init__(self, predictor: Predictor) -> None:
        self.predictor = predictor
        self.precision = predictor.precision
        self._key: int | None = None
        self._logits: np.ndarray | None = None

    def logits(self, seqs: Sequence[Sequence[int]]) -> np.ndarray:
        """The wrapped predictor's logits, computed once per distinct input."""
        key = _key(seqs)
        if self._logits is None or key != self._key:
            self._logits = self.predictor.logits(seqs)
            self._key = key
        return self._logits


class FixedLogits:
    """Serves precomputed logits for one known list of chunks."""

    def __init__(self, seqs: Sequence[Sequence[int]], logits: np.ndarray) -> None:
        self._key = _key(seqs)
        self._logits = np.asarray(logits, dtype=np.float32)

    def logits(self, seqs: Sequence[Sequence[int]]) -> np.ndarray:
        """The stored logits; the chunks must be the ones given at construction."""
        if _key(seqs) != self._key:
            raise ValueError("FixedLogits was asked about chunks it was not built for")
        return self._logits


class CachedVectorPredictor:
    """Logits of a head over precomputed sentence vectors of known chunks (head mode)."""

    def __init__(self, head: nn.Linear, chunks: Sequence[Sequence[int]], vectors: torch.Tensor):
        self.head = head
        self._index = {tuple(c): i for i, c in enumerate(chunks)}
        self._vectors = vectors

    def logits(self, seqs: Sequence[Sequence[int]]) -> np.ndarray:
        """Head logits for chunks seen at construction."""
        idx = [self._index[tuple(s)] for s in seqs]
        with torch.inference_mode():
            vectors = self._vectors[idx].to(self.head.weight.device)
            return self.head(vectors).float().cpu().numpy()
