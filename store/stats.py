"""Aggregates for the overview: results per label per hour or day, the review shares, dead
letters by reason and throughput per run. Read-only; works on both stores."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Engine, func, literal_column, select
from sqlalchemy.sql import ColumnElement

from .browse import db_time, list_runs
from .tables import ClassificationRow, DeadLettersPublic, ReviewRow

Bucket = Literal["hour", "day"]


def _bucket(engine: Engine, column: Any, bucket: Bucket) -> ColumnElement[Any]:
    """The start of the UTC hour/day of `column`, as text 'YYYY-MM-DDTHH:00:00Z'."""
    if engine.dialect.name == "sqlite":
        fmt = "%Y-%m-%dT%H:00:00Z" if bucket == "hour" else "%Y-%m-%dT00:00:00Z"
        return func.strftime(fmt, column)
    fmt = 'YYYY-MM-DD"T"HH24:00:00"Z"' if bucket == "hour" else 'YYYY-MM-DD"T"00:00:00"Z"'
    # PostgreSQL sessions of this store run with timezone=UTC (store/engine.py)
    return func.to_char(func.date_trunc(literal_column(f"'{bucket}'"), column), fmt)


def _share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def overview(engine: Engine, *, bucket: Bucket = "hour", since: datetime | None = None,
             until: datetime | None = None, runs: int = 20) -> dict[str, Any]:
    """Everything the overview page charts, for results processed in [since, until)."""
    c = ClassificationRow
    conds = []
    if since is not None:
        conds.append(c.processed_at >= db_time(engine, since))
    if until is not None:
        conds.append(c.processed_at < db_time(engine, until))
    b = _bucket(engine, c.processed_at, bucket).label("bucket")
    reviewed_post = select(ReviewRow.source, ReviewRow.doc_id).distinct().subquery()
    with engine.connect() as conn:
        per_bucket = conn.execute(select(b, c.label, func.count()).where(*conds)
                                  .group_by(b, c.label).order_by(b, c.label)).all()
        total, flagged = conn.execute(select(
            func.count(), func.count().filter(c.needs_review.is_(True))).where(*conds)).one()
        reviewed, reviewed_flagged, relabelled = _reviewed(conn, c, reviewed_post, conds)
        dead = conn.execute(select(DeadLettersPublic.c.reason, func.count(),
                                   func.count().filter(DeadLettersPublic.c.resolved_at.is_(None)))
                            .group_by(DeadLettersPublic.c.reason)
                            .order_by(DeadLettersPublic.c.reason)).all()
    labels = sorted({row[1] for row in per_bucket})
    series: dict[str, dict[str, int]] = {}
    for at, label, n in per_bucket:
        series.setdefault(at, {})[label] = int(n)
    return {
        "bucket": bucket,
        "since": since, "until": until, "generated_at": datetime.now(UTC),
        "labels": labels,
        "per_bucket": [{"bucket": at, "counts": counts} for at, counts in series.items()],
        "results": int(total),
        "needs_review": int(flagged),
        "needs_review_share": _share(int(flagged), int(total)),
        "reviewed": int(reviewed),
        "reviewed_share": _share(int(reviewed), int(total)),
        "reviewed_flagged": int(reviewed_flagged),
        "reviewed_of_flagged_share": _share(int(reviewed_flagged), int(flagged)),
        "relabelled": int(relabelled),
        "dead_letters": [{"reason": r, "count": int(n), "open": int(o)} for r, n, o in dead],
        "runs": list_runs(engine, limit=runs),
    }


def _reviewed(conn: Any, c: Any, reviewed_post: Any, conds: list[Any]) -> tuple[int, int, int]:
    """Posts with a review; of them, those flagged; posts a reviewer relabelled. All of
    them among the results of the window (`conds`), like the other counts."""
    joined = (select(func.count(), func.count().filter(c.needs_review.is_(True)))
              .select_from(c).join(reviewed_post, (reviewed_post.c.source == c.source)
                                   & (reviewed_post.c.doc_id == c.id)).where(*conds))
    reviewed, reviewed_flagged = conn.execute(joined).one()
    relabelled_post = (select(ReviewRow.source, ReviewRow.doc_id)
                       .where(ReviewRow.action == "relabel").distinct().subquery())
    relabelled = conn.execute(
        select(func.count()).select_from(c).join(
            relabelled_post, (relabelled_post.c.source == c.source)
            & (relabelled_post.c.doc_id == c.id)).where(*conds)).scalar_one()
    return int(reviewed), int(reviewed_flagged), int(relabelled)
