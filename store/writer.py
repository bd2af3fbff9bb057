"""The single batched writer: one transaction per batch, bulk upserts, redaction first."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from docstream.privacy.redact import Redactor, default_redactor
from docstream.schemas.envelope import FailedRecord, ResultRecord, WriteBatch

from .errors import StoreWriteError
from .tables import AuditRow, ClassificationRow, DeadLetterRow, StreamOffsetRow

log = logging.getLogger(__name__)

_CLASSIFICATION_UPDATE = (
    "label", "score", "scores", "needs_review", "model_name", "model_version", "weights_sha256",
    "kind", "title", "created_at", "n_chunks", "n_tokens", "entities", "timings_ms",
    "input_sha256", "position", "run_id", "processed_at",
)


def _result_row(rec: ResultRecord, run_id: str, now: datetime) -> dict[str, Any]:
    r = rec.result
    return {
        "source": r.source,
        "id": r.doc_id,
        "label": r.label,
        "score": r.score,
        "scores": r.scores,
        "needs_review": r.needs_review,
        "model_name": r.model.name,
        "model_version": r.model.version,
        "weights_sha256": r.model.weights_sha256,
        "kind": rec.kind,
        "title": rec.title,
        "created_at": rec.created_at,
        "n_chunks": r.n_chunks,
        "n_tokens": r.n_tokens,
        "entities": [e.model_dump() for e in r.entities] if r.entities is not None else None,
        "timings_ms": r.timings_ms,
        "input_sha256": rec.input_sha256,
        "position": rec.position.ref,
        "run_id": run_id,
        "processed_at": now,
    }


def _dead_row(rec: FailedRecord, run_id: str, now: datetime) -> dict[str, Any]:
    d = rec.dead_letter
    p = d.position
    return {
        "position": p.ref,
        "input_kind": p.kind,
        "file": p.file,
        "line": p.line,
        "topic": p.topic,
        "partition": p.partition,
        "offset": p.offset,
        "key": d.key,
        "payload": d.payload,
        "doc_id": d.doc_id,
        "source": d.source,
        "stage": d.stage,
        "reason": d.reason,
        "error": d.error,
        "count": 1,
        "first_seen": now,
        "last_seen": now,
        "run_id": run_id,
    }


def _last_per_key(rows: list[dict[str, Any]], key: tuple[str, ...]) -> list[dict[str, Any]]:
    if len(rows) < 2:
        return rows
    return list({tuple(r[k] for k in key): r for r in rows}.values())


class StoreWriter:
    """Writes `WriteBatch`es. One instance per store: the pipeline routes all writes here.

    Every batch passes through the redactor, then lands in one transaction: classification
    upserts, dead-letter upserts (count bumps on replay), audit records (ignored when the
    same run already recorded that position) and Kafka partition marks.
    """

    def __init__(self, engine: Engine, redactor: Redactor | None = None) -> None:
        self.engine = engine
        self.redactor = redactor or default_redactor()
        self.dialect = engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported dialect {self.dialect!r}")
        self._fault: Callable[[str], None] | None = None

    def set_fault_hook(self, hook: Callable[[str], None] | None) -> None:
        """Test hook called at named points inside the transaction (e.g. 'after_results')."""
        self._fault = hook

    def _insert(self, table: Table) -> Any:
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    def write(self, batch: WriteBatch) -> None:
        if not len(batch) and not batch.marks:
            return
        batch = self.redactor.redact(batch)
        now = datetime.now(UTC)
        results = [_result_row(r, batch.run_id, now) for r in batch.results]
        deads = [_dead_row(f, batch.run_id, now) for f in batch.failures]
        audits = [
            {
                "run_id": batch.run_id, "position": r.position.ref, "doc_id": r.result.doc_id,
                "source": r.result.source, "input_sha256": r.input_sha256,
                "model_version": f"{r.result.model.name}@{r.result.model.version}",
                "outcome": "classified", "stage": None, "timings_ms": r.result.timings_ms,
                "recorded_at": now,
            }
            for r in batch.results
        ] + [
            {
                "run_id": batch.run_id, "position": f.dead_letter.position.ref,
                "doc_id": f.dead_letter.doc_id, "source": f.dead_letter.source,
                "input_sha256": f.input_sha256, "model_version": None,
                "outcome": "dead_letter", "stage": f.dead_letter.stage,
                "timings_ms": f.timings_ms, "recorded_at": now,
            }
            for f in batch.failures
        ]
        marks = [{**m.model_dump(), "updated_at": now} for m in batch.marks]
        # One statement may not touch a row twice (PostgreSQL refuses): the last one wins.
        results = _last_per_key(results, ("source", "id"))
        deads = _last_per_key(deads, ("position",))
        audits = _last_per_key(audits, ("position",))
        marks = _last_per_key(marks, ("consumer_group", "topic", "partition"))
        try:
            with self.engine.begin() as conn:
                if results:
                    stmt = self._insert(ClassificationRow.__table__)
                    stmt = stmt.on_conflict_do_update(
                        index_elements=["source", "id"],
                        set_={c: stmt.excluded[c] for c in _CLASSIFICATION_UPDATE},
                    )
                    conn.execute(stmt, results)
                if deads:
                    stmt = self._insert(DeadLetterRow.__table__)
                    table = DeadLetterRow.__table__
                    stmt = stmt.on_conflict_do_update(
                        index_elements=["position"],
                        set_={
                            "count": table.c.count + 1,
                            "last_seen": stmt.excluded.last_seen,
                            "stage": stmt.excluded.stage,
                            "reason": stmt.excluded.reason,
                            "error": stmt.excluded.error,
                            "payload": stmt.excluded.payload,
                            "run_id": stmt.excluded.run_id,
                        },
                    )
                    conn.execute(stmt, deads)
                if audits:
                    stmt = self._insert(AuditRow.__table__).on_conflict_do_nothing(
                        index_elements=["run_id", "position"]
                    )
                    conn.execute(stmt, audits)
                if self._fault:
                    self._fault("after_results")
                if marks:
                    table = StreamOffsetRow.__table__
                    stmt = self._insert(table)
                    stmt = stmt.on_conflict_do_update(
                        index_elements=["consumer_group", "topic", "partition"],
                        set_={"next_offset": stmt.excluded.next_offset,
                              "updated_at": stmt.excluded.updated_at},
                        where=table.c.next_offset < stmt.excluded.next_offset,
                    )
                    conn.execute(stmt, marks)
        except SQLAlchemyError as e:
            first = str(e).splitlines()[0] if str(e) else e.__class__.__name__
            raise StoreWriteError(
                f"writing a batch of {len(results)} results and {len(deads)} dead letters "
                f"(run {batch.run_id}) failed and was rolled back: {first}"
            ) from e
