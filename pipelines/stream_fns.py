"""The streaming job's own DoFns: Kafka batch → raw inputs, dead letters to the DLQ topic, the
retrying writer, and the end-of-line marker that frees the in-flight gate.

With `--metrics-port` they also feed the job's Prometheus metrics (pipelines.metrics): a
batch's start and Kafka timestamps as it enters (KafkaBatchToRaw), what it wrote once it is
committed (StreamWriteOutcomes), repeats (MarkDone). Without it `metrics` is None and they
record nothing.

The writer also notes when inputs were committed (`WriteClock`): the run's summary takes its
time to the first result and its steady-state throughput from it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from docstream.schemas.position import InputPosition
from docstream.streaming.dlq import DeadLetterMessage, DeadLetterPublisher
from docstream.streaming.flow import InFlight
from docstream.streaming.records import KafkaBatch
from docstream.streaming.replay import REPLAY_HEADER

from .metrics import JobMetrics, MetricsConfig, job_metrics
from .records import Outcome, RawBatch, RawInput, Span
from .sink import WriteOutcomes

log = logging.getLogger(__name__)

NAMESPACE = "docstream"


class KafkaBatchToRaw(beam.DoFn):
    """KafkaBatch → RawBatch: each record becomes a RawInput at its Kafka position.

    An offset the source could not read (`KafkaRecord.unreadable`) keeps its reason and
    sentence: parsing turns it into a dead letter without looking at its (empty) payload.
    A record sent by `docstream replay --to` names the dead letter it replays in the header
    `docstream.replay_of`; a success resolves that dead letter.
    """

    def __init__(self, metrics: MetricsConfig | None = None) -> None:
        self.metrics = metrics
        self._metrics: JobMetrics | None = None

    def setup(self) -> None:
        self._metrics = job_metrics(self.metrics) if self.metrics is not None else None

    def process(self, batch: KafkaBatch) -> Iterator[RawBatch]:
        if self._metrics is not None:
            self._metrics.batch_started(
                (batch.topic, batch.partition, batch.start, batch.end),
                (r.timestamp_ms for r in batch.records if r.unreadable is None))
        inputs = [
            RawInput(InputPosition(kind="kafka", topic=r.topic, partition=r.partition,
                                   offset=r.offset),
                     r.value, key=r.key,
                     timestamp_ms=r.timestamp_ms if r.unreadable is None else None,
                     unreadable=r.unreadable, replay_of=_replay_of(r.headers))
            for r in batch.records
        ]
        yield RawBatch(inputs, Span(batch.topic, batch.partition, batch.start, batch.end))


def _replay_of(headers: tuple[tuple[str, bytes], ...]) -> str | None:
    for key, value in headers:
        if key == REPLAY_HEADER:
            return value.decode("utf-8", "replace")[:1024] or None
    return None


class PublishDeadLetters(beam.DoFn):
    """Copies an outcome's dead letters to `<topic>.dlq` (acknowledged) before it is written.

    The copy is the ORIGINAL message (key, value), not redacted: `docstream replay` reads
    originals from the `.dlq` topic. Personal data in it is governed like the input topic's,
    by the broker's retention and ACLs; only the store gets the redacted copy (privacy.redact).
    """

    def __init__(self, bootstrap: str, run_id: str) -> None:
        self.bootstrap = bootstrap
        self.run_id = run_id
        self.published = Metrics.counter(NAMESPACE, "dead_letters_published")
        self._publisher: DeadLetterPublisher | None = None

    def setup(self) -> None:
        self._publisher = DeadLetterPublisher(self.bootstrap)

    def teardown(self) -> None:
        if self._publisher is not None:
            self._publisher.close()

    def process(self, outcome: Outcome) -> Iterator[Outcome]:
        if outcome.failures and self._publisher is not None:
            messages = []
            for f in outcome.failures:
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


@dataclass(frozen=True)
class Written:
    """When inputs were committed (time.monotonic()): the first write unit with any, the
    last one, and the counts."""

    first_at: float
    first_docs: int
    last_at: float
    docs: int
    units: int

    def steady_docs_per_s(self) -> float | None:
        """Inputs committed after the first write unit per second after it, up to the last
        one; None until two units are a measurable time apart."""
        span = self.last_at - self.first_at
        return (self.docs - self.first_docs) / span if span > 0.05 else None


_CLOCK_LOCK = threading.Lock()
_CLOCKS: dict[str, Written] = {}


@dataclass(frozen=True)
class WriteClock:
    """A picklable handle on this process's record of commits named `name` (like the
    in-flight gate, it needs the LOOPBACK SDK worker to meet the launcher's copy).

    Example:
        >>> clock = WriteClock("doc-example")
        >>> clock.record(0); clock.state() is None  # a unit without inputs is not a result
        True
        >>> clock.record(3, now=10.0); clock.record(5, now=12.0); clock.state()
        Written(first_at=10.0, first_docs=3, last_at=12.0, docs=8, units=2)
        >>> clock.state().steady_docs_per_s()
        2.5
        >>> clock.reset()
    """

    name: str

    def record(self, docs: int, now: float | None = None) -> None:
        if docs <= 0:
            return
        now = time.monotonic() if now is None else now
        with _CLOCK_LOCK:
            w = _CLOCKS.get(self.name)
            _CLOCKS[self.name] = (
                Written(now, docs, now, docs, 1) if w is None
                else Written(w.first_at, w.first_docs, max(w.last_at, now), w.docs + docs,
                             w.units + 1))

    def state(self) -> Written | None:
        with _CLOCK_LOCK:
            return _CLOCKS.get(self.name)

    def reset(self) -> None:
        with _CLOCK_LOCK:
            _CLOCKS.pop(self.name, None)


class StreamWriteOutcomes(WriteOutcomes):
    """WriteOutcomes that waits out a store outage for as long as it lasts (by default) and,
    meanwhile, stops the sources polling through the in-flight gate: memory stays bounded,
    and the backlog waits in Kafka, not in the job."""

    def __init__(self, *args: Any, gate: InFlight | None = None,
                 metrics: MetricsConfig | None = None, clock: WriteClock | None = None,
                 **kwargs: Any) -> None:
        kwargs.setdefault("store_wait_s", None)
        super().__init__(*args, **kwargs)
        self.gate = gate
        self.metrics = metrics
        self.clock = clock
        self._metrics: JobMetrics | None = None

    def setup(self) -> None:
        super().setup()
        self._metrics = job_metrics(self.metrics) if self.metrics is not None else None

    def outage_started(self) -> None:
        if self.gate is not None:
            self.gate.pause()

    def outage_ended(self) -> None:
        if self.gate is not None:
            self.gate.resume()

    def process(self, outcome: Outcome) -> Iterator[tuple[Any, int]]:
        span = outcome.span
        key = (span.topic, span.partition, span.start, span.end) if span else None
        n = self.write_waiting(outcome)
        if self.clock is not None:
            self.clock.record(n)
        if self._metrics is not None:
            self._metrics.batch_written(key, outcome)
        yield key, n


class MarkDone(beam.DoFn):
    """The end of the line: a written batch is no longer in flight."""

    def __init__(self, gate: InFlight, metrics: MetricsConfig | None = None) -> None:
        self.gate = gate
        self.metrics = metrics
        self.done = Metrics.counter(NAMESPACE, "stream_records_done")
        self.repeats = Metrics.counter(NAMESPACE, "stream_batches_repeated")
        self._metrics: JobMetrics | None = None

    def setup(self) -> None:
        self._metrics = job_metrics(self.metrics) if self.metrics is not None else None

    def process(self, written: tuple[Any, int]) -> Iterator[None]:
        key, n = written
        if self.gate.done(key):
            self.done.inc(n)
        else:
            self.repeats.inc()  # delivered twice by the runner; the store absorbed it
            if self._metrics is not None:
                self._metrics.repeated()
        return iter(())
