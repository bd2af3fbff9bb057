"""Reading dead letters back for `docstream replay`: which ones are open, where they came from."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from pydantic import BaseModel, ConfigDict
from sqlalchemy import Engine, select

from docstream.schemas.position import InputPosition

from .tables import AuditRow, DeadLetterRow, RunRow


class OpenDeadLetter(BaseModel):
    """An unresolved dead letter: its input position and the run that wrote it."""

    model_config = ConfigDict(frozen=True)

    position: InputPosition
    reason: str
    stage: str
    run_id: str
    run_source: str | None = None  # the run's --source (a kafka:// URL names the brokers)
    input_sha256: str | None = None  # of the original bytes, from the audit log
    last_seen: datetime

    @property
    def ref(self) -> str:
        return self.position.ref


def open_dead_letters(engine: Engine, *, reasons: Sequence[str] = (),
                      since: datetime | None = None,
                      limit: int | None = None) -> list[OpenDeadLetter]:
    """Unresolved dead letters, oldest first, optionally only `reasons` / seen since `since`."""
    d = DeadLetterRow
    stmt = (select(d.position, d.input_kind, d.file, d.line, d.topic, d.partition, d.offset,
                   d.reason, d.stage, d.run_id, d.last_seen, RunRow.source)
            .outerjoin(RunRow, RunRow.run_id == d.run_id)
            .where(d.resolved_at.is_(None))
            .order_by(d.last_seen, d.position))
    if reasons:
        stmt = stmt.where(d.reason.in_(list(reasons)))
    if since is not None:
        stmt = stmt.where(d.last_seen >= since)
    if limit is not None:
        stmt = stmt.limit(limit)
    with engine.connect() as conn:
        found = conn.execute(stmt).all()
        shas = _input_shas(conn, [(r.run_id, r.position) for r in found])
    return [
        OpenDeadLetter(
            position=InputPosition(kind=r.input_kind, file=r.file, line=r.line, topic=r.topic,
                                   partition=r.partition, offset=r.offset),
            reason=r.reason, stage=r.stage, run_id=r.run_id, run_source=r.source,
            input_sha256=shas.get((r.run_id, r.position)), last_seen=r.last_seen,
        )
        for r in found
    ]


def _input_shas(conn: object, keys: list[tuple[str, str]]) -> dict[tuple[str, str], str]:
    out: dict[tuple[str, str], str] = {}
    for i in range(0, len(keys), 500):
        chunk = keys[i:i + 500]
        positions = list({p for _, p in chunk})
        rows = conn.execute(  # type: ignore[attr-defined]
            select(AuditRow.run_id, AuditRow.position, AuditRow.input_sha256)
            .where(AuditRow.position.in_(positions))).all()
        wanted = set(chunk)
        out.update({(r.run_id, r.position): r.input_sha256 for r in rows
                    if (r.run_id, r.position) in wanted})
    return out
