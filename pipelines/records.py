"""Records the pipeline stages pass each other. Elements are lists of these (batches),
because Beam costs ~200 µs per element and a GPU consumes tens of thousands of posts a
second; hot-path records are slotted dataclasses, boundaries stay pydantic."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field

import apache_beam as beam
from apache_beam.coders import coder_impl

from docstream.preprocess.preprocessor import Prepared
from docstream.schemas.envelope import FailedRecord, ResultRecord
from docstream.schemas.position import InputPosition
from docstream.schemas.post import Post


@dataclass(frozen=True, slots=True)
class RawInput:
    """Bytes as they arrived, and where from.

    `unreadable` is set (reason code, sentence) when the source could not read the input at
    this position at all (e.g. a Kafka record batch in an unknown codec or failing its CRC):
    parsing turns it into a dead letter without looking at `payload`.
    `replay_of` is the position of the dead letter this input replays (`docstream replay`):
    once it is classified, that dead letter is marked resolved.
    """

    position: InputPosition
    payload: bytes
    key: bytes | None = None
    timestamp_ms: int | None = None
    unreadable: tuple[str, str] | None = None
    replay_of: str | None = None


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


# ------------------------------------------------------------------------------- coders


def approx_bytes(element: object) -> int:
    """A cheap size estimate for Beam's element-size sampling (no encoding)."""
    batch = getattr(element, "batch", None)  # pipelines.handler.BatchPredictions
    if isinstance(batch, DocBatch):
        return approx_bytes(batch) + 300 * len(batch.items)
    if isinstance(element, RawBatch):
        return sum(len(r.payload) + 64 for r in element.inputs)
    if isinstance(element, ParsedBatch):
        return sum(2 * len(i.raw.payload) + 128 for i in element.items) + 512 * len(
            element.failures)
    if isinstance(element, DocBatch):
        return sum(2 * len(i.parsed.raw.payload) + 8 * i.n_model_tokens + 128
                   for i in element.items) + 512 * len(element.failures)
    if isinstance(element, Outcome):
        return 600 * len(element)
    return len(pickle.dumps(element, pickle.HIGHEST_PROTOCOL))


class BatchCoder(beam.coders.PickleCoder):
    """Pickle, as Beam would use for these types anyway, with a cheap size estimate.

    Beam samples element sizes for its byte counters by encoding the element; a batch of 512
    posts takes milliseconds to pickle, which made the size sampling a visible share of a
    no-op run. The estimate here costs microseconds.
    """

    def _create_impl(self) -> coder_impl.CoderImpl:
        return coder_impl.CallbackCoderImpl(
            lambda x: pickle.dumps(x, pickle.HIGHEST_PROTOCOL), pickle.loads,
            size_estimator=approx_bytes)

    def is_deterministic(self) -> bool:
        return False

    def to_type_hint(self) -> type:
        return object


def register_batch_coder(element_type: type) -> None:
    beam.coders.registry.register_coder(element_type, BatchCoder)


for _t in (RawBatch, ParsedBatch, DocBatch, Outcome):
    register_batch_coder(_t)
