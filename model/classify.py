"""From chunk token ids to calibrated document predictions."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .aggregate import aggregate_chunks, softmax
from .artifact import ModelManifest
from .predictor import Predictor


@dataclass(frozen=True, slots=True)
class DocPrediction:
    label: str
    score: float
    scores: dict[str, float]
    needs_review: bool
    infer_ms: float


class DocClassifier:
    """Calibrated, chunk-aggregated predictions for whole documents.

    Each document is a list of chunks (token-id windows from preprocess.chunk). All chunks
    of a call are batched together by token budget, then regrouped per document with the
    artifact's aggregation rule, and scaled by its fitted temperature.
    """

    def __init__(
        self,
        manifest: ModelManifest,
        predictor: Predictor,
        review_threshold: float | None = None,
    ) -> None:
        self.manifest = manifest
        self.labels = list(manifest.labels)
        self.predictor = predictor
        self.temperature = manifest.temperature
        self.rule = manifest.preprocess.aggregate
        self.review_threshold = (
            manifest.review_threshold if review_threshold is None else review_threshold
        )

    def probabilities(self, docs: Sequence[Sequence[Sequence[int]]]) -> np.ndarray:
        """Calibrated class probabilities, one row per document."""
        flat = [chunk for doc in docs for chunk in doc]
        probs = softmax(self.predictor.logits(flat), self.temperature)
        out = np.empty((len(docs), len(self.labels)), dtype=np.float64)
        pos = 0
        for d, doc in enumerate(docs):
            n = len(doc)
            out[d] = aggregate_chunks(probs[pos : pos + n], [len(c) for c in doc], self.rule)
            pos += n
        return out

    def classify(self, docs: Sequence[Sequence[Sequence[int]]]) -> list[DocPrediction]:
        if not docs:
            return []
        t0 = time.perf_counter()
        probs = self.probabilities(docs)
        ms = (time.perf_counter() - t0) * 1000 / len(docs)
        result = []
        for row in probs:
            best = int(row.argmax())
            score = float(row[best])
            result.append(
                DocPrediction(
                    label=self.labels[best],
                    score=score,
                    scores={lab: round(float(p), 6) for lab, p in zip(self.labels, row, strict=True)},
                    needs_review=score < self.review_threshold,
                    infer_ms=ms,
                )
            )
        return result
