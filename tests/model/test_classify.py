"""DocClassifier over any LogitsProvider, and the ClassifierSpec it takes."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from docstream.model.aggregate import aggregate_chunks, softmax
from docstream.model.artifact import read_manifest
from docstream.model.bundled import bundled_model_dir
from docstream.model.classify import ClassifierSpec, DocClassifier, LogitsProvider

LABELS = ("a", "b", "c")


class TableLogits:
    """A LogitsProvider that looks each chunk's logits up by its first token id."""

    def __init__(self, table: dict[int, list[float]]) -> None:
        self.table = table
        self.calls: list[list[list[int]]] = []

    def logits(self, seqs: Sequence[Sequence[int]]) -> np.ndarray:
        self.calls.append([list(s) for s in seqs])
        return np.asarray([self.table[s[0]] for s in seqs], dtype=np.float32)


TABLE = {1: [4.0, 0.0, 0.0], 2: [0.0, 3.0, 0.0], 3: [0.1, 0.0, 0.1]}


def test_a_plain_object_with_logits_is_a_provider() -> None:
    provider: LogitsProvider = TableLogits(TABLE)  # structural: no base class needed
    assert provider.logits([[1]]).shape == (1, 3)


def test_all_chunks_go_to_the_provider_in_one_call_in_document_order() -> None:
    provider = TableLogits(TABLE)
    clf = DocClassifier(ClassifierSpec(labels=LABELS), provider)
    clf.classify([[[1, 5], [3, 5, 5]], [[2]]])
    assert provider.calls == [[[1, 5], [3, 5, 5], [2]]]


def test_probabilities_aggregate_each_documents_chunks_with_the_spec_rule() -> None:
    spec = ClassifierSpec(labels=LABELS, temperature=1.5, aggregate="mean")
    docs = [[[1, 5, 5, 5], [2, 5]], [[3]]]
    probs = DocClassifier(spec, TableLogits(TABLE)).probabilities(docs)
    first = aggregate_chunks(softmax(np.array([TABLE[1], TABLE[2]]), 1.5), [4, 2], "mean")
    np.testing.assert_allclose(probs[0], first)
    np.testing.assert_allclose(probs[1], softmax(np.array([TABLE[3]]), 1.5)[0])


def test_temperature_changes_confidence_not_the_label() -> None:
    docs = [[[1]], [[2]]]
    sharp = DocClassifier(ClassifierSpec(labels=LABELS), TableLogits(TABLE)).classify(docs)
    spec = ClassifierSpec(labels=LABELS).with_temperature(4.0)
    soft = DocClassifier(spec, TableLogits(TABLE)).classify(docs)
    assert [p.label for p in sharp] == [p.label for p in soft] == ["a", "b"]
    assert all(s.score < p.score for s, p in zip(soft, sharp, strict=True))


def test_needs_review_below_the_threshold() -> None:
    docs = [[[1]], [[3]]]  # decisive, nearly flat
    preds = DocClassifier(ClassifierSpec(labels=LABELS, review_threshold=0.6),
                          TableLogits(TABLE)).classify(docs)
    assert preds[0].score > 0.6 and not preds[0].needs_review
    assert preds[1].score < 0.6 and preds[1].needs_review
    assert set(preds[0].scores) == set(LABELS)


def test_no_documents_no_call() -> None:
    provider = TableLogits(TABLE)
    assert DocClassifier(ClassifierSpec(labels=LABELS), provider).classify([]) == []
    assert provider.calls == []


def test_spec_from_the_bundled_manifest() -> None:
    manifest = read_manifest(bundled_model_dir())
    spec = ClassifierSpec.from_manifest(manifest)
    assert spec.labels == tuple(manifest.labels)
    assert spec.temperature == manifest.temperature
    assert spec.aggregate == manifest.preprocess.aggregate
    assert spec.review_threshold == manifest.review_threshold
    assert spec.precision_ok == tuple(manifest.precision_ok)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels": ("only",)}, "at least 2 labels"),
        ({"labels": LABELS, "temperature": 0.0}, "temperature must be > 0"),
        ({"labels": LABELS, "review_threshold": 1.5}, r"review_threshold must be in \[0, 1\]"),
    ],
)
def test_spec_refuses_bad_settings(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClassifierSpec(**kwargs)


def test_review_threshold_override_keeps_the_rest() -> None:
    spec = ClassifierSpec(labels=LABELS, temperature=2.0, review_threshold=0.5)
    assert spec.with_review_threshold(None) is spec
    changed = spec.with_review_threshold(0.9)
    assert (changed.review_threshold, changed.temperature, changed.labels) == (0.9, 2.0, LABELS)


def test_doc_classifier_takes_a_spec_not_a_manifest() -> None:
    manifest: Any = read_manifest(bundled_model_dir())
    with pytest.raises(TypeError, match=r"ClassifierSpec\.from_manifest"):
        DocClassifier(manifest, TableLogits(TABLE))
