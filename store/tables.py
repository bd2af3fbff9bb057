"""Table definitions (SQLAlchemy 2.0 declarative). Schema changes go through Alembic only."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ClassificationRow(Base):
    """One row per post, keyed by (source, id); a re-run upserts it."""

    __tablename__ = "classifications"

    source: Mapped[str] = mapped_column(String(256), primary_key=True)
    id: Mapped[str] = mapped_column(String(256), primary_key=True)
    label: Mapped[str] = mapped_column(String(128))
    score: Mapped[float] = mapped_column(Float)
    scores: Mapped[dict[str, float]] = mapped_column(JSON)
    needs_review: Mapped[bool] = mapped_column(Boolean, default=False)
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    weights_sha256: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str | None] = mapped_column(String(16), nullable=True)
    title: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    n_chunks: Mapped[int] = mapped_column(Integer, default=1)
    n_tokens: Mapped[int] = mapped_column(Integer, default=0)
    entities: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    #: the redacted text kept for review (needs_review posts; all with --store-text all)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)
    timings_ms: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    input_sha256: Mapped[str] = mapped_column(String(64))
    position: Mapped[str] = mapped_column(String(1024))
    run_id: Mapped[str] = mapped_column(String(64))
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        Index("ix_classifications_label", "label"),
        Index("ix_classifications_processed_at", "processed_at"),
    )


class DeadLetterRow(Base):
    """One row per input position; a replay of the same position bumps `count`.

    Open while `resolved_at` is NULL; a later result at its position (or an input that
    replays it, `replay_of`) resolves it; dead-lettered again, it is open again."""

    __tablename__ = "dead_letters"

    position: Mapped[str] = mapped_column(String(1024), primary_key=True)
    input_kind: Mapped[str] = mapped_column(String(16))
    file: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    line: Mapped[int | None] = mapped_column(Integer, nullable=True)
    topic: Mapped[str | None] = mapped_column(String(256), nullable=True)
    partition: Mapped[int | None] = mapped_column(Integer, nullable=True)
    offset: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    doc_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    source: Mapped[str | None] = mapped_column(String(256), nullable=True)
    stage: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str] = mapped_column(String(64))
    error: Mapped[str] = mapped_column(Text)
    count: Mapped[int] = mapped_column(Integer, default=1)
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    run_id: Mapped[str] = mapped_column(String(64))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (Index("ix_dead_letters_reason", "reason"),)


class ReviewerRow(Base):
    """A person allowed to write reviews; only the sha256 of their token is stored."""

    __tablename__ = "reviewers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    __table_args__ = (UniqueConstraint("token_sha256", name="uq_reviewers_token"),)


class ReviewRow(Base):
    """Append-only: one human decision on one post. The latest row of a post is its human
    label; the model's label in `classifications` is never changed by a review."""

    __tablename__ = "reviews"

    review_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    source: Mapped[str] = mapped_column(String(256))
    doc_id: Mapped[str] = mapped_column(String(256))
    action: Mapped[str] = mapped_column(String(16))
    label: Mapped[str] = mapped_column(String(128))
    previous_label: Mapped[str] = mapped_column(String(128))
    previous_score: Mapped[float] = mapped_column(Float)
    model_name: Mapped[str] = mapped_column(String(128))
    model_version: Mapped[str] = mapped_column(String(64))
    reviewer: Mapped[str] = mapped_column(String(64))
    reviewed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    __table_args__ = (
        CheckConstraint("action IN ('accept', 'relabel')", name="ck_reviews_action"),
        Index("ix_reviews_doc", "source", "doc_id", "reviewed_at"),
        Index("ix_reviews_reviewed_at", "reviewed_at"),
    )


#: the columns of the view dead_letters_public (migration 0005): dead_letters without the raw
#: input (payload, key), for the reader role
DEAD_LETTERS_PUBLIC_COLUMNS = (
    "position", "input_kind", "file", "line", "topic", "partition", "offset", "doc_id",
    "source", "stage", "reason", "error", "count", "first_seen", "last_seen", "run_id",
    "resolved_at", "resolved_by",
)
DeadLettersPublic = Table(
    "dead_letters_public", MetaData(),
    *(Column(c, DeadLetterRow.__table__.c[c].type, key=c) for c in DEAD_LETTERS_PUBLIC_COLUMNS),
)


class ExplanationRow(Base):
    """Token attributions of one result (per model version), mapped into the stored text."""

    __tablename__ = "explanations"

    source: Mapped[str] = mapped_column(String(256), primary_key=True)
    doc_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    model_version: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_name: Mapped[str] = mapped_column(String(128))
    target: Mapped[str] = mapped_column(String(128))
    target_prob: Mapped[float] = mapped_column(Float)
    method: Mapped[str] = mapped_column(String(64))
    settings: Mapped[dict[str, Any]] = mapped_column(JSON)
    delta: Mapped[float] = mapped_column(Float)
    #: [{"text", "start", "end", "score", "raw"}] over the stored text (`text_field`)
    words: Mapped[list[Any]] = mapped_column(JSON)
    #: [{"start", "end", "weight"}]: the model windows and the aggregator's weight of each
    windows: Mapped[list[Any]] = mapped_column(JSON)
    text_field: Mapped[str] = mapped_column(String(16))
    text_sha256: Mapped[str] = mapped_column(String(64))
    pii_policy: Mapped[str | None] = mapped_column(String(64), nullable=True)
    seconds: Mapped[float] = mapped_column(Float)
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    computed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditRow(Base):
    """Append-only: one record per processed input per run, written with its result."""

    __tablename__ = "audit_log"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                     primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(64))
    position: Mapped[str] = mapped_column(String(1024))
    doc_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    source: Mapped[str | None] = mapped_column(String(256), nullable=True)
    input_sha256: Mapped[str] = mapped_column(String(64))
    model_version: Mapped[str | None] = mapped_column(String(200), nullable=True)
    outcome: Mapped[str] = mapped_column(String(16))
    stage: Mapped[str | None] = mapped_column(String(32), nullable=True)
    timings_ms: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    recorded_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    replay_of: Mapped[str | None] = mapped_column(String(1024), nullable=True)
    pii_policy: Mapped[str | None] = mapped_column(String(64), nullable=True)
    pii_counts: Mapped[dict[str, int] | None] = mapped_column(JSON, nullable=True)
    chain: Mapped[str | None] = mapped_column(String(128), nullable=True)
    prev_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    hash: Mapped[str | None] = mapped_column(String(64), nullable=True)

    __table_args__ = (
        UniqueConstraint("run_id", "position", name="uq_audit_run_position"),
        Index("ix_audit_doc", "source", "doc_id"),
        Index("ix_audit_chain", "chain", "seq"),
    )


class AuditHeadRow(Base):
    """The last hash of each audit chain (one chain per writer) and its length."""

    __tablename__ = "audit_heads"

    chain: Mapped[str] = mapped_column(String(128), primary_key=True)
    head_hash: Mapped[str] = mapped_column(String(64))
    length: Mapped[int] = mapped_column(BigInteger)
    keyed: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class StreamOffsetRow(Base):
    """Durable position of a Kafka partition: every offset below `next_offset` is stored.

    `epoch` rises by one each time a worker starts reading the partition (`owner` names it):
    a write that still carries an older epoch is fenced (store.offsets, store.writer)."""

    __tablename__ = "stream_offsets"

    consumer_group: Mapped[str] = mapped_column(String(256), primary_key=True)
    topic: Mapped[str] = mapped_column(String(256), primary_key=True)
    partition: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_offset: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    epoch: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    owner: Mapped[str | None] = mapped_column(String(128), nullable=True)


class RunRow(Base):
    """One row per job run, with its final summary."""

    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    source: Mapped[str] = mapped_column(Text)
    model: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class ModelVersionRow(Base):
    """The model registry: one row per registered artifact version."""

    __tablename__ = "model_versions"

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    path: Mapped[str] = mapped_column(Text)
    weights_sha256: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str] = mapped_column(String(16), default="none")
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    registered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    promoted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
