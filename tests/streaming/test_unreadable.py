"""On the real broker: record batches the consumer cannot read become records flagged
unreadable for exactly their offsets, and the partition goes on with the next batch.

The source's splittable DoFn is driven in-process, round by round, the way the runner drives
it (one `process` call per residual restriction, each ending in `defer_remainder`), without
Prism: the rounds are what matter here, and in-process they take a second, not a minute.
"""

from __future__ import annotations

import itertools
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import kafka.codec
import pytest
from apache_beam.io.restriction_trackers import OffsetRange
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.runners.sdf_utils import RestrictionTrackerView, ThreadsafeRestrictionTracker
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient
from kafka.record.default_records import DefaultRecordBatch
from kafka.record.memory_records import MemoryRecords
from kafka.record.util import calc_crc32c

from docstream.streaming.raw_fetch import fetch_raw
from docstream.streaming.records import UNREADABLE_REASON, KafkaBatch
from docstream.streaming.source import UNBOUNDED, PartitionTracker, ReadPartitionFn

CODEC_IDS = {None: 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
HEADER = DefaultRecordBatch.HEADER_STRUCT.size


def values(prefix: str, n: int) -> list[bytes]:
    """Compressible values (kafka-python sends a batch uncompressed when that is smaller)."""
    return [f"{prefix}-{i} ".encode() + b"lorem ipsum dolor sit amet " * 8 for i in range(n)]


def produce_batch(bootstrap: str, topic: str, vals: list[bytes], codec: str | None = None
                  ) -> None:
    """The values as ONE record batch of partition 0, compressed with `codec`."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, compression_type=codec,
                             linger_ms=60_000, batch_size=1 << 20)
    try:
        for v in vals:
            producer.send(topic, value=v, partition=0)
        producer.flush(timeout=30)
    finally:
        producer.close()


def log_codecs(bootstrap: str, topic: str) -> list[tuple[int, int, int]]:
    """(base offset, last offset, compression type) of each batch of partition 0, read raw."""
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        raw = fetch_raw(consumer, TopicPartition(topic, 0), 0, max_bytes=1 << 20,
                        read_committed=False, timeout_ms=10_000)
    finally:
        consumer.close()
    return [(b.base_offset, b.last_offset, b.compression_type) for b in MemoryRecords(raw.records)]


def drive(bootstrap: str, topic: str, until: int, timeout_s: float = 15) -> list[KafkaBatch]:
    """ReadPartitionFn rounds on partition 0 from offset 0 until a span reaches `until`."""
    fn = ReadPartitionFn(bootstrap, poll_timeout_ms=300, max_records=500, idle_delay_s=0)
    fn.setup()
    batches: list[KafkaBatch] = []
    offset, deadline = 0, time.monotonic() + timeout_s
    try:
        while offset < until:
            assert time.monotonic() < deadline, (
                f"stuck at offset {offset} after spans {[(b.start, b.end) for b in batches]}")
            tracker = ThreadsafeRestrictionTracker(
                PartitionTracker(OffsetRange(offset, UNBOUNDED)))
            out = list(fn.process((topic, 0, 0), RestrictionTrackerView(tracker),
                                  ManualWatermarkEstimator(None)))
            batches += [tv.value for tv in out]
            status = tracker.deferred_status()
            assert status is not None, "every round checkpoints"
            offset = status[0].start
    finally:
        fn.teardown()
    assert batches[0].start == 0
    assert all(a.end == b.start for a, b in itertools.pairwise(batches))  # spans tile
    assert all(b.start <= r.offset < b.end for b in batches for r in b.records)
    return batches


def flagged(batches: list[KafkaBatch]) -> dict[int, str]:
    out = {}
    for b in batches:
        for r in b.records:
            if r.unreadable is not None:
                assert r.unreadable[0] == UNREADABLE_REASON and r.value == b""
                out[r.offset] = r.unreadable[1]
    return out


def readable(batches: list[KafkaBatch]) -> dict[int, bytes]:
    return {r.offset: r.value for b in batches for r in b.records if r.unreadable is None}


def test_a_codec_that_is_not_installed_flags_its_batch_and_reads_on(
    kafka_bootstrap: str, kafka_topic: Callable[..., str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """zstd is installed; "not installed" is simulated in this process by making
    kafka.codec.has_zstd answer False (the check DefaultRecordBatch makes before it
    decompresses), after the batch was produced with the real zstd."""
    topic = kafka_topic(1)
    before, middle, after = values("a", 10), values("z", 20), values("b", 5)
    produce_batch(kafka_bootstrap, topic, before)
    produce_batch(kafka_bootstrap, topic, middle, "zstd")
    produce_batch(kafka_bootstrap, topic, after)
    assert log_codecs(kafka_bootstrap, topic) == [(0, 9, 0), (10, 29, 4), (30, 34, 0)]
    monkeypatch.setattr(kafka.codec, "has_zstd", lambda: False)

    batches = drive(kafka_bootstrap, topic, until=35)
    bad = flagged(batches)
    assert sorted(bad) == list(range(10, 30))  # exactly the zstd batch, in a span of its own
    assert [(b.start, b.end) for b in batches if b.unreadable_count] == [(10, 30)]
    sentence = bad[10]
    assert sentence.startswith(f"Kafka record batch at offsets 10–29 of {topic}/0 is "
                               "compressed with zstd, which this consumer cannot decompress")
    assert "kafka-python[zstd]" in sentence
    assert readable(batches) == dict(zip([*range(10), *range(30, 35)], before + after,
                                         strict=True))


def segment_of(bootstrap: str, topic: str) -> Path:
    """The broker's log segment of partition 0 (the broker runs on this machine)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        dirs = [d["log_dir"] for b in admin.describe_log_dirs(topic_partitions=[topic])
                for d in b["log_dirs"] if d["topics"]]
    finally:
        admin.close()
    segments = [p for d in dirs for p in Path(d, f"{topic}-0").glob("*.log")]
    assert len(segments) == 1, (f"the broker's segment of {topic}-0 is not on this machine "
                                f"({dirs}): this test edits it on disk")
    return segments[0]


def corrupt_on_disk(segment: Path, base_offset: int, *, keep_crc: bool) -> None:
    """Garble the first bytes of the (compressed) records of the batch at `base_offset` in
    the segment file, which the broker serves as-is on fetch. keep_crc: write the CRC of the
    garbled bytes too, as if the producer had written garbage (then only decompression
    fails)."""
    data = bytearray(segment.read_bytes())
    pos = 0
    while pos < len(data):
        base, length = struct.unpack_from(">qi", data, pos)
        if base == base_offset:
            break
        pos += 12 + length
    else:
        raise AssertionError(f"no batch at offset {base_offset} in {segment}")
    batch = data[pos:pos + 12 + length]
    for i in range(HEADER, HEADER + 4):
        batch[i] ^= 0xFF
    if keep_crc:
        struct.pack_into(">I", batch, DefaultRecordBatch.CRC_OFFSET,
                         calc_crc32c(bytes(batch[DefaultRecordBatch.ATTRIBUTES_OFFSET:])))
    with open(segment, "r+b") as f:
        f.seek(pos)
        f.write(batch)


@pytest.fixture()
def corrupt_topic(kafka_bootstrap: str, kafka_topic: Callable[..., str]
                  ) -> Iterator[tuple[str, list[bytes], list[bytes]]]:
    """A topic of three lz4 batches (offsets 0–9, 10–29, 30–34), edited on disk by the test."""
    topic = kafka_topic(1)
    before, after = values("a", 10), values("b", 5)
    produce_batch(kafka_bootstrap, topic, before, "lz4")
    produce_batch(kafka_bootstrap, topic, values("z", 20), "lz4")
    produce_batch(kafka_bootstrap, topic, after, "lz4")
    assert log_codecs(kafka_bootstrap, topic) == [(0, 9, 3), (10, 29, 3), (30, 34, 3)]
    yield topic, before, after


@pytest.mark.parametrize("keep_crc", [False, True], ids=["crc-fails", "lz4-garbage"])
def test_a_corrupt_batch_in_the_broker_log_flags_its_offsets_and_reads_on(
    kafka_bootstrap: str, corrupt_topic: tuple[str, list[bytes], list[bytes]], keep_crc: bool,
) -> None:
    """A real corrupt batch: the bytes in the broker's segment file are garbled (a produce
    request could not do it: the broker validates what it is sent)."""
    topic, before, after = corrupt_topic
    corrupt_on_disk(segment_of(kafka_bootstrap, topic), 10, keep_crc=keep_crc)

    batches = drive(kafka_bootstrap, topic, until=35)
    bad = flagged(batches)
    assert sorted(bad) == list(range(10, 30))
    assert [(b.start, b.end) for b in batches if b.unreadable_count] == [(10, 30)]
    head = f"Kafka record batch at offsets 10–29 of {topic}/0 "
    if keep_crc:  # lz4 itself fails on the garbage (a RuntimeError from its C code)
        assert bad[10].startswith(head + "is compressed with lz4 but does not decompress "
                                  "(RuntimeError: LZ4F_")
    else:
        assert bad[10] == head + ("failed its CRC check: the batch is corrupt on the broker; "
                                  "the partition moved past it.")
    assert readable(batches) == dict(zip([*range(10), *range(30, 35)], before + after,
                                         strict=True))


def test_every_codec_producers_use_reads_normally(
    kafka_bootstrap: str, kafka_topic: Callable[..., str],
) -> None:
    topic = kafka_topic(1)
    sent: list[bytes] = []
    for codec in ("gzip", "snappy", "lz4", "zstd"):
        vals = values(codec, 15)
        produce_batch(kafka_bootstrap, topic, vals, codec)
        sent += vals
    assert [c for _, _, c in log_codecs(kafka_bootstrap, topic)] == [1, 2, 3, 4]
    batches = drive(kafka_bootstrap, topic, until=60)
    assert flagged(batches) == {}
    assert readable(batches) == dict(enumerate(sent))
