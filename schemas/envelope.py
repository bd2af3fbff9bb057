"""What the pipeline hands the store: results and dead letters with their provenance."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from .classification import Classification
from .dead_letter import DeadLetter
from .position import InputPosition


class _Provenance(BaseModel):
    """What results and dead letters both carry: replay link and redaction bookkeeping."""

    model_config = ConfigDict(frozen=True)

    replay_of: str | None = Field(
        default=None, description="Position (`ref`) of the dead letter this input replays.")
    pii_policy: str | None = Field(
        default=None, description="The redaction policy this record went through, e.g. "
        "'default@1', or 'off'; set by the redactor (privacy.redact).")
    pii_counts: dict[str, int] | None = Field(
        default=None, description="Entities the redactor changed in this record's stored "
        "fields, per type, e.g. {'EMAIL_ADDRESS': 1}; never the values.")


class ResultRecord(_Provenance):
    """A classification plus where its input came from."""

    model_config = ConfigDict(frozen=True)

    result: Classification
    position: InputPosition
    input_sha256: str
    kind: str | None = None
    title: str | None = None
    created_at: datetime | None = None
    text: str | None = Field(
        default=None, description="the post's text kept for people to review; stored "
        "redacted; None when the run keeps none")


class FailedRecord(_Provenance):
    """A dead letter plus the sha256 of its raw input and the time spent on it."""

    model_config = ConfigDict(frozen=True)

    dead_letter: DeadLetter
    input_sha256: str
    timings_ms: dict[str, float] = Field(default_factory=dict)


class PartitionMark(BaseModel):
    """A Kafka partition's new durable position (contiguous low-water mark)."""

    model_config = ConfigDict(frozen=True)

    consumer_group: str
    topic: str
    partition: int = Field(ge=0)
    next_offset: int = Field(ge=0)
    #: the owner epoch the writer claimed (store.offsets.claim_partitions); set, the write is
    #: refused (store.errors.FencedError) once another worker has claimed the partition since
    epoch: int | None = Field(default=None, ge=1)


class WriteBatch(BaseModel):
    """Everything one store transaction writes."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    results: list[ResultRecord] = Field(default_factory=list)
    failures: list[FailedRecord] = Field(default_factory=list)
    marks: list[PartitionMark] = Field(default_factory=list)

    def __len__(self) -> int:
        return len(self.results) + len(self.failures)
