"""Typed Kafka records and the poll batches the source emits (one Beam element each)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class KafkaRecord:
    """One message as it arrived: value bytes untouched (bad bytes travel on as data)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class KafkaBatch:
    """The records of one poll of one partition and the offsets [start, end) they cover.

    Batches of a partition tile its offsets without gaps: a batch starts where the previous
    one ended, and `end` is the consumer's position after the poll, so offsets Kafka skipped
    (transaction markers, compacted records) belong to a batch too. A batch may therefore
    have no records and still advance the partition (start < end).

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
        return max((r.timestamp_ms for r in self.records), default=None)
