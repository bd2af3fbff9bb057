"""The model stages on Beam's TestPipeline, with the fixed-label model (exact outputs)."""

from __future__ import annotations

import json
from typing import ClassVar

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from docstream.pipelines.batch import build_model_stages
from docstream.pipelines.handler import NOOP_MODEL, DocstreamModelHandler
from docstream.pipelines.options import RunSettings
from docstream.pipelines.records import DocBatch, RawBatch, RawInput
from docstream.preprocess.config import PreprocessConfig
from docstream.schemas.position import InputPosition


def raw(line: int, payload: bytes) -> RawInput:
    return RawInput(InputPosition(kind="file", file="t.jsonl", line=line), payload)


def post(i: int, text: str = "Stocks rose today.") -> bytes:
    return json.dumps({"id": f"p{i}", "text": text, "source": "wire"}).encode()


BATCHES = [
    RawBatch([raw(1, post(1)), raw(2, b"{bad json"), raw(3, post(3, "<p> </p>"))]),
    RawBatch([raw(4, post(4)), raw(5, b"\xff\xfe"), raw(6, post(6, "Goal! " * 400))]),
]


def summarize(outcome) -> tuple:
    return (
        sorted(r.result.doc_id for r in outcome.results),
        sorted((f.dead_letter.position.line, f.dead_letter.reason) for f in outcome.failures),
    )


def test_every_input_ends_as_result_or_dead_letter() -> None:
    settings = RunSettings(sources=["x"], sink="sqlite://", model_dir=NOOP_MODEL)
    with TestPipeline() as p:
        branches = build_model_stages(p | beam.Create(BATCHES), settings, PreprocessConfig())
        outcomes = branches | beam.Flatten()
        assert_that(
            outcomes | beam.Map(summarize),
            equal_to([
                (["p1"], [(2, "invalid_json"), (3, "empty_after_cleaning")]),
                (["p4", "p6"], [(5, "invalid_utf8")]),
            ]),
        )


def test_results_carry_model_and_chunks() -> None:
    settings = RunSettings(sources=["x"], sink="sqlite://", model_dir=NOOP_MODEL)
    with TestPipeline() as p:
        branches = build_model_stages(p | beam.Create(BATCHES[1:]), settings, PreprocessConfig())
        outcomes = branches | beam.Flatten()
        chunks = outcomes | beam.FlatMap(
            lambda o: [(r.result.doc_id, r.result.n_chunks > 1, r.result.model.name,
                        set(r.result.timings_ms) >= {"parse", "clean", "spacy", "chunk", "infer"})
                       for r in o.results])
        assert_that(chunks, equal_to([("p4", False, "noop", True), ("p6", True, "noop", True)]))


class _Boom:
    labels: ClassVar[list[str]] = ["a", "b"]

    def classify(self, docs):  # fails on any batch holding the poison document
        if any(len(d) == 3 for d in docs):
            raise RuntimeError("poison")
        from docstream.model.classify import DocPrediction

        return [DocPrediction("a", 0.9, {"a": 0.9, "b": 0.1}, False, 0.0) for _ in docs]


def test_a_failing_document_is_isolated() -> None:
    from docstream.pipelines.handler import LoadedClassifier
    from docstream.pipelines.parse import parse_raw
    from docstream.pipelines.records import ParsedItem, PreparedItem
    from docstream.preprocess.preprocessor import Prepared
    from docstream.schemas.classification import ModelRef

    def item(i: int, n_chunks: int) -> PreparedItem:
        parsed = parse_raw(raw(i, post(i)))
        assert isinstance(parsed, ParsedItem)
        return PreparedItem(parsed, Prepared("t", [[101, 102]] * n_chunks, 1, 1))

    handler = DocstreamModelHandler(NOOP_MODEL)
    model = LoadedClassifier(_Boom(), ModelRef(name="boom", version="0", weights_sha256="0"))
    batch = DocBatch([item(1, 1), item(2, 3), item(3, 1)], [])
    (out,) = handler.run_inference([batch], model)
    assert [isinstance(p, str) for p in out.predictions] == [False, True, False]
    assert "poison" in out.predictions[1]


@pytest.mark.parametrize(("store_text", "kept"), [
    ("review", [None, "<p>Stocks &amp; bonds</p> fell."]),
    ("all", ["Stocks rose today.", "<p>Stocks &amp; bonds</p> fell."]),
    ("off", [None, None]),
])
def test_results_keep_the_original_text_as_store_text_says(store_text: str,
                                                           kept: list[str | None]) -> None:
    """ToOutcome, shared by the batch and streaming jobs (build_model_stages): the post's
    original text (not the cleaned one) on flagged results, all, or none."""
    from docstream.model.classify import DocPrediction
    from docstream.pipelines.handler import BatchPredictions
    from docstream.pipelines.parse import parse_raw
    from docstream.pipelines.records import ParsedItem, PreparedItem
    from docstream.pipelines.stages import ToOutcome
    from docstream.preprocess.preprocessor import Prepared
    from docstream.schemas.classification import ModelRef

    def item(i: int, text: str) -> PreparedItem:
        parsed = parse_raw(raw(i, post(i, text)))
        assert isinstance(parsed, ParsedItem)
        return PreparedItem(parsed, Prepared("cleaned", [[101, 102]], None, 1))

    batch = DocBatch([item(1, "Stocks rose today."), item(2, "<p>Stocks &amp; bonds</p> fell.")],
                     [])
    predictions: list[DocPrediction | str] = [
        DocPrediction("a", 0.9, {"a": 0.9, "b": 0.1}, False, 0.0),
        DocPrediction("b", 0.4, {"a": 0.4, "b": 0.6}, True, 0.0)]
    ref = ModelRef(name="m", version="0", weights_sha256="0")
    (outcome,) = ToOutcome(store_text).process(BatchPredictions(batch, predictions, ref))
    assert [r.text for r in outcome.results] == kept


def test_model_stages_honour_store_text() -> None:
    """build_model_stages (the batch and the streaming job) hands RunSettings.store_text to
    ToOutcome; the fixed-label model flags nothing, so only "all" keeps texts."""
    for store_text, kept in (("all", "Stocks rose today."), ("review", None)):
        settings = RunSettings(sources=["x"], sink="sqlite://", model_dir=NOOP_MODEL,
                               store_text=store_text)
        with TestPipeline() as p:
            branches = build_model_stages(p | beam.Create(BATCHES[:1]), settings,
                                          PreprocessConfig())
            texts = branches | beam.Flatten() | beam.FlatMap(
                lambda o: [(r.result.doc_id, r.text) for r in o.results])
            assert_that(texts, equal_to([("p1", kept)]))
