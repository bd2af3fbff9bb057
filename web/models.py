"""The API's response contracts (they make its OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from docstream.schemas.review import Review


class ResultItem(BaseModel):
    """One result with its human label, if reviewed. `agrees`: the latest review's label
    equals the model's current label (None when not reviewed)."""

    model_config = ConfigDict(protected_namespaces=())

    source: str
    id: str
    label: str
    score: float
    needs_review: bool
    model_name: str
    model_version: str
    kind: str | None
    title: str | None
    created_at: datetime | None
    processed_at: datetime
    run_id: str
    n_chunks: int
    human_label: str | None
    reviewer: str | None
    reviewed_at: datetime | None
    agrees: bool | None


class ResultPage(BaseModel):
    items: list[ResultItem]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page")


class AuditEntry(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    seq: int
    run_id: str
    position: str
    outcome: str
    stage: str | None
    model_version: str | None
    recorded_at: datetime
    replay_of: str | None
    pii_policy: str | None
    pii_counts: dict[str, int] | None
    chain: str | None
    hash: str | None


class ResultDetail(ResultItem):
    """One result in full. `text` is the stored, redacted text (null when the run kept
    none); `scores` holds every class, best first."""

    scores: dict[str, float]
    text: str | None
    entities: list[dict[str, Any]] | None
    timings_ms: dict[str, float]
    n_tokens: int
    input_sha256: str
    position: str
    weights_sha256: str
    reviews: list[Review]
    audit: list[AuditEntry]
    explanation: dict[str, Any] | None


class DeadLetterItem(BaseModel):
    """A dead letter without its payload (the view dead_letters_public)."""

    position: str
    input_kind: str
    file: str | None
    line: int | None
    topic: str | None
    partition: int | None
    offset: int | None
    doc_id: str | None
    source: str | None
    stage: str
    reason: str
    error: str
    count: int
    first_seen: datetime
    last_seen: datetime
    run_id: str
    resolved_at: datetime | None
    resolved_by: str | None


class DeadLetterPage(BaseModel):
    items: list[DeadLetterItem]
    next_cursor: str | None


class RunItem(BaseModel):
    run_id: str
    source: str
    model: str
    status: str
    started_at: datetime
    finished_at: datetime | None
    inputs: int | None
    classified: int | None
    dead_letters: int | None
    seconds: float | None
    docs_per_s: float | None


class ModelItem(BaseModel):
    name: str
    version: str
    stage: str
    weights_sha256: str
    metrics: dict[str, Any] | None
    registered_at: datetime
    promoted_at: datetime | None


class BucketCounts(BaseModel):
    bucket: str = Field(description="start of the UTC hour or day, ISO 8601")
    counts: dict[str, int]


class DeadLetterReason(BaseModel):
    reason: str
    count: int
    open: int


class Stats(BaseModel):
    bucket: str
    since: datetime | None
    until: datetime | None
    generated_at: datetime
    labels: list[str]
    per_bucket: list[BucketCounts]
    results: int
    needs_review: int
    needs_review_share: float
    reviewed: int
    reviewed_share: float
    reviewed_flagged: int
    reviewed_of_flagged_share: float
    relabelled: int
    dead_letters: list[DeadLetterReason]
    runs: list[RunItem]


class Health(BaseModel):
    store: str = Field(description="the read URL, password masked")
    schema_revision: str | None
    reviews_enabled: bool
