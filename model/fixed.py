"""A classifier that computes nothing: it answers one fixed label.

Used by the `pipeline_overhead` benchmark (what would the pipeline cost around an
infinitely fast model?) and by tests that need exact outputs.
"""

from __future__ import annotations

from collections.abc import Sequence

from .classify import DocPrediction


class FixedLabelClassifier:
    def __init__(self, labels: Sequence[str] = ("World", "Sports", "Business", "Sci/Tech"),
                 label: str | None = None, score: float = 1.0) -> None:
        self.labels = list(labels)
        self.label = label or self.labels[0]
        if self.label not in self.labels:
            raise ValueError(f"label {self.label!r} is not one of {self.labels}")
        rest = (1.0 - score) / max(len(self.labels) - 1, 1)
        self.scores = {lab: (score if lab == self.label else rest) for lab in self.labels}
        self.prediction = DocPrediction(self.label, score, self.scores, False, 0.0)

    def classify(self, docs: Sequence[Sequence[Sequence[int]]]) -> list[DocPrediction]:
        return [self.prediction] * len(docs)
