"""Typed Kafka records and the poll batches the source emits (one Beam element each)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

UNREADABLE_REASON = "unreadable_record"  # the dead-letter reason of an unreadable offset

#: Bytes of a record's value per model token, for sizing polls by work (streaming.source).
#: Measured with the bundled model's wordpiece tokenizer (128-token windows, [CLS]/[SEP]
#: included): an AG News post in its JSON envelope is ~341 bytes for ~56 tokens, a 400-word
#: article ~2,730 bytes for ~490; the envelope makes up for English's ~4.5 characters per
#: wordpiece on short posts. An estimate within about 10%, not a count.
BYTES_PER_TOKEN = 6


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """One message as it arrived: value bytes untouched (bad bytes travel on as data).

    `unreadable` is (reason code, sentence) when the client could not read the record batch
    holding this offset at all (a codec that is not installed, a failed CRC check, ...; see
    streaming.unreadable): key and value are then empty, `timestamp_ms` is -1 when unknown,
    and the offset is to become a dead letter that says why.

    Example:
        >>> KafkaRecord("posts", 0, 7, None, b"", -1, unreadable=(UNREADABLE_REASON, "...")).value
        b''
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...] = ()
    unreadable: tuple[str, str] | None = None


@dataclass(frozen=True, slots=True)
class KafkaBatch:
    """The records of one poll of one partition and the offsets [start, end) they cover.

    Batches of a partition tile its offsets without gaps: a batch starts where the previous
    one ended, and `end` is the consumer's position after the poll, so offsets Kafka skipped
    (transaction markers, compacted records) belong to a batch too. A batch may therefore
    have no records and still advance the partition (start < end). Records flagged
    `unreadable` cover the offsets of a batch the client could not read; they count as
    records of the span like any other.

    Example:
        >>> b = KafkaBatch("posts", 0, 10, 12, [KafkaRecord("posts", 0, 10, b"k", b"{}", 0)])
        >>> len(b), b.start, b.end
        (1, 10, 12)
    """

    topic: str
    partition: int
    start: int
    end: int
    records: list[KafkaRecord] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0 <= self.start <= self.end:
            raise ValueError(f"bad offset range [{self.start}, {self.end}) for "
                             f"{self.topic}/{self.partition}: need 0 <= start <= end")

    def __len__(self) -> int:
        return len(self.records)

    @property
    def max_timestamp_ms(self) -> int | None:
        """The latest timestamp of a readable record (an unreadable batch's header may lie)."""
        return max((r.timestamp_ms for r in self.records if r.unreadable is None),
                   default=None)

    @property
    def unreadable_count(self) -> int:
        return sum(1 for r in self.records if r.unreadable is not None)


def estimated_tokens(value: bytes) -> int:
    """Model tokens a record's value will probably cost (at least 1).

    Example:
        >>> estimated_tokens(b"x" * 600), estimated_tokens(b"")
        (101, 1)
    """
    return len(value) // BYTES_PER_TOKEN + 1


def fit_budget(records: Sequence[KafkaRecord], budget: int | None) -> int:
    """How many of `records`, from the first, fit `budget` estimated model tokens; always at
    least one (a record over the budget goes alone), all of them without a budget.

    Example:
        >>> rs = [KafkaRecord("t", 0, i, None, b"x" * 600, 0) for i in range(5)]  # 101 each
        >>> fit_budget(rs, 250), fit_budget(rs, 50), fit_budget(rs, None), fit_budget([], 9)
        (2, 1, 5, 0)
    """
    if budget is None:
        return len(records)
    total = 0
    for i, r in enumerate(records):
        total += estimated_tokens(r.value)
        if total > budget and i > 0:
            return i
    return len(records)

