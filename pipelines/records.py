"""Records the pipeline stages pass each other. Elements are lists of these (batches),
because Beam costs ~200 µs per element and a GPU consumes tens of thousands of posts a
second; hot-path records are slotted dataclasses, boundaries stay pydantic."""

from __future__ import annotations

from dataclasses import dataclass, field

from preprocess.preprocessor import Prepared
from schemas.envelope import FailedRecord, ResultRecord
from schemas.position import InputPosition
from schemas.post import Post


@dataclass(frozen=True, slots=True)
class RawInput:
    """Bytes as they arrived, and where from."""

    position: InputPosition
    payload: bytes
    key: bytes | None = None
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class ParsedItem:
    raw: RawInput
    post: Post
    sha256: str
    parse_ms: float


@dataclass(frozen=True, slots=True)
class PreparedItem:
    parsed: ParsedItem
    prepared: Prepared

    @property
    def n_model_tokens(self) -> int:
        return sum(len(c) for c in self.prepared.chunks)


@dataclass(frozen=True, slots=True)
class Span:
    """The offsets [start, end) of one Kafka partition that a batch covers.

    Spans of a partition tile its offsets without gaps: a batch's span starts where the
    previous one ended, even when Kafka skipped offsets (transaction markers, compaction).
    When every record of a span has a result or a dead letter, the span is done; the
    partition's durable position advances over contiguous done spans (pipelines.offsets).
    """

    topic: str
    partition: int
    start: int
    end: int


@dataclass(slots=True)
class RawBatch:
    """One Beam element: a batch of raw inputs (a file's lines or a Kafka poll)."""

    inputs: list[RawInput]
    span: Span | None = None


@dataclass(slots=True)
class ParsedBatch:
    items: list[ParsedItem]
    failures: list[FailedRecord]
    span: Span | None = None


@dataclass(slots=True)
class DocBatch:
    """Prepared posts on their way to the model; earlier dead letters ride along."""

    items: list[PreparedItem]
    failures: list[FailedRecord]
    span: Span | None = None

    @property
    def n_model_tokens(self) -> int:
        return sum(item.n_model_tokens for item in self.items)


@dataclass(slots=True)
class Outcome:
    """What one input batch turned into: results and dead letters, one per input."""

    results: list[ResultRecord] = field(default_factory=list)
    failures: list[FailedRecord] = field(default_factory=list)
    span: Span | None = None

    def __len__(self) -> int:
        return len(self.results) + len(self.failures)
