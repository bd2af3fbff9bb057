"""The pipeline's DoFns: parse, preprocess, turn predictions into records."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from docstream.model.encoder import BaseEncoder
from docstream.model.tokenizer import load_tokenizer
from docstream.preprocess.config import PreprocessConfig
from docstream.preprocess.preprocessor import Prepared, Preprocessor, RawText
from docstream.schemas.classification import Classification, Entity
from docstream.schemas.dead_letter import DeadLetter
from docstream.schemas.envelope import FailedRecord, ResultRecord

from .handler import BatchPredictions
from .options import StoreText
from .parse import parse_raw
from .records import (
    DocBatch,
    Outcome,
    ParsedBatch,
    ParsedItem,
    PreparedItem,
    RawBatch,
)

NAMESPACE = "docstream"


def failed(item: ParsedItem, stage: str, reason: str, error: str) -> FailedRecord:
    raw, post = item.raw, item.post
    return FailedRecord(
        dead_letter=DeadLetter(
            position=raw.position, payload=raw.payload, key=raw.key, doc_id=post.id,
            source=post.source, stage=stage, reason=reason, error=error,  # type: ignore[arg-type]
        ),
        input_sha256=item.sha256, replay_of=raw.replay_of,
    )


class ParseBatch(beam.DoFn):
    """RawBatch → ParsedBatch: bad bytes become dead letters that ride along."""

    def __init__(self) -> None:
        self.parsed = Metrics.counter(NAMESPACE, "inputs")

    def process(self, batch: RawBatch) -> Iterator[ParsedBatch]:
        items: list[ParsedItem] = []
        failures: list[FailedRecord] = []
        for raw in batch.inputs:
            out = parse_raw(raw)
            (items if isinstance(out, ParsedItem) else failures).append(out)  # type: ignore[arg-type]
        self.parsed.inc(len(batch.inputs))
        yield ParsedBatch(items, failures, batch.span)


class PreprocessBatch(beam.DoFn):
    """ParsedBatch → DocBatch through the shared clean → spaCy → chunk path.

    `base`: the model's base encoder, whose tokenizer cuts the windows (default: the
    bundled MiniLM-L6)."""

    def __init__(self, config: PreprocessConfig, entities: bool = False,
                 base: BaseEncoder | None = None) -> None:
        self.config = config
        self.entities = entities
        self.base = base
        self._pre: Preprocessor | None = None

    def setup(self) -> None:
        self._pre = Preprocessor(self.config, load_tokenizer(self.base), entities=self.entities)

    def process(self, batch: ParsedBatch) -> Iterator[DocBatch]:
        pre = self._pre
        if pre is None:  # setup() always runs first on a real runner
            raise RuntimeError("PreprocessBatch used before setup()")
        texts = [RawText(i.post.text, i.post.title, i.post.kind == "social") for i in batch.items]
        failures = list(batch.failures)
        items: list[PreparedItem] = []
        try:
            prepared = pre.prepare(texts)
        except Exception:  # isolate: prepare one by one, the culprit becomes a dead letter
            prepared = [_prepare_one(pre, t) for t in texts]
        for item, out in zip(batch.items, prepared, strict=True):
            if isinstance(out, Prepared):
                items.append(PreparedItem(item, out))
            else:
                failures.append(failed(item, "preprocess", out.reason, out.error))
        yield DocBatch(items, failures, batch.span)


def _prepare_one(pre: Preprocessor, text: RawText) -> Any:
    from docstream.preprocess.preprocessor import PrepareError

    try:
        return pre.prepare([text])[0]
    except Exception as e:  # one text's failure becomes its dead letter
        return PrepareError("preprocess_error", f"preprocessing failed: {e.__class__.__name__}: {e}")


def kept_text(store_text: StoreText, text: str, needs_review: bool) -> str | None:
    """The post's text a result keeps for review (`RunSettings.store_text`): every post's with
    "all", a flagged one's with "review", none with "off". Redacted before it is stored."""
    if store_text == "all" or (store_text == "review" and needs_review):
        return text
    return None


class ToOutcome(beam.DoFn):
    """Predictions → result records; inference errors → dead letters.

    `store_text`: which results keep the post's original text for review (`kept_text`)."""

    def __init__(self, store_text: StoreText = "review") -> None:
        self.store_text = store_text
        self.results = Metrics.counter(NAMESPACE, "classified")
        self.dead = Metrics.counter(NAMESPACE, "dead_letters")

    def process(self, element: BatchPredictions) -> Iterator[Outcome]:
        batch, model = element.batch, element.model
        outcome = Outcome(failures=list(batch.failures), span=batch.span)
        for item, pred in zip(batch.items, element.predictions, strict=True):
            parsed, prep = item.parsed, item.prepared
            if isinstance(pred, str):
                outcome.failures.append(failed(parsed, "inference", "inference_error",
                                               f"the model failed on this document: {pred}"))
                continue
            post = parsed.post
            timings = {"parse": round(parsed.parse_ms, 4), "infer": round(pred.infer_ms, 4)}
            timings.update({k: round(v, 4) for k, v in prep.timings_ms.items()})
            entities = (
                [Entity(text=t, label=lab, start=s, end=e) for t, lab, s, e in prep.entities]
                if prep.entities is not None
                else None
            )
            outcome.results.append(
                ResultRecord(
                    result=Classification(
                        doc_id=post.id, source=post.source_key, label=pred.label,
                        score=min(max(pred.score, 0.0), 1.0), scores=pred.scores, model=model,
                        timings_ms=timings, entities=entities, needs_review=pred.needs_review,
                        n_chunks=len(prep.chunks), n_tokens=prep.n_tokens,
                    ),
                    position=parsed.raw.position, input_sha256=parsed.sha256,
                    kind=post.kind, title=post.title, created_at=post.created_at,
                    text=kept_text(self.store_text, post.text, pred.needs_review),
                    replay_of=parsed.raw.replay_of,
                )
            )
        self.results.inc(len(outcome.results))
        self.dead.inc(len(outcome.failures))
        yield outcome


class FailedInferenceToOutcome(beam.DoFn):
    """RunInference's dead-letter output (a whole batch that raised) → dead letters."""

    def process(self, element: tuple[Any, Any]) -> Iterator[Outcome]:
        batch, error = element
        message = f"{error.__class__.__name__}: {error}"
        for doc_batch in batch if isinstance(batch, list) else [batch]:
            outcome = Outcome(failures=list(doc_batch.failures), span=doc_batch.span)
            for item in doc_batch.items:
                outcome.failures.append(failed(item.parsed, "inference", "inference_error",
                                               f"the model failed on this batch: {message}"))
            yield outcome

