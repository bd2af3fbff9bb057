"""Unreadable Kafka record batches, without a broker: which poll errors mean "cannot read the
data here" (on exceptions raised by the real decoding code), how locate_unreadable finds the
offsets to flag in raw fetch bytes built here with kafka-python's own batch builder, that
the flagged offsets become decode dead letters, and that the source never polls a consumer
again after its poll failed.

"Codec not installed" is simulated in-process by making kafka.codec.has_zstd answer False,
which is exactly the check kafka-python's DefaultRecordBatch makes before decompressing."""

from __future__ import annotations

import struct
from collections.abc import Callable

import kafka.codec
import kafka.errors as Errors
import pytest
import zstandard
from apache_beam.io.restriction_trackers import OffsetRange
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.runners.sdf_utils import RestrictionTrackerView, ThreadsafeRestrictionTracker
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.util import calc_crc32c

from docstream.pipelines.parse import parse_raw
from docstream.pipelines.records import FailedRecord
from docstream.pipelines.stream_fns import KafkaBatchToRaw
from docstream.streaming.errors import StreamingError
from docstream.streaming.raw_fetch import RawFetch
from docstream.streaming.records import UNREADABLE_REASON, KafkaBatch, KafkaRecord
from docstream.streaming.source import UNBOUNDED, PartitionTracker, ReadPartitionFn
from docstream.streaming.unreadable import classify_poll_error, locate_unreadable

NONE, GZIP, SNAPPY, LZ4, ZSTD = 0, 1, 2, 3, 4
HEADER = DefaultRecordBatch.HEADER_STRUCT.size  # 61 bytes before the (compressed) records


def batch(base: int, n: int, codec: int = NONE, pid: int = -1, tx: bool = False) -> bytes:
    """One v2 record batch of n compressible records at offsets base..base+n-1."""
    b = DefaultRecordBatchBuilder(2, codec, tx, pid, 0 if pid >= 0 else -1, -1, 1 << 20)
    for i in range(n):
        b.append(i, 1_000 + i, None, b"lorem ipsum " * 20 + str(base + i).encode(), [])
    buf = b.build()
    assert DefaultRecordBatch(bytes(buf)).compression_type == codec  # compressed for real
    struct.pack_into(">q", buf, 0, base)  # the broker assigns the base offset (not in the CRC)
    return bytes(buf)


def corrupt(data: bytes, *, last_offset_delta: int | None = None) -> bytes:
    """A copy with a payload byte flipped (the CRC no longer holds) and maybe a bad header."""
    buf = bytearray(data)
    buf[HEADER + 5] ^= 0xFF
    if last_offset_delta is not None:
        struct.pack_into(">i", buf, 23, last_offset_delta)  # after offset, len, epoch, magic, crc, attrs
    return bytes(buf)


def garbled(data: bytes) -> bytes:
    """A copy whose compressed payload is garbage but whose CRC holds (written that way)."""
    buf = bytearray(data)
    for i in range(HEADER, HEADER + 4):
        buf[i] ^= 0xFF
    struct.pack_into(">I", buf, DefaultRecordBatch.CRC_OFFSET,
                     calc_crc32c(bytes(buf[DefaultRecordBatch.ATTRIBUTES_OFFSET:])))
    return bytes(buf)


def raw(offset: int, *batches: bytes, stable_end: int = 10**6, max_bytes: int = 1 << 20
        ) -> RawFetch:
    return RawFetch(offset=offset, records=b"".join(batches), max_bytes=max_bytes,
                    stable_end=stable_end)


def hide_zstd(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on this process "has no zstd library" (build zstd batches before)."""
    monkeypatch.setattr(kafka.codec, "has_zstd", lambda: False)


def raised(fn: Callable[[], object]) -> BaseException:
    try:
        fn()
    except Exception as e:
        return e
    raise AssertionError("expected an exception")


def test_classify_poll_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    zstd_batch = batch(0, 5, ZSTD)
    hide_zstd(monkeypatch)
    unreadable = [
        raised(lambda: list(DefaultRecordBatch(zstd_batch))),  # UnsupportedCodecError
        Errors.CorruptRecordError("Record batch for partition t-0 at offset 7 failed crc check"),
        raised(lambda: zstandard.ZstdDecompressor().decompress(b"junk")),  # the library's own
    ]
    # what each codec library raises on garbage, on its way out of kafka-python's decoding
    by_codec = {codec: raised(lambda c=codec: list(DefaultRecordBatch(garbled(batch(0, 5, c)))))
                for codec in (GZIP, SNAPPY, LZ4)}
    assert type(by_codec[LZ4]) is RuntimeError  # lz4: only its origin tells it apart
    for e in [*unreadable, *by_codec.values()]:
        assert classify_poll_error(e) == "unreadable", repr(e)
    assert isinstance(unreadable[0], Errors.UnsupportedCodecError)
    for e in (Errors.NodeNotReadyError(), Errors.KafkaConnectionError("reset"),
              Errors.KafkaTimeoutError("poll"), Errors.NotLeaderForPartitionError(),
              Errors.KafkaError("Failed to make progress reading messages")):
        assert classify_poll_error(e) == "transient", repr(e)
    for e in (raised(lambda: int("not a number")), RuntimeError("elsewhere"), MemoryError()):
        assert classify_poll_error(e) == "fatal", repr(e)


def test_flags_exactly_the_unreadable_batches_and_stops_at_a_readable_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = [batch(0, 10), batch(10, 20, ZSTD), batch(30, 10, ZSTD), batch(40, 5)]
    hide_zstd(monkeypatch)
    found = locate_unreadable(raw(10, *data[1:]), "posts", 0, read_committed=True)
    assert found is not None and found.end == 40  # both zstd batches: one range each
    assert [r.offset for r in found.records] == list(range(10, 40))
    assert all(r.unreadable and r.unreadable[0] == UNREADABLE_REASON and r.value == b""
               for r in found.records)
    assert [(b.first, b.last) for b in found.bad] == [(10, 29), (30, 39)]
    sentence = found.records[0].unreadable[1]  # type: ignore[index]
    assert sentence.startswith("Kafka record batch at offsets 10–29 of posts/0 is compressed "
                               "with zstd, which this consumer cannot decompress")
    assert "kafka-python[zstd]" in sentence and "moved past it" in sentence
    # at most max_records offsets per element, but a batch is never cut
    capped = locate_unreadable(raw(10, *data[1:]), "posts", 0, read_committed=True,
                               max_records=15)
    assert capped is not None and capped.end == 30 and len(capped.records) == 20
    # readable records before the bad batch come first (the fetch started mid-batch)
    mixed = locate_unreadable(raw(4, *data), "posts", 0, read_committed=True)
    assert mixed is not None and mixed.end == 40
    assert [r.offset for r in mixed.records if r.unreadable is None] == list(range(4, 10))
    assert mixed.records[0].value.endswith(b"4")
    # nothing fails to read: nothing to flag, the caller retries
    assert locate_unreadable(raw(40, data[3]), "posts", 0, read_committed=True) is None


def test_aborted_transactions_are_skipped_as_the_fetcher_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    aborted = batch(0, 5, ZSTD, pid=7, tx=True)  # read_committed never decompresses it
    data = raw(0, aborted, batch(5, 5, ZSTD), batch(10, 3))
    hide_zstd(monkeypatch)
    data = RawFetch(offset=0, records=data.records, max_bytes=data.max_bytes, stable_end=13,
                    aborted=[(7, 0)])
    found = locate_unreadable(data, "t", 1, read_committed=True)
    assert found is not None and [(b.first, b.last) for b in found.bad] == [(5, 9)]
    assert found.end == 10 and [r.offset for r in found.records] == list(range(5, 10))
    uncommitted = locate_unreadable(data, "t", 1, read_committed=False)
    assert uncommitted is not None and [(b.first, b.last) for b in uncommitted.bad] == [
        (0, 4), (5, 9)]


def test_a_crc_failure_is_flagged_from_its_header_when_the_neighbours_agree() -> None:
    found = locate_unreadable(raw(10, corrupt(batch(10, 20, LZ4)), batch(30, 5)), "t", 0,
                              read_committed=True)
    assert found is not None and found.end == 30
    assert [(b.first, b.last, b.extent) for b in found.bad] == [(10, 29, "header")]
    assert "failed its CRC check: the batch is corrupt on the broker; the partition moved " \
           "past it." in found.bad[0].sentence


def test_a_corrupt_header_never_reaches_into_the_next_batch() -> None:
    bad = corrupt(batch(10, 10), last_offset_delta=5_000)  # claims offsets 10..5010
    bounded = locate_unreadable(raw(10, bad, batch(20, 5)), "t", 0, read_committed=True)
    assert bounded is not None and bounded.end == 20  # the next batch (CRC intact) starts there
    assert [(b.first, b.last, b.extent) for b in bounded.bad] == [(10, 19, "bounded")]
    # the last batch of a fetch that ended with the visible log: bounded by the stable end
    at_end = locate_unreadable(raw(10, bad, stable_end=20), "t", 0, read_committed=True)
    assert at_end is not None and (at_end.bad[0].first, at_end.bad[0].last) == (10, 19)
    # cut by the byte limit: what follows is unknown, so only the one offset, then look again
    cut = locate_unreadable(raw(10, bad, max_bytes=len(bad)), "t", 0, read_committed=True)
    assert cut is not None and cut.end == 11 and cut.bad[0].extent == "single"
    assert "only this offset is skipped" in cut.bad[0].sentence
    # a length field too small to hold a batch header: one offset
    garbage = locate_unreadable(raw(10, b"\x00" * 8 + b"\x00\x00\x00\x05" + b"\x00" * 40), "t",
                                0, read_committed=True)
    assert garbage is not None and garbage.end == 11 and garbage.bad[0].extent == "single"


def test_compacted_batches_say_which_offsets_may_not_exist(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    buf = bytearray(batch(10, 20, ZSTD))
    hide_zstd(monkeypatch)
    # as compaction leaves it: base and last offset kept, fewer records (the CRC recomputed)
    struct.pack_into(">i", buf, HEADER - 4, 12)
    struct.pack_into(">I", buf, DefaultRecordBatch.CRC_OFFSET,
                     calc_crc32c(bytes(buf[DefaultRecordBatch.ATTRIBUTES_OFFSET:])))
    found = locate_unreadable(raw(10, bytes(buf)), "t", 0, read_committed=True)
    assert found is not None and (found.bad[0].first, found.bad[0].last) == (10, 29)
    assert "lists 12 records over these 20 offsets" in found.bad[0].sentence


def test_unreadable_records_become_decode_dead_letters() -> None:
    sentence = "Kafka record batch at offsets 3–4 of posts/2 failed its CRC check: ..."
    records = [KafkaRecord("posts", 2, 2, b"k", b'{"id": "a", "text": "fine"}', 1_000)] + [
        KafkaRecord("posts", 2, o, None, b"", -1, unreadable=(UNREADABLE_REASON, sentence))
        for o in (3, 4)]
    kb = KafkaBatch("posts", 2, 2, 5, records)
    assert kb.max_timestamp_ms == 1_000 and kb.unreadable_count == 2
    (rb,) = KafkaBatchToRaw().process(kb)
    assert (rb.span.start, rb.span.end) == (2, 5) and len(rb.inputs) == 3
    out = [parse_raw(x) for x in rb.inputs]
    assert not isinstance(out[0], FailedRecord)
    for o, got in zip((3, 4), out[1:], strict=True):
        assert isinstance(got, FailedRecord)
        d = got.dead_letter
        assert (d.stage, d.reason, d.error) == ("decode", UNREADABLE_REASON, sentence)
        assert d.position.offset == o and d.position.topic == "posts"


class _FailingConsumer:
    """Stands in for a KafkaConsumer whose poll raises `error` (no broker needed)."""

    def __init__(self, error: Exception, manager: object = None) -> None:
        self.error, self.closed = error, False
        if manager is not None:
            self._manager = manager

    def position(self, tp: object, timeout_ms: int = 0) -> int:
        return 0

    def poll(self, **kwargs: object) -> dict:
        raise self.error

    def close(self, autocommit: bool = True) -> None:
        self.closed = True


def _round(consumer: _FailingConsumer) -> tuple[list, ThreadsafeRestrictionTracker, ReadPartitionFn]:
    fn = ReadPartitionFn("127.0.0.1:1", poll_timeout_ms=10, max_records=10, idle_delay_s=0)
    fn.setup()
    fn._consumers[("t", 0)] = consumer  # type: ignore[assignment]
    tracker = ThreadsafeRestrictionTracker(PartitionTracker(OffsetRange(0, UNBOUNDED)))
    out = list(fn.process(("t", 0, 0), RestrictionTrackerView(tracker),
                          ManualWatermarkEstimator(None)))
    return out, tracker, fn


def test_a_failed_poll_never_reuses_its_consumer() -> None:
    """kafka-python 3.0.12 spins forever when a consumer whose poll raised on a batch is
    polled again at the same position: every failure path closes it."""
    away = _FailingConsumer(Errors.KafkaConnectionError("connection reset"))
    out, tracker, fn = _round(away)  # the broker is away: retry at the same offset, later
    assert out == [] and away.closed and ("t", 0) not in fn._consumers
    status = tracker.deferred_status()
    assert status is not None and status[0].start == 0 and status[1].micros > 0

    bug = _FailingConsumer(ValueError("a bug"))
    with pytest.raises(ValueError, match="a bug"):
        _round(bug)
    assert bug.closed

    def no_leader(tp: object) -> int:
        raise Errors.KafkaConnectionError("the broker went away during the look-up")

    manager = type("M", (), {"cluster": type("C", (), {"leader_for_partition": staticmethod(
        no_leader)})()})()
    lost = _FailingConsumer(Errors.UnsupportedCodecError("no zstd"), manager)
    out, tracker, _ = _round(lost)  # unreadable, but the look-up failed: retry, lose nothing
    assert out == [] and lost.closed
    status = tracker.deferred_status()
    assert status is not None and status[0].start == 0

    changed = _FailingConsumer(Errors.UnsupportedCodecError("no zstd"))  # no `_manager`
    with pytest.raises(StreamingError, match="kafka-python version's internals differ"):
        _round(changed)
    assert changed.closed
