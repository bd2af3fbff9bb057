"""Polls sized by work: the source cuts a poll at its token budget, claims only the offsets
it emits, and goes on exactly where it cut (from the records it kept, or by seeking), so a
partition's spans still tile its offsets. A fake consumer drives the DoFn's rounds here; the
last test runs the real source on the real broker and Prism."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from apache_beam.io.restriction_trackers import OffsetRange
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from kafka import KafkaProducer, TopicPartition

from docstream.streaming.admin import resolve_start_offsets
from docstream.streaming.records import (
    BYTES_PER_TOKEN,
    KafkaBatch,
    KafkaRecord,
    estimated_tokens,
    fit_budget,
)
from docstream.streaming.source import UNBOUNDED, PartitionTracker, ReadPartitionFn
from tests.streaming.test_source import run_source

TOPIC = "posts"
LONG = b"L" * 2730  # a 400-word article in its JSON envelope: 456 estimated tokens
SHORT = b"s" * 341  # an AG News post in its envelope: 57


def rec(offset: int, value: bytes) -> KafkaRecord:
    return KafkaRecord(TOPIC, 0, offset, None, value, 0)


# ------------------------------------------------------------------------- the estimate


def test_estimate_and_cut() -> None:
    assert estimated_tokens(LONG) == 2730 // BYTES_PER_TOKEN + 1 == 456
    longs = [rec(i, LONG) for i in range(100)]
    assert fit_budget(longs, 32768) == 71  # 71 * 456 = 32,376; one more is over
    assert fit_budget(longs, 4096) == 8
    assert fit_budget(longs, 100) == 1  # a record over the budget still goes, alone
    shorts = [rec(i, SHORT) for i in range(500)]
    assert fit_budget(shorts, 32768) == 500  # 500 short posts: one poll, as before
    assert fit_budget(longs, None) == 100


# ------------------------------------------------------------------ the DoFn's rounds


@dataclass
class _Msg:
    offset: int
    value: bytes
    key: bytes | None = None
    timestamp: int = 1_700_000_000_000
    headers: Any = None


class FakeConsumer:
    """One partition's log (offsets may skip, as over transaction markers), read like
    kafka-python: poll returns up to max_records from the position, the position then
    stands at the next record (or the log end once everything was returned)."""

    def __init__(self, log: dict[int, bytes], log_end: int) -> None:
        self.log = sorted(log.items())
        self.log_end = log_end
        self.pos = 0
        self.polls = 0
        self.seeks: list[int] = []

    def poll(self, timeout_ms: int, max_records: int) -> dict[TopicPartition, list[_Msg]]:
        self.polls += 1
        rest = [(o, v) for o, v in self.log if o >= self.pos]
        got = rest[:max_records]
        self.pos = rest[len(got)][0] if len(got) < len(rest) else max(self.pos, self.log_end)
        return {TopicPartition(TOPIC, 0): [_Msg(o, v) for o, v in got]} if got else {}

    def position(self, tp: TopicPartition, timeout_ms: int = 0) -> int:
        return self.pos

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append(offset)
        self.pos = offset

    def highwater(self, tp: TopicPartition) -> int:
        return self.log_end


class FakeTracker:
    """What the runner hands `process`: a restriction tracker that can defer the rest."""

    def __init__(self, start: int) -> None:
        self.tracker = PartitionTracker(OffsetRange(start, UNBOUNDED))
        self.residual: OffsetRange | None = None
        self.delay: Any = "not deferred"

    def current_restriction(self) -> OffsetRange:
        return self.tracker.current_restriction()

    def try_claim(self, position: int) -> bool:
        return self.tracker.try_claim(position)

    def defer_remainder(self, delay: Any = None) -> None:
        self.delay = delay
        _, self.residual = self.tracker.try_split(0)


def make_fn(consumer: FakeConsumer | None, **kwargs: Any) -> ReadPartitionFn:
    fn = ReadPartitionFn("unused:9092", poll_timeout_ms=1, idle_delay_s=0.05,
                         **{"max_records": 500, **kwargs})
    fn.setup()
    if consumer is not None:
        fn._consumers[(TOPIC, 0)] = consumer  # type: ignore[assignment]
    return fn


def one_round(fn: ReadPartitionFn, start: int) -> tuple[list[KafkaBatch], FakeTracker]:
    tracker = FakeTracker(start)
    out = [tv.value for tv in fn.process((TOPIC, 0, 0), tracker,
                                         ManualWatermarkEstimator(None))]
    return out, tracker


def drain(fn: ReadPartitionFn, start: int = 0, rounds: int = 100,
          ) -> tuple[list[KafkaBatch], list[Any]]:
    """Rounds until the partition is caught up: the batches and each round's resume delay."""
    batches: list[KafkaBatch] = []
    delays = []
    for _ in range(rounds):
        out, tracker = one_round(fn, start)
        batches += out
        delays.append(tracker.delay)
        assert tracker.residual is not None
        start = tracker.residual.start
        if not out:
            return batches, delays
    raise AssertionError("never caught up")


def assert_tiles(batches: list[KafkaBatch], log: dict[int, bytes], log_end: int) -> None:
    assert batches[0].start == 0 and batches[-1].end == log_end
    for a, b in itertools.pairwise(batches):
        assert a.end == b.start  # no gap, no overlap
    for b in batches:
        assert all(b.start <= r.offset < b.end for r in b.records)
    assert [(r.offset, r.value) for b in batches for r in b.records] == sorted(log.items())


def test_long_poll_is_cut_at_the_budget_and_the_spans_tile() -> None:
    # 60 long records; offsets 14 and 41 are transaction markers (no record), 62 the log end
    offsets = [o for o in range(62) if o not in (14, 41)]
    log = {o: LONG for o in offsets}
    consumer = FakeConsumer(log, log_end=62)
    fn = make_fn(consumer, poll_tokens=4000, first_poll_tokens=1000)
    batches, delays = drain(fn)
    assert_tiles(batches, log, 62)
    # the budget ramps 1000 → 2000 → 4000 (456 tokens a record: 2, 4, then 8 a batch)
    assert [len(b) for b in batches] == [2, 4, 8, 8, 8, 8, 8, 8, 6]
    assert all(sum(estimated_tokens(r.value) for r in b.records) <= 4000 for b in batches)
    # a cut batch ends where the next record starts: the marker at 14 is in the batch before
    assert (batches[2].start, batches[2].end) == (6, 15)
    # one poll read all 60 records; the rest came from what the DoFn kept: no re-read, no seek
    assert consumer.polls == 2 and consumer.seeks == []  # the 2nd poll found nothing
    assert delays[:-2] == [None] * (len(delays) - 2)  # more was waiting: on at once
    assert delays[-1] is not None  # caught up: look again after the idle delay


def test_short_poll_is_not_cut() -> None:
    log = {o: SHORT for o in range(3000)}
    consumer = FakeConsumer(log, log_end=3000)
    fn = make_fn(consumer, poll_tokens=32768)  # the CPU default; ramp from 4096
    batches, _ = drain(fn)
    assert_tiles(batches, log, 3000)
    # The first polls ramp up (4,096, 8,192, then 16,384 tokens: 57 a post), then every poll
    # of 500 short posts goes whole, as before.
    assert [len(b) for b in batches] == [71, 143, 286, 287, 213, 500, 500, 500, 500]
    fn2 = make_fn(FakeConsumer(log, log_end=3000), poll_tokens=32768, first_poll_tokens=32768)
    assert [len(b) for b in drain(fn2)[0]] == [500] * 6


def test_no_budget_reads_whole_polls() -> None:
    log = {o: LONG for o in range(700)}
    fn = make_fn(FakeConsumer(log, log_end=700), poll_tokens=None)
    batches, _ = drain(fn)
    assert [len(b) for b in batches] == [500, 200]
    assert_tiles(batches, log, 700)


def test_another_instance_goes_on_where_the_cut_was() -> None:
    """The runner may hand the residual to another DoFn instance: it reads from the cut (its
    consumer seeks there), and the first instance drops what it kept when it is handed a
    later start, seeking too. Together the spans still tile."""
    log = {o: LONG for o in range(30)}
    first_consumer = FakeConsumer(log, log_end=30)
    first = make_fn(first_consumer, poll_tokens=2000, first_poll_tokens=2000)
    b1, t1 = one_round(first, 0)  # polls all 30, emits 4, keeps 26
    assert [(b.start, b.end) for b in b1] == [(0, 4)] and first_consumer.pos == 30
    assert t1.residual is not None and t1.residual.start == 4

    second_consumer = FakeConsumer(log, log_end=30)
    second_consumer.pos = 17  # it read elsewhere before
    second = make_fn(second_consumer, poll_tokens=2000, first_poll_tokens=2000)
    b2, t2 = one_round(second, 4)
    assert second_consumer.seeks == [4]
    assert [(b.start, b.end) for b in b2] == [(4, 8)]

    assert t2.residual is not None
    b3, _ = drain(first, t2.residual.start)  # back to the first instance, at 8
    assert first_consumer.seeks == [8]  # its kept records started at 4: dropped, sought
    assert_tiles(b1 + b2 + b3, log, 30)


def test_a_round_split_away_keeps_nothing() -> None:
    """When the claim fails (the runner split the restriction at its start), nothing is
    emitted and nothing kept: the residual re-reads from the start."""
    log = {o: LONG for o in range(10)}
    consumer = FakeConsumer(log, log_end=10)
    fn = make_fn(consumer, poll_tokens=1000, first_poll_tokens=1000)
    tracker = FakeTracker(0)
    tracker.tracker.try_split(0)  # split at the start: nothing left to claim
    out = list(fn.process((TOPIC, 0, 0), tracker, ManualWatermarkEstimator(None)))
    assert out == [] and fn._held == {}
    batches, _ = drain(fn)
    assert consumer.seeks == [0]
    assert_tiles(batches, log, 10)


# -------------------------------------------------------- the real broker and Prism


def test_real_source_cuts_long_polls_and_tiles(
    kafka_bootstrap: str, kafka_topic: Callable[..., str], tmp_path: Path,
) -> None:
    topic = kafka_topic(2)
    producer = KafkaProducer(bootstrap_servers=kafka_bootstrap)
    sent: dict[int, list[str]] = {0: [], 1: []}
    for i in range(160):
        part = i % 2
        value = f"{i:04d}".encode() + LONG[4:]
        producer.send(topic, value=value, partition=part)
        sent[part].append(value.decode()[:4])
    producer.flush()
    producer.close()
    starts = resolve_start_offsets(kafka_bootstrap, [topic])
    lines = run_source(
        tmp_path, kafka_bootstrap, topic, starts,
        lambda ls: sum(len(x["offsets"]) for x in ls) >= 160, max_records=500,
        poll_timeout_ms=50, idle_delay_s=0.05, poll_tokens=4000, first_poll_tokens=1000)
    for part in (0, 1):
        mine = sorted((x for x in lines if x["tp"][1] == part), key=lambda x: x["start"])
        assert mine[0]["start"] == 0 and mine[-1]["end"] == 80
        for a, b in itertools.pairwise(mine):
            assert a["end"] == b["start"]  # no gap, no overlap
        assert [v[:4] for x in mine for v in x["values"]] == sent[part]  # each once, in order
        sizes = [len(x["offsets"]) for x in mine]
        assert max(sizes) <= 8 and len(mine) >= 10, sizes  # 4,000 tokens: 8 long records


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])
