"""From chunk token ids to calibrated document predictions.

`DocClassifier` needs two things: the artifact's settings as a `ClassifierSpec` (labels,
temperature, aggregation rule, review threshold) and anything that turns chunks into
logits (`LogitsProvider`: the `Predictor`, or training's cached and fixed logits). It imports
neither pydantic nor the manifest at run time, so bench/gpu.py can use it on a bare GPU box.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

import numpy as np

from .aggregate import AggregateRule, aggregate_chunks, softmax

if TYPE_CHECKING:
    from .artifact import ModelManifest

DEFAULT_PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16")


class LogitsProvider(Protocol):
    """Turns token-id chunks into float logits, one row per chunk, in input order."""

    def logits(self, seqs: Sequence[Sequence[int]]) -> np.ndarray: ...


# Covariant: a DocClassifier[Predictor] is a DocClassifier[LogitsProvider] to its readers.
P = TypeVar("P", bound=LogitsProvider, covariant=True)


@dataclass(frozen=True, slots=True)
class ClassifierSpec:
    """What a classifier needs of a model artifact, without the pydantic manifest.

    `precision_ok` lists the numeric modes whose accuracy the artifact checked; "auto" picks
    only among them (model.predictor.pick_precision).
    """

    labels: tuple[str, ...]
    temperature: float = 1.0
    aggregate: AggregateRule = "confidence_weighted"
    review_threshold: float = 0.5
    precision_ok: tuple[str, ...] = DEFAULT_PRECISIONS

    def __post_init__(self) -> None:
        if len(self.labels) < 2:
            raise ValueError(f"a classifier needs at least 2 labels, got {list(self.labels)}")
        if self.temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")
        if not 0.0 <= self.review_threshold <= 1.0:
            raise ValueError(f"review_threshold must be in [0, 1], got {self.review_threshold}")

    @classmethod
    def from_manifest(cls, manifest: ModelManifest) -> ClassifierSpec:
        """The spec of an artifact's manifest (read with model.artifact.read_manifest)."""
        return cls(
            labels=tuple(manifest.labels),
            temperature=manifest.temperature,
            aggregate=manifest.preprocess.aggregate,
            review_threshold=manifest.review_threshold,
            precision_ok=tuple(manifest.precision_ok),
        )

    def with_temperature(self, temperature: float) -> ClassifierSpec:
        return replace(self, temperature=temperature)

    def with_review_threshold(self, threshold: float | None) -> ClassifierSpec:
        """This spec with `threshold` (None: keep the artifact's own)."""
        return self if threshold is None else replace(self, review_threshold=threshold)


@dataclass(frozen=True, slots=True)
class DocPrediction:
    label: str
    score: float
    scores: dict[str, float]
    needs_review: bool
    infer_ms: float


class DocClassifier(Generic[P]):
    """Calibrated, chunk-aggregated predictions for whole documents.

    Each document is a list of chunks (token-id windows from preprocess.chunk). All chunks
    of a call go to the logits provider at once (the Predictor batches them by token
    budget), then are regrouped per document with the artifact's aggregation rule, and
    scaled by its fitted temperature. Build one from an artifact with
    model.build.build_classifier.

    Example:
        >>> class Always:
        ...     def logits(self, seqs):
        ...         return np.tile([2.0, 0.0], (len(seqs), 1))
        >>> clf = DocClassifier(ClassifierSpec(labels=("a", "b")), Always())
        >>> clf.classify([[[101, 7, 102]]])[0].label
        'a'
    """

    def __init__(self, spec: ClassifierSpec, predictor: P) -> None:
        if not isinstance(spec, ClassifierSpec):
            raise TypeError(f"DocClassifier takes a ClassifierSpec, not {type(spec).__name__}; "
                            "use ClassifierSpec.from_manifest(manifest)")
        self.spec = spec
        self.labels = list(spec.labels)
        self.predictor = predictor
        self.temperature = spec.temperature
        self.rule = spec.aggregate
        self.review_threshold = spec.review_threshold

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
