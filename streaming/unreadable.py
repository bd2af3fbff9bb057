"""Kafka record batches this client cannot read: told apart from a broker that is away, found
by their headers, and turned into offsets flagged unreadable (dead letters that say why).

How such a batch shows up: kafka-python decodes record batches lazily inside
`KafkaConsumer.poll` (consumer/fetcher.py, `PartitionRecords._unpack_records`) and raises
from there: `UnsupportedCodecError` (a codec whose library is not installed, or a codec id
Kafka does not define), `CorruptRecordError` (CRC check failed, malformed record structure),
or whatever the codec library raises on bytes it cannot decompress (`zlib.error`,
`gzip.BadGzipFile`, lz4's `RuntimeError`, `zstandard.ZstdError`, `snappy.UncompressError`,
`struct.error` ...). The error names no offset range. Readable records fetched before the bad
batch are returned first and the error is raised by the next poll; the consumer's position
stays at the first offset it could not read, and (kafka-python 3.0.12) polling that consumer
once more spins forever in `Fetcher.fetched_records`: it has to be closed.

`classify_poll_error` sorts a poll's exception into "unreadable" (this module's business),
"transient" (any other KafkaError: broker away, leader moving; retry at the same offset) or
"fatal" (a bug; re-raised). For "unreadable", `locate_unreadable` reads the raw bytes of one
Fetch at the position (streaming.raw_fetch) and walks the batches as the fetcher does (CRC
check first, aborted transactions and control batches skipped under read_committed), without
trusting anything it did not check:

- the first batch that fails is the culprit; its offsets come from its header (base offset ..
  base + last offset delta), clamped to start at the fetch offset. The header is covered by
  the batch CRC, so it is exact when the CRC holds (codec missing, bad compressed data).
- when the CRC fails the header may be corrupt too: its last offset is used only up to the
  offset before the next batch in the fetch (if that batch passes its own CRC) or, when the
  fetch ended with the visible log, up to the last stable offset. Without such a bound only
  the one offset at the position is flagged and the next round looks again, so a readable
  record of a following batch is never flagged.
- following batches that fail with an intact CRC (a topic written in a codec that is not
  installed) join the same range, up to `max_records` offsets; the first batch that reads
  ends it, and is left to the consumer.
- readable records found before the culprit (rare: the fetch raced a poll) are returned too.

Compacted topics: a batch header keeps base and last offset after compaction, and
`records_count` says how many records remain, but not which; every offset of base..last is
flagged, and the sentence says when some of them no longer exist.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any, Literal

import kafka.errors as Errors
from kafka.record.memory_records import MemoryRecords

from .raw_fetch import RawFetch
from .records import UNREADABLE_REASON, KafkaRecord

PollErrorKind = Literal["unreadable", "transient", "fatal"]
Extent = Literal["header", "bounded", "single"]

# compression type id -> (name, the kafka-python extra that installs it, its package)
CODECS: dict[int, tuple[str, str, str]] = {
    1: ("gzip", "", ""), 2: ("snappy", "snappy", "python-snappy"), 3: ("lz4", "lz4", "lz4"),
    4: ("zstd", "zstd", "zstandard"),
}
_DECODING_MODULES = ("kafka.record", "kafka.codec")
_CODEC_LIBRARIES = ("zlib", "gzip", "_compression", "lz4", "snappy", "zstandard", "_zstd")


def classify_poll_error(exc: BaseException) -> PollErrorKind:
    """What an exception from `KafkaConsumer.poll` means for the partition's position.

    "unreadable": the data at the position cannot be decoded by this client (unsupported
    codec, corrupt batch, the codec library failing on it); "transient": any other KafkaError
    (the broker is away, a leader moves); "fatal": anything else (a bug).

    Example:
        >>> classify_poll_error(Errors.UnsupportedCodecError("no zstd"))
        'unreadable'
        >>> classify_poll_error(Errors.KafkaConnectionError("connection reset"))
        'transient'
        >>> classify_poll_error(ValueError("not from Kafka"))
        'fatal'
    """
    if isinstance(exc, Errors.UnsupportedCodecError | Errors.CorruptRecordError):
        return "unreadable"
    if isinstance(exc, Errors.KafkaError):
        return "transient"
    if isinstance(exc, Exception) and not isinstance(exc, MemoryError) and _raised_decoding(exc):
        return "unreadable"
    return "fatal"


def _raised_decoding(exc: BaseException) -> bool:
    """Raised by a codec library, or on its way out of kafka-python's record decoding (the
    exception or one it was raised from, e.g. the fetcher's RuntimeError for a StopIteration)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen and len(seen) < 8:
        seen.add(id(cur))
        if type(cur).__module__.split(".")[0] in _CODEC_LIBRARIES:
            return True
        tb = cur.__traceback__
        while tb is not None:
            if str(tb.tb_frame.f_globals.get("__name__", "")).startswith(_DECODING_MODULES):
                return True
            tb = tb.tb_next
        cur = cur.__cause__ or cur.__context__
    return False


@dataclass(frozen=True, slots=True)
class BadRange:
    """Offsets first..last (inclusive) of one batch that cannot be read, and why. `extent`
    says where `last` comes from: "header" (the batch's own, checked), "bounded" (its header
    is corrupt; the offset before the next batch or the log's end), "single" (unknown: just
    the offset at the position, the next round looks again)."""

    first: int
    last: int
    sentence: str
    extent: Extent = "header"


@dataclass(frozen=True, slots=True)
class Located:
    """What to emit for the position: records in offset order (readable ones, then the
    unreadable offsets), and `end`, the offset to read next."""

    records: list[KafkaRecord]
    end: int
    bad: list[BadRange]


@dataclass(frozen=True, slots=True)
class _Unparsable:
    """A slice of the fetch that does not even parse as a batch header."""

    error: Exception


class _Walk:
    """The fetcher's batch loop over raw bytes (see the module doc), one batch at a time."""

    def __init__(self, raw: RawFetch, topic: str, partition: int, read_committed: bool,
                 check_crcs: bool) -> None:
        self.raw, self.topic, self.partition = raw, topic, partition
        self.read_committed, self.check_crcs = read_committed, check_crcs
        self.aborted = collections.deque(sorted(raw.aborted, key=lambda a: a[1]))
        self.aborted_pids: set[int] = set()
        self.items, leftover = _split(raw.records)
        self.truncated = leftover > 0 or len(raw.records) >= raw.max_bytes

    def read(self, batch: Any) -> list[KafkaRecord]:
        """The batch's readable records at or after the fetch offset ([] when skipped)."""
        if self.check_crcs and not batch.validate_crc():
            raise Errors.CorruptRecordError(f"record batch at offset {batch.base_offset} failed "
                                            "its CRC check")
        if batch.magic == 2:
            if self.read_committed and batch.has_producer_id():
                while self.aborted and self.aborted[0][1] <= batch.last_offset:
                    self.aborted_pids.add(self.aborted.popleft()[0])
                if batch.is_control_batch:
                    marker = next(batch)  # as the fetcher: an abort marker ends the abort
                    if marker and marker.abort:
                        self.aborted_pids.discard(batch.producer_id)
                elif batch.is_transactional and batch.producer_id in self.aborted_pids:
                    return []
            if batch.is_control_batch:
                return []
        out = []
        for r in batch:
            if self.check_crcs and not r.validate_crc():
                raise Errors.CorruptRecordError(f"record at offset {r.offset} failed its CRC check")
            if r.offset >= self.raw.offset:
                out.append(KafkaRecord(self.topic, self.partition, r.offset, r.key, r.value or b"",
                                       int(r.timestamp),
                                       tuple((k, v or b"") for k, v in (r.headers or ()))))
        return out

    def bad_range(self, i: int, lo_bound: int, crc_ok: bool) -> tuple[int, int, Extent]:
        """(first, last, extent) offsets to flag for the failing item i (see BadRange)."""
        item = self.items[i]
        if isinstance(item, _Unparsable):
            return lo_bound, lo_bound, "single"
        if item.magic >= 2:
            base, last = item.base_offset, item.last_offset
        else:  # legacy message set: the wrapper's offset is its last inner offset
            base, last = lo_bound, item.base_offset
        ceiling = None  # the highest offset this batch can hold, known without its header
        nxt = self.items[i + 1] if i + 1 < len(self.items) else None
        if nxt is not None and not isinstance(nxt, _Unparsable) and nxt.magic >= 2 \
                and _crc_ok(nxt):
            ceiling = nxt.base_offset - 1
        elif nxt is None and not self.truncated:
            ceiling = self.raw.stable_end - 1
        extent: Extent = "header"
        if crc_ok:
            hi = last if ceiling is None else min(last, ceiling)
        elif last < lo_bound or ceiling is None:
            hi, extent = lo_bound, "single"
        else:
            hi, extent = min(last, ceiling), ("header" if last <= ceiling else "bounded")
        if hi < lo_bound:
            return lo_bound, lo_bound, "single"
        return (base if lo_bound <= base <= hi else lo_bound), hi, extent

    def describe(self, item: Any, error: Exception, crc_ok: bool, first: int, last: int,
                 extent: Extent) -> str:
        where = (f"offsets {first}–{last}" if last > first else f"offset {first}")
        head = f"Kafka record batch at {where} of {self.topic}/{self.partition}"
        detail = f"{error.__class__.__name__}: {str(error)[:200]}"
        codec = None if isinstance(item, _Unparsable) else item.compression_type
        name, extra, package = CODECS.get(codec or 0, ("", "", ""))
        if isinstance(item, _Unparsable):
            what = f"does not parse as a record batch ({detail}): the log is corrupt"
        elif not crc_ok:
            what = "failed its CRC check: the batch is corrupt on the broker"
        elif isinstance(error, Errors.UnsupportedCodecError) and name:
            what = (f"is compressed with {name}, which this consumer cannot decompress: install "
                    f"kafka-python[{extra}] (package {package}) where the job runs and re-read "
                    "these offsets")
        elif isinstance(error, Errors.UnsupportedCodecError):
            what = (f"names compression type {codec}, which is no Kafka codec this client knows "
                    "(gzip, snappy, lz4, zstd): the batch is corrupt or from a newer Kafka")
        elif name and not isinstance(error, Errors.CorruptRecordError):
            what = (f"is compressed with {name} but does not decompress ({detail}); its CRC "
                    "holds, so it was written that way")
        else:
            what = f"does not parse ({detail}): the batch is malformed"
        tail = "; the partition moved past it"
        if extent == "bounded":
            tail = ("; its header is corrupt too, so the range ends where the next batch begins"
                    + tail)
        elif extent == "single":
            tail = ("; its header cannot be trusted either, so only this offset is skipped and "
                    "the next one is tried")
        elif crc_ok and item.magic >= 2 and 0 <= item.records_count < last - first + 1 \
                and first == item.base_offset:
            tail += (f" (its header lists {item.records_count} records over these "
                     f"{last - first + 1} offsets: compaction removed the others)")
        return f"{head} {what}{tail}."


def _split(data: bytes) -> tuple[list[Any], int]:
    """The batches in `data` (an _Unparsable ends the list), and the bytes of a trailing
    partial batch (a fetch cut at its byte limit)."""
    records = MemoryRecords(data)
    items: list[Any] = []
    used = 0
    while True:
        try:
            batch = records.next_batch()
        except MemoryError:
            raise
        except Exception as e:  # a slice too short or malformed to be a batch header
            items.append(_Unparsable(e))
            return items, 0
        if batch is None:
            return items, len(data) - used
        used += batch.size_in_bytes
        items.append(batch)


def _crc_ok(batch: Any) -> bool:
    try:
        return bool(batch.validate_crc())
    except MemoryError:
        raise
    except Exception:  # a header too broken to checksum
        return False


def _next_offset(batch: Any) -> int:
    return batch.next_offset if batch.magic >= 2 else batch.base_offset + 1


def locate_unreadable(raw: RawFetch, topic: str, partition: int, *, read_committed: bool,
                      check_crcs: bool = True, max_records: int = 500) -> Located | None:
    """The unreadable batch(es) at `raw.offset`, as records to emit (see the module doc).

    None when nothing in the fetch fails to read (the poll's error did not come back): the
    caller retries later as for a broker that is away.
    """
    walk = _Walk(raw, topic, partition, read_committed, check_crcs)
    readable: list[KafkaRecord] = []
    flagged: list[KafkaRecord] = []
    bad: list[BadRange] = []
    lo_bound = raw.offset  # the lowest offset no batch walked so far accounts for
    for i, item in enumerate(walk.items):
        crc_ok = not isinstance(item, _Unparsable) and _crc_ok(item)
        error: Exception | None = item.error if isinstance(item, _Unparsable) else None
        records: list[KafkaRecord] = []
        if error is None:
            try:
                records = walk.read(item)
            except MemoryError:
                raise
            except Exception as e:  # any failure to decode is this batch's
                error = e
        if error is None:
            if bad:
                break  # a readable batch after the bad ones: the consumer reads it
            room = max_records - len(readable)
            if len(records) > room:  # a full element of readable records: emit those first
                readable.extend(records[:room])
                return Located(readable, readable[-1].offset + 1, [])
            readable.extend(records)
            lo_bound = max(lo_bound, _next_offset(item))
            continue
        if bad and not (crc_ok and bad[-1].extent == "header"):
            break  # only failures with a checked header join a range
        first, last, extent = walk.bad_range(i, lo_bound, crc_ok)
        sentence = walk.describe(item, error, crc_ok, first, last, extent)
        bad.append(BadRange(first, last, sentence, extent))
        flagged.extend(KafkaRecord(topic, partition, o, None, b"", -1,
                                   unreadable=(UNREADABLE_REASON, sentence))
                       for o in range(first, last + 1))
        lo_bound = last + 1
        if extent != "header" or len(flagged) >= max_records:
            break
    if bad:
        return Located(readable + flagged, bad[-1].last + 1, bad)
    return None
