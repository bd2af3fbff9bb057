"""The streaming job's own DoFns: Kafka batch → raw inputs, dead letters to the DLQ topic, the
retrying writer, and the end-of-line marker that frees the in-flight gate."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from docstream.privacy.redact import default_redactor
from docstream.schemas.envelope import WriteBatch
from docstream.schemas.position import InputPosition
from docstream.store.errors import StoreWriteError
from docstream.streaming.dlq import DeadLetterMessage, DeadLetterPublisher
from docstream.streaming.flow import InFlight
from docstream.streaming.records import KafkaBatch

from .records import Outcome, RawBatch, RawInput, Span
from .sink import WriteOutcomes

log = logging.getLogger(__name__)

NAMESPACE = "docstream"


class KafkaBatchToRaw(beam.DoFn):
    """KafkaBatch → RawBatch: each record becomes a RawInput at its Kafka position."""

    def process(self, batch: KafkaBatch) -> Iterator[RawBatch]:
        inputs = [
            RawInput(InputPosition(kind="kafka", topic=r.topic, partition=r.partition,
                                   offset=r.offset),
                     r.value, key=r.key, timestamp_ms=r.timestamp_ms)
            for r in batch.records
        ]
        yield RawBatch(inputs, Span(batch.topic, batch.partition, batch.start, batch.end))


class PublishDeadLetters(beam.DoFn):
    """Copies an outcome's dead letters to `<topic>.dlq` (acknowledged) before it is written."""

    def __init__(self, bootstrap: str, run_id: str) -> None:
        self.bootstrap = bootstrap
        self.run_id = run_id
        self.published = Metrics.counter(NAMESPACE, "dead_letters_published")
        self._publisher: DeadLetterPublisher | None = None

    def setup(self) -> None:
        self._publisher = DeadLetterPublisher(self.bootstrap)
        self._redactor = default_redactor()

    def teardown(self) -> None:
        if self._publisher is not None:
            self._publisher.close()

    def process(self, outcome: Outcome) -> Iterator[Outcome]:
        if outcome.failures and self._publisher is not None:
            failures = self._redactor.redact(
                WriteBatch(run_id=self.run_id, failures=outcome.failures)).failures
            messages = []
            for f in failures:
                d, p = f.dead_letter, f.dead_letter.position
                if p.kind != "kafka" or p.topic is None:
                    continue
                messages.append(DeadLetterMessage(
                    topic=p.topic, partition=p.partition or 0, offset=p.offset or 0, key=d.key,
                    value=d.payload, reason=d.reason, stage=d.stage, error=d.error,
                    extra=(("dlq.sha256", f.input_sha256), ("dlq.run_id", self.run_id),
                           ("dlq.doc_id", d.doc_id or ""))))
            self.published.inc(self._publisher.publish(messages))
        yield outcome


class StreamWriteOutcomes(WriteOutcomes):
    """WriteOutcomes that rides out a store outage: a failed (rolled back) batch is retried
    for up to `retry_s` seconds before the job fails (and a restart resumes exactly)."""

    def __init__(self, *args: Any, retry_s: float = 60.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.retry_s = retry_s

    def process(self, outcome: Outcome) -> Iterator[tuple[Any, int]]:
        span = outcome.span
        key = (span.topic, span.partition, span.start, span.end) if span else None
        deadline = time.monotonic() + self.retry_s
        delay = 0.5
        while True:
            try:
                # the write happens before the only yield: a retry never yields twice
                for n in super().process(outcome):
                    yield key, n
                return
            except StoreWriteError as e:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("%s; retrying in %.1f s", e, delay)
                time.sleep(delay)
                delay = min(delay * 2, 10.0)


class MarkDone(beam.DoFn):
    """The end of the line: a written batch is no longer in flight."""

    def __init__(self, gate: InFlight) -> None:
        self.gate = gate
        self.done = Metrics.counter(NAMESPACE, "stream_records_done")
        self.repeats = Metrics.counter(NAMESPACE, "stream_batches_repeated")

    def process(self, written: tuple[Any, int]) -> Iterator[None]:
        key, n = written
        if self.gate.done(key):
            self.done.inc(n)
        else:
            self.repeats.inc()  # delivered twice by the runner; the store absorbed it
        return iter(())
