"""A Kafka source for Beam: one unbounded restriction per partition, one element per poll.

`ReadFromKafkaPartitions` expands to Impulse → one element per (topic, partition, start)
→ a splittable DoFn whose restriction is the partition's offset range [start, ∞). Each call
of `process` polls its partition once (kafka-python, `assign` + `seek`, no group
membership), claims the offsets the poll covered and emits them as ONE `KafkaBatch`, then
checkpoints with `defer_remainder`: the runner resumes the rest [end, ∞) later (at once
after a full poll, after `idle_delay_s` when the partition was caught up). The residual
starts exactly where the batch ended, so the spans of a partition tile its offsets.

Polls are sized by work, not only by record count: a poll's records are cut once their
estimated model tokens (value bytes / `records.BYTES_PER_TOKEN`) exceed `poll_tokens`, so
that a backlog of long documents is written a model-batch's worth at a time instead of
`max_records` long documents at once; 500 short posts still fit one poll. Only the offsets
up to the cut are claimed (the batch ends at the first record left out, so offsets Kafka
skipped before it belong to this batch); the records left out stay with this DoFn instance
and are emitted first by the next round of the partition, when it starts exactly there
(the consumer has already read past them, so it polls on from the end of the poll without a
seek). A round that starts elsewhere (another instance ran the residual) drops them and
seeks, as before. The first polls of each partition (per instance) are smaller still: the
budget starts at `first_poll_tokens` and doubles with each poll cut by it, up to
`poll_tokens`, so that the job's first results land about one model batch after it started
reading, although every partition starts with a full backlog and they share the cores.

Only checkpoint splits are accepted: cutting [start, ∞) at a fraction would hand a second
reader a made-up offset range of the same partition.

A failed poll is one of two things (streaming.unreadable.classify_poll_error). The broker is
away: nothing is claimed and the same offset is polled again later with a fresh consumer. Or
the record batch at the position cannot be read by this client (a codec that is not
installed, a corrupt batch): retrying would stall the partition forever, so the batch's offset
range is found from its header (streaming.unreadable) and emitted as records flagged
`unreadable`, in a batch whose span covers them like any other, and the next round reads on
after it.

Long module: the splittable DoFn, its restriction provider and tracker, and the records a
cut poll holds for the next round define together how spans tile a partition; split apart,
that one invariant would be spread over modules.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.metrics import Metrics
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp
from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from .admin import CLIENT_ID, PartitionKey, resolve_start_offsets
from .errors import StreamingError
from .flow import InFlight
from .raw_fetch import fetch_raw
from .records import KafkaBatch, KafkaRecord, fit_budget
from .unreadable import classify_poll_error, locate_unreadable

log = logging.getLogger(__name__)

UNBOUNDED = 2**63 - 1  # a partition's restriction never ends
ERROR_BACKOFF_S = 1.0  # resume delay after a failed poll (broker away)
FIRST_POLL_SHARE = 8  # the first poll of a partition gets poll_tokens / FIRST_POLL_SHARE
NAMESPACE = "docstream.kafka"

# kafka-python settings of the source's consumers. read_committed: aborted transactional
# records are skipped (the position still moves past them, so spans keep tiling).
CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable_auto_commit": False,
    "auto_offset_reset": "earliest",
    "isolation_level": "read_committed",
    "fetch_max_wait_ms": 100,
    "reconnect_backoff_ms": 100,
    "reconnect_backoff_max_ms": 2000,
    "request_timeout_ms": 30000,
    "max_partition_fetch_bytes": 1 << 20,
}


class PartitionTracker(OffsetRestrictionTracker):
    """An offset tracker for an unbounded partition range that only splits to checkpoint."""

    def try_split(self, fraction_of_remainder: float) -> Any:
        if fraction_of_remainder > 0:
            return None
        return super().try_split(0)

    def is_bounded(self) -> bool:
        return False


class PartitionRestrictionProvider(RestrictionProvider):
    """Element (topic, partition, start) → restriction [start, ∞)."""

    def initial_restriction(self, element: tuple[str, int, int]) -> OffsetRange:
        return OffsetRange(element[2], UNBOUNDED)

    def create_tracker(self, restriction: OffsetRange) -> PartitionTracker:
        return PartitionTracker(restriction)

    def restriction_size(self, element: Any, restriction: OffsetRange) -> int:
        return 1  # unknown backlog; never used to split (see PartitionTracker)

    def truncate(self, element: Any, restriction: OffsetRange) -> None:
        return None  # on drain, read nothing more


@dataclass(frozen=True, slots=True)
class _Held:
    """Records a poll read past its token budget: [start, end) of the partition, where `end`
    is the consumer's position after that poll, and whether the poll was full."""

    start: int
    end: int
    records: list[KafkaRecord]
    full: bool


_RESTRICTION = beam.DoFn.RestrictionParam(PartitionRestrictionProvider())
_WATERMARK = beam.DoFn.WatermarkEstimatorParam(ManualWatermarkEstimator.default_provider())


class ReadPartitionFn(beam.DoFn):
    """The splittable DoFn: one poll per call, one KafkaBatch per poll (see module doc)."""

    def __init__(self, bootstrap: str, *, poll_timeout_ms: int, max_records: int,
                 idle_delay_s: float, gate: InFlight | None = None,
                 consumer_config: Mapping[str, Any] | None = None,
                 poll_tokens: int | None = None, first_poll_tokens: int | None = None) -> None:
        self.bootstrap = bootstrap
        self.poll_timeout_ms = poll_timeout_ms
        self.max_records = max_records
        self.idle_delay_s = idle_delay_s
        self.gate = gate
        self.consumer_config = {**CONSUMER_DEFAULTS, **(consumer_config or {})}
        self.poll_tokens = poll_tokens
        self.first_poll_tokens = (
            None if poll_tokens is None
            else min(first_poll_tokens or max(poll_tokens // FIRST_POLL_SHARE, 1), poll_tokens))
        self._consumers: dict[PartitionKey, KafkaConsumer] = {}
        self._held: dict[PartitionKey, _Held] = {}
        self._budgets: dict[PartitionKey, int] = {}
        self.records_read = Metrics.counter(NAMESPACE, "records_read")
        self.bytes_read = Metrics.counter(NAMESPACE, "bytes_read")
        self.polls = Metrics.counter(NAMESPACE, "polls")
        self.held_back = Metrics.counter(NAMESPACE, "polls_held_back")
        self.poll_errors = Metrics.counter(NAMESPACE, "poll_errors")
        self.unreadable = Metrics.counter(NAMESPACE, "unreadable_records")
        self.cut = Metrics.counter(NAMESPACE, "polls_cut_at_token_budget")
        self._last_warning = 0.0

    def setup(self) -> None:
        self._consumers = {}
        self._held = {}
        self._budgets = {}

    def teardown(self) -> None:
        consumers, self._consumers = list(self._consumers.values()), {}
        for consumer in consumers:
            with contextlib.suppress(Exception):  # closing on the way out
                consumer.close(autocommit=False)
        self._consumers = {}
        self._held = {}

    def _drop(self, topic: str, partition: int) -> None:
        self._held.pop((topic, partition), None)
        consumer = self._consumers.pop((topic, partition), None)
        if consumer is not None:
            with contextlib.suppress(Exception):
                consumer.close(autocommit=False)

    def _consumer(self, topic: str, partition: int, offset: int) -> KafkaConsumer:
        """This instance's consumer of the partition, positioned at `offset`."""
        key = (topic, partition)
        tp = TopicPartition(topic, partition)
        consumer = self._consumers.get(key)
        if consumer is None:
            consumer = KafkaConsumer(bootstrap_servers=self.bootstrap,
                                     client_id=f"{CLIENT_ID}-{topic}-{partition}",
                                     max_poll_records=self.max_records, **self.consumer_config)
            consumer.assign([tp])
            consumer.seek(tp, offset)
            self._consumers[key] = consumer
            return consumer
        # Another instance (or a restarted residual) may have read past `offset`, or this
        # consumer holds prefetched records from further on: seeking drops them.
        if consumer.position(tp, timeout_ms=self.poll_timeout_ms) != offset:
            consumer.seek(tp, offset)
        return consumer

    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        element: tuple[str, int, int],
        tracker: Any = _RESTRICTION,
        watermark: Any = _WATERMARK,
    ) -> Iterator[TimestampedValue]:
        yield from self._round(element, tracker, watermark)

    def _round(self, element: tuple[str, int, int], tracker: Any, watermark: Any
               ) -> Iterator[TimestampedValue]:
        """One poll (or the records the last one left over): emit its batch, at most a token
        budget's worth, and checkpoint; or checkpoint with a delay when idle."""
        topic, partition, _ = element
        key = (topic, partition)
        start = tracker.current_restriction().start
        idle = Duration(micros=int(self.idle_delay_s * 1e6))
        if self.gate is not None and not self.gate.admit():
            self.held_back.inc()  # too much in flight (or draining): look again shortly
            tracker.defer_remainder(idle)
            return
        tp = TopicPartition(topic, partition)
        held = self._held.pop(key, None)
        if held is not None and held.start != start:
            held = None  # another instance went on from here: poll (and seek) afresh
        if held is not None:
            records, end, full = held.records, held.end, held.full
        else:
            try:
                consumer = self._consumer(topic, partition, start)
                polled = consumer.poll(timeout_ms=self.poll_timeout_ms,
                                       max_records=self.max_records)
                fetched = polled.get(tp, [])
                end = consumer.position(tp, timeout_ms=self.poll_timeout_ms)
            except Exception as e:  # sorted below; a bug is re-raised
                kind = classify_poll_error(e)
                if kind == "unreadable":
                    yield from self._skip_unreadable(topic, partition, start, e, tracker,
                                                     watermark)
                elif kind == "transient":
                    self._retry_later(topic, partition, e, tracker)
                else:
                    self._drop(topic, partition)  # a failed poll leaves kafka-python's fetcher stuck
                    raise
                return
            self.polls.inc()
            if end is None or end < start:
                raise StreamingError(
                    f"{topic}/{partition}: the consumer went back from offset {start} to "
                    f"{end}: the log ends below the stored position (was the topic deleted and "
                    "re-created?); reset this group's stored positions to start over")
            if end == start:
                # Caught up: the watermark follows the wall clock while the partition is idle.
                _advance(watermark, int(time.time() * 1000))
                Metrics.gauge(NAMESPACE, f"lag.{topic}.{partition}").set(0)
                tracker.defer_remainder(idle)
                return
            records = [
                KafkaRecord(topic, partition, r.offset, r.key, r.value or b"", int(r.timestamp),
                            tuple((k, v or b"") for k, v in (r.headers or ())))
                for r in fetched
            ]
            full = len(records) >= self.max_records
        budget = self._budget(key)
        n = fit_budget(records, budget)
        left = None
        if n < len(records):
            # Cut at the budget: this batch ends where the first record left out starts (so
            # the skipped offsets before it are this batch's); the rest waits for the next round.
            left = _Held(records[n].offset, end, records[n:], full)
            records, end = records[:n], records[n].offset
        if not tracker.try_claim(end - 1):
            return  # the runner split us at `start`: the residual re-reads from there
        if left is not None:
            self.cut.inc()
            self._held[key] = left
            if budget is not None and self.poll_tokens is not None:
                self._budgets[key] = min(budget * 2, self.poll_tokens)
        consumer = self._consumers.get(key)
        highwater = consumer.highwater(tp) if consumer is not None else None
        if highwater is not None:
            Metrics.gauge(NAMESPACE, f"lag.{topic}.{partition}").set(max(highwater - end, 0))
        yield self._emit(KafkaBatch(topic, partition, start, end, records), watermark)
        # Records left over, or a full poll: more is waiting, resume at once. A partial poll
        # read all there was: look again after the idle delay (an immediate re-poll would
        # mostly find nothing and cost a bundle; waiting lets the next poll, and the model's
        # batch, fill).
        tracker.defer_remainder(None if left is not None or full else idle)

    def _budget(self, key: PartitionKey) -> int | None:
        """This partition's token budget for its next batch (None: no bound)."""
        if self.poll_tokens is None:
            return None
        return self._budgets.setdefault(key, self.first_poll_tokens or self.poll_tokens)

    def _emit(self, batch: KafkaBatch, watermark: Any) -> TimestampedValue:
        """Count the batch, admit it to the gate, and stamp it for the output."""
        unreadable = batch.unreadable_count
        self.records_read.inc(len(batch.records) - unreadable)
        if unreadable:
            self.unreadable.inc(unreadable)
        self.bytes_read.inc(sum(len(r.value) for r in batch.records))
        if self.gate is not None:
            self.gate.add((batch.topic, batch.partition, batch.start, batch.end),
                          records=len(batch.records))
        return TimestampedValue(batch, _advance(watermark, batch.max_timestamp_ms))

    def _retry_later(self, topic: str, partition: int, error: BaseException, tracker: Any) -> None:
        """The broker is away (restart, network): nothing was claimed, so nothing is lost;
        start over with a fresh consumer at the same offset a little later."""
        self.poll_errors.inc()
        self._drop(topic, partition)
        now = time.monotonic()
        if now - self._last_warning > 10:
            self._last_warning = now
            log.warning("%s/%d: Kafka poll failed (%s: %s); retrying every %.1f s",
                        topic, partition, error.__class__.__name__, error, ERROR_BACKOFF_S)
        tracker.defer_remainder(Duration(micros=int(ERROR_BACKOFF_S * 1e6)))

    def _skip_unreadable(self, topic: str, partition: int, start: int, error: BaseException,
                         tracker: Any, watermark: Any) -> Iterator[TimestampedValue]:
        """The batch at `start` cannot be read: emit its offsets flagged unreadable and move on
        (streaming.unreadable); retry later if it cannot be found (the broker went away)."""
        tp = TopicPartition(topic, partition)
        cfg = self.consumer_config
        try:
            consumer = self._consumers.get((topic, partition))
            if consumer is None:  # the poll failed before the consumer existed
                consumer = self._consumer(topic, partition, start)
            raw = fetch_raw(consumer, tp, start,
                            max_bytes=int(cfg.get("max_partition_fetch_bytes", 1 << 20)),
                            read_committed=_read_committed(cfg),
                            timeout_ms=int(cfg.get("request_timeout_ms", 30000)))
            found = locate_unreadable(raw, topic, partition, read_committed=_read_committed(cfg),
                                      check_crcs=bool(cfg.get("check_crcs", True)),
                                      max_records=self.max_records)
        except KafkaError as e:
            self._retry_later(topic, partition, e, tracker)
            return
        finally:
            self._drop(topic, partition)  # kafka-python spins if this consumer polls again
        if found is None:
            self._retry_later(topic, partition, error, tracker)
            return
        if not tracker.try_claim(found.end - 1):
            return
        for bad in found.bad:
            log.warning("%s/%d: %s Each of these offsets becomes a dead letter (the poll "
                        "raised %s: %s).", topic, partition, bad.sentence,
                        error.__class__.__name__, error)
        yield self._emit(KafkaBatch(topic, partition, start, found.end, found.records),
                         watermark)
        tracker.defer_remainder(None)  # what follows is probably readable: on at once


def _read_committed(config: Mapping[str, Any]) -> bool:
    level = config.get("isolation_level", "read_uncommitted")
    return level == "read_committed" if isinstance(level, str) else int(level) == 1


def _advance(watermark: Any, ms: int | None) -> Timestamp:
    """Move the watermark forward to `ms` (never back); the element timestamp to use."""
    current = watermark.current_watermark()
    ts = Timestamp(micros=ms * 1000) if ms is not None else (current or Timestamp.now())
    if current is None or ts > current:
        watermark.set_watermark(ts)
    return ts


class ReadFromKafkaPartitions(beam.PTransform):
    """PCollection[KafkaBatch] from every partition of `topics`, from `start_offsets` on.

    Args:
        bootstrap: "host:port[,host:port]".
        topics: topic names; every partition of each is read (found at construction).
        start_offsets: stored positions {(topic, partition): next offset to read}, passed in
            by the caller; partitions missing from it start at their beginning offset. They
            are resolved once, here, into `self.start_offsets` (a stored position below the
            first retained offset starts there): callers read the starts from it.
        poll_timeout_ms: how long one poll waits for records; bounds the delay before a
            quiet partition's records are emitted.
        max_records: at most this many records per poll, i.e. per element.
        idle_delay_s: resume delay after a poll that found nothing (or when held back).
        gate: optional in-flight limit shared with the end of the pipeline (streaming.flow).
        poll_tokens: at most this many estimated model tokens per element (value bytes /
            records.BYTES_PER_TOKEN; an element holds at least one record); None: no bound
            but max_records.
        first_poll_tokens: the budget of a partition's first element, doubled after each
            element cut by it, up to poll_tokens (default poll_tokens / 8; poll_tokens: no
            ramp).
        partitions: read only these partitions of `topics` (a worker's share of its consumer
            group, streaming.membership); None: all of them.

    Example:
        >>> read = ReadFromKafkaPartitions("127.0.0.1:9092", ["posts"])  # doctest: +SKIP
        >>> read.start_offsets  # doctest: +SKIP
        {('posts', 0): 0, ('posts', 1): 0, ('posts', 2): 0}
    """

    def __init__(self, bootstrap: str, topics: Sequence[str],
                 start_offsets: Mapping[PartitionKey, int] | None = None, *,
                 poll_timeout_ms: int = 500, max_records: int = 500, idle_delay_s: float = 0.05,
                 gate: InFlight | None = None,
                 consumer_config: Mapping[str, Any] | None = None,
                 poll_tokens: int | None = None, first_poll_tokens: int | None = None,
                 partitions: Collection[PartitionKey] | None = None) -> None:
        super().__init__()
        if not topics:
            raise ValueError("name at least one topic")
        if not 1 <= poll_timeout_ms <= 60_000:
            raise ValueError(f"poll_timeout_ms must be within 1..60000, got {poll_timeout_ms}")
        if not 1 <= max_records <= 100_000:
            raise ValueError(f"max_records must be within 1..100000, got {max_records}")
        if idle_delay_s < 0:
            raise ValueError(f"idle_delay_s must be >= 0, got {idle_delay_s}")
        for name, value in (("poll_tokens", poll_tokens), ("first_poll_tokens",
                                                           first_poll_tokens)):
            if value is not None and value < 1:
                raise ValueError(f"{name} must be >= 1 (or None), got {value}")
        self.bootstrap = bootstrap
        self.topics = list(topics)
        starts = resolve_start_offsets(bootstrap, self.topics, start_offsets)
        if partitions is not None:
            starts = {k: v for k, v in starts.items() if k in set(partitions)}
        self.start_offsets = starts
        self.poll_timeout_ms = poll_timeout_ms
        self.max_records = max_records
        self.idle_delay_s = idle_delay_s
        self.gate = gate
        self.consumer_config = dict(consumer_config or {})
        self.poll_tokens = poll_tokens
        self.first_poll_tokens = first_poll_tokens

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        elements = [(t, p, o) for (t, p), o in sorted(self.start_offsets.items())]
        return (
            pbegin
            | "Impulse" >> beam.Impulse()
            | "Partitions" >> beam.FlatMap(lambda _, els=elements: list(els))
            | "Poll" >> beam.ParDo(ReadPartitionFn(
                self.bootstrap, poll_timeout_ms=self.poll_timeout_ms,
                max_records=self.max_records, idle_delay_s=self.idle_delay_s, gate=self.gate,
                consumer_config=self.consumer_config, poll_tokens=self.poll_tokens,
                first_poll_tokens=self.first_poll_tokens))
        )
