"""Read-only queries over results, with the human label beside the model's."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, and_, exists, select

from .reviews import latest_reviews_query
from .tables import ClassificationRow, ReviewRow

#: the columns of the latest review of a post (None when it has none): its human label and
#: who gave it. A later model version that reclassifies the post changes `label`, never these.
REVIEW_COLUMNS = ("human_label", "reviewer")
RESULT_COLUMNS = (
    "source", "id", "label", "score", "needs_review", "model_name", "model_version",
    "kind", "n_chunks", "processed_at", *REVIEW_COLUMNS,
)


def query_results(
    engine: Engine,
    *,
    label: str | None = None,
    since: datetime | None = None,
    min_score: float | None = None,
    needs_review: bool | None = None,
    reviewed: bool | None = None,
    limit: int | None = 100,
    columns: Sequence[str] = RESULT_COLUMNS,
) -> list[dict[str, Any]]:
    """Results filtered as asked, newest first. `reviewed`: only posts with (True) or
    without (False) a review. The reviews table is read only when a column of
    `REVIEW_COLUMNS` or the `reviewed` filter asks for it."""
    c = ClassificationRow
    latest = latest_reviews_query()
    review_cols = {"human_label": latest.c.label.label("human_label"),
                   "reviewer": latest.c.reviewer.label("reviewer")}
    cols = [review_cols[name] if name in review_cols else getattr(c, name) for name in columns]
    stmt = select(*cols).select_from(c)
    if any(name in review_cols for name in columns):
        stmt = stmt.join(latest, and_(latest.c.source == c.source, latest.c.doc_id == c.id),
                         isouter=True)
    stmt = stmt.order_by(c.processed_at.desc(), c.source, c.id)
    if label is not None:
        stmt = stmt.where(c.label == label)
    if since is not None:
        stmt = stmt.where(c.processed_at >= since)
    if min_score is not None:
        stmt = stmt.where(c.score >= min_score)
    if needs_review is not None:
        stmt = stmt.where(c.needs_review == needs_review)
    if reviewed is not None:
        has = exists().where(ReviewRow.source == c.source, ReviewRow.doc_id == c.id)
        stmt = stmt.where(has if reviewed else ~has)
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(stmt)]
