"""Read-only queries over results."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select

from .tables import ClassificationRow

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

