"""Run bookkeeping: one `runs` row per job run (started, finished, summary), and the counts
of what a run wrote, for the batch and the streaming job alike."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, func, select, update

from .tables import AuditRow, ClassificationRow, DeadLetterRow, RunRow


@dataclass(frozen=True)
class RunCounts:
    """What a run wrote: inputs audited, results by label, dead letters by reason."""

    inputs: int
    classified: int
    labels: dict[str, int]
    dead_letters: int
    dead_by_reason: dict[str, int]
    needs_review: int


def start_run(engine: Engine, run_id: str, source: str, model: str) -> None:
    """Mark `run_id` running; a run id seen before (a restart, a replay) is started again."""
    now = datetime.now(UTC)
    with engine.begin() as conn:
        seen = conn.execute(select(RunRow.run_id).where(RunRow.run_id == run_id)).first()
        if seen:
            conn.execute(update(RunRow).where(RunRow.run_id == run_id).values(
                started_at=now, finished_at=None, source=source, model=model, status="running"))
        else:
            conn.execute(RunRow.__table__.insert().values(
                run_id=run_id, started_at=now, source=source, model=model, status="running"))


def finish_run(engine: Engine, run_id: str, status: str, summary: Mapping[str, Any]) -> None:
    """Stamp the run's end, final status and summary (a JSON-able mapping)."""
    with engine.begin() as conn:
        conn.execute(update(RunRow).where(RunRow.run_id == run_id).values(
            finished_at=datetime.now(UTC), status=status, summary=dict(summary)))


def count_run(engine: Engine, run_id: str, since: datetime | None = None) -> RunCounts:
    """Counts of the rows `run_id` wrote; with `since`, only rows stamped at or after it
    (one session of a stream whose run id outlives restarts)."""
    audit = [AuditRow.run_id == run_id]
    results = [ClassificationRow.run_id == run_id]
    dead_rows = [DeadLetterRow.run_id == run_id]
    if since is not None:
        audit.append(AuditRow.recorded_at >= since)
        results.append(ClassificationRow.processed_at >= since)
        dead_rows.append(DeadLetterRow.last_seen >= since)
    with engine.connect() as conn:
        inputs = conn.execute(select(func.count()).select_from(AuditRow).where(*audit)
                              ).scalar_one()
        labels = dict(conn.execute(
            select(ClassificationRow.label, func.count()).where(*results)
            .group_by(ClassificationRow.label)).all())
        review = conn.execute(select(func.count()).select_from(ClassificationRow).where(
            *results, ClassificationRow.needs_review.is_(True))).scalar_one()
        dead = dict(conn.execute(
            select(DeadLetterRow.reason, func.count()).where(*dead_rows)
            .group_by(DeadLetterRow.reason)).all())
    return RunCounts(
        inputs=int(inputs), classified=sum(int(v) for v in labels.values()),
        labels={k: int(v) for k, v in sorted(labels.items())},
        dead_letters=sum(int(v) for v in dead.values()),
        dead_by_reason={k: int(v) for k, v in sorted(dead.items())},
        needs_review=int(review),
    )
