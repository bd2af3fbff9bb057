"""Read-only queries over results."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func, select

from .tables import ClassificationRow, DeadLetterRow

RESULT_COLUMNS = (
    "source", "id", "label", "score", "needs_review", "model_name", "model_version",
    "kind", "n_chunks", "processed_at",
)


def query_results(
    engine: Engine,
    *,
    label: str | None = None,
    since: datetime | None = None,
    min_score: float | None = None,
    needs_review: bool | None = None,
    limit: int | None = 100,
    columns: Sequence[str] = RESULT_COLUMNS,
) -> list[dict[str, Any]]:
    """Results filtered as asked, newest first."""
    cols = [getattr(ClassificationRow, c) for c in columns]
    stmt = select(*cols).order_by(ClassificationRow.processed_at.desc(),
                                  ClassificationRow.source, ClassificationRow.id)
    if label is not None:
        stmt = stmt.where(ClassificationRow.label == label)
    if since is not None:
        stmt = stmt.where(ClassificationRow.processed_at >= since)
    if min_score is not None:
        stmt = stmt.where(ClassificationRow.score >= min_score)
    if needs_review is not None:
        stmt = stmt.where(ClassificationRow.needs_review == needs_review)
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]


def label_counts(engine: Engine, run_id: str | None = None) -> dict[str, int]:
    stmt = select(ClassificationRow.label, func.count()).group_by(ClassificationRow.label)
    if run_id:
        stmt = stmt.where(ClassificationRow.run_id == run_id)
    with engine.connect() as conn:
        return {label: int(n) for label, n in conn.execute(stmt)}


def dead_letter_counts(engine: Engine, run_id: str | None = None) -> dict[str, int]:
    stmt = select(DeadLetterRow.reason, func.count()).group_by(DeadLetterRow.reason)
    if run_id:
        stmt = stmt.where(DeadLetterRow.run_id == run_id)
    with engine.connect() as conn:
        return {reason: int(n) for reason, n in conn.execute(stmt)}
