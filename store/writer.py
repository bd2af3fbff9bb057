"""The single batched writer: one transaction per batch, bulk upserts, redaction first.

Long module: the batch's rows, its statements, and the isolation of refused records are one
transaction's logic and read best together (sanitizing lives in store.refused).

A batch is written in one transaction: classification upserts, dead-letter upserts,
resolution of the dead letters that results supersede, audit records, Kafka partition marks.
When the database refuses a value of the data (see store.transient), the batch is written
again, in one new transaction, with record isolation: halves of the records are tried in
SAVEPOINTs, recursively, until each refused record is found; each becomes a dead letter with
stage "store" (store.refused) and the rest is written; marks last, so that the batch, its
isolated dead letters and its marks commit together. A clean batch costs no savepoint at
all. A transient failure (connection, server restart, serialization, deadlock, SQLite busy)
is not isolated: the batch rolls back whole and `StoreUnavailableError` says to retry.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, bindparam, case, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from docstream.privacy.redact import Redactor, default_redactor
from docstream.schemas.envelope import FailedRecord, ResultRecord, WriteBatch

from .audit_chain import AuditChainer, AuditKey, audit_key_from_env
from .errors import FencedError, StoreUnavailableError, StoreWriteError
from .masking import mask_secrets, mask_url
from .refused import fit_text, refused_rows
from .tables import ClassificationRow, DeadLetterRow, StreamOffsetRow
from .transient import driver_message, is_data_error, is_transient, short_reason

log = logging.getLogger(__name__)

_CLASSIFICATION_UPDATE = (
    "label", "score", "scores", "needs_review", "model_name", "model_version", "weights_sha256",
    "kind", "title", "created_at", "n_chunks", "n_tokens", "entities", "timings_ms",
    "input_sha256", "position", "run_id", "processed_at",
)
_RESOLVE_CHUNK = 500  # positions per resolving UPDATE (SQLite's bound-parameter limit)


@dataclass(frozen=True)
class WriteReport:
    """What one `StoreWriter.write` stored. `dead_letters` includes the `isolated` records:
    results or dead letters the database refused, stored as stage-"store" dead letters."""

    results: int = 0
    dead_letters: int = 0
    isolated: int = 0
    marks: int = 0
    isolated_positions: tuple[str, ...] = ()


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
        "text": rec.text,
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
        "resolved_at": None,
        "resolved_by": None,
    }


def _audit_row(rec: ResultRecord | FailedRecord, run_id: str, now: datetime) -> dict[str, Any]:
    if isinstance(rec, ResultRecord):
        r = rec.result
        return {
            "run_id": run_id, "position": rec.position.ref, "doc_id": r.doc_id,
            "source": r.source, "input_sha256": rec.input_sha256,
            "model_version": f"{r.model.name}@{r.model.version}", "outcome": "classified",
            "stage": None, "timings_ms": r.timings_ms, "recorded_at": now,
            "replay_of": rec.replay_of, **_pii(rec),
        }
    d = rec.dead_letter
    return {
        "run_id": run_id, "position": d.position.ref, "doc_id": d.doc_id, "source": d.source,
        "input_sha256": rec.input_sha256, "model_version": None, "outcome": "dead_letter",
        "stage": d.stage, "timings_ms": rec.timings_ms, "recorded_at": now,
        "replay_of": rec.replay_of, **_pii(rec),
    }


def _pii(rec: ResultRecord | FailedRecord) -> dict[str, Any]:
    """The audit record's privacy columns: the redaction policy and the counts (never values)."""
    return {"pii_policy": rec.pii_policy, "pii_counts": rec.pii_counts}


def _last_per_key(rows: list[dict[str, Any]], key: tuple[str, ...]) -> list[dict[str, Any]]:
    if len(rows) < 2:
        return rows
    return list({tuple(r[k] for k in key): r for r in rows}.values())


def _furthest_marks(batch: WriteBatch, now: datetime) -> list[dict[str, Any]]:
    """One mark per partition, the furthest: marks only move forward."""
    furthest: dict[tuple[str, str, int], dict[str, Any]] = {}
    for m in batch.marks:
        key = (m.consumer_group, m.topic, m.partition)
        if key not in furthest or furthest[key]["next_offset"] < m.next_offset:
            furthest[key] = {**m.model_dump(), "updated_at": now}
    return list(furthest.values())


@dataclass(frozen=True)
class _Unit:
    """One input record and its rows: isolation finds and replaces whole units."""

    record: ResultRecord | FailedRecord
    position: str
    row: dict[str, Any]  # the classification row of a result, the dead-letter row of a failure
    audit: dict[str, Any]

    @property
    def is_result(self) -> bool:
        return isinstance(self.record, ResultRecord)


class _Refused(Exception):
    """A statement over some units failed because of a value in the data (internal)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(driver_message(error))
        self.error = error


class StoreWriter:
    """Writes `WriteBatch`es. One instance per store: the pipeline routes all writes here.

    Every batch passes through the redactor, then lands in one transaction: classification
    upserts (the review text stored before is kept when the new record has none), dead-letter
    upserts (count bumps on replay, reopened), the resolution of open dead letters at a
    result's position or `replay_of`, audit records (ignored when the same run already
    recorded that position; hash-chained, store.audit_chain, keyed with `audit_key` or else
    $DOCSTREAM_AUDIT_KEY) and Kafka partition marks. Records the database refuses are
    isolated (see the module docstring); `write` returns a `WriteReport`.
    """

    def __init__(self, engine: Engine, redactor: Redactor | None = None,
                 audit_key: AuditKey | None = None) -> None:
        self.engine = engine
        self.redactor = redactor or default_redactor()
        self.dialect = engine.dialect.name
        if self.dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported dialect {self.dialect!r}")
        self._fault: Callable[[str], None] | None = None
        self.audit_chain = AuditChainer(
            self.dialect, audit_key if audit_key is not None else audit_key_from_env(),
            self._insert)

    def set_fault_hook(self, hook: Callable[[str], None] | None) -> None:
        """Test hook called at named points inside the transaction (e.g. 'after_results')."""
        self._fault = hook

    def _insert(self, table: Table) -> Any:
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    # -- statements ---------------------------------------------------------------------------

    def _execute(self, conn: Connection, stmt: Any, params: Any) -> Any:
        """Execute; a refusal because of the data becomes `_Refused` (the rest propagates)."""
        try:
            return conn.execute(stmt, params)
        except Exception as e:
            if is_data_error(e):
                raise _Refused(e) from e
            raise

    def _write_rows(self, conn: Connection, results: list[dict[str, Any]],
                    deads: list[dict[str, Any]], audits: list[dict[str, Any]],
                    resolving: Sequence[str], run_id: str, now: datetime) -> None:
        # One statement may not touch a row twice (PostgreSQL refuses): the last one wins.
        results = _last_per_key(results, ("source", "id"))
        if results:
            stmt = self._insert(ClassificationRow.__table__)
            stmt = stmt.on_conflict_do_update(
                index_elements=["source", "id"],
                set_={**{c: stmt.excluded[c] for c in _CLASSIFICATION_UPDATE},
                      # a rerun that keeps no text (not flagged now, --store-text off) keeps
                      # the text stored before, which a review may still need
                      "text": func.coalesce(stmt.excluded.text,
                                            ClassificationRow.__table__.c.text)},
            )
            self._execute(conn, stmt, results)
        if deads:
            table = DeadLetterRow.__table__
            stmt = self._insert(table)
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
                    "resolved_at": None,  # dead-lettered again: open again
                    "resolved_by": None,
                },
            )
            self._execute(conn, stmt, deads)
        wanted = list(dict.fromkeys(resolving))
        for i in range(0, len(wanted), _RESOLVE_CHUNK):
            table = DeadLetterRow.__table__
            stmt = (update(table)
                    .where(table.c.position.in_(bindparam("positions", expanding=True)),
                           table.c.resolved_at.is_(None))
                    .values(resolved_at=now, resolved_by=run_id))
            self._execute(conn, stmt, {"positions": wanted[i:i + _RESOLVE_CHUNK]})
        if audits:  # only those not yet recorded, chained (store.audit_chain)
            self.audit_chain.write(conn, audits, run_id, now, self._execute)

    def _write_units(self, conn: Connection, units: Sequence[_Unit], run_id: str,
                     now: datetime) -> None:
        resolving: list[str] = []
        for u in units:
            if isinstance(u.record, ResultRecord):
                resolving.append(u.position)
                if u.record.replay_of is not None:
                    resolving.append(u.record.replay_of)
        self._write_rows(conn, [u.row for u in units if u.is_result],
                         [u.row for u in units if not u.is_result], [u.audit for u in units],
                         resolving, run_id, now)

    def _write_marks(self, conn: Connection, marks: list[dict[str, Any]]) -> None:
        """Raise each partition's position (never lower it). A mark with an owner epoch moves
        the position only while the partition's epoch is still that one, and otherwise raises
        FencedError (the transaction rolls back): it runs first in the transaction, so its row
        lock orders it against a claim (store.offsets.claim_partitions)."""
        if not marks:
            return
        table = StreamOffsetRow.__table__
        plain = [{k: v for k, v in m.items() if k != "epoch"} for m in marks
                 if m.get("epoch") is None]
        try:
            for m in marks:
                if m.get("epoch") is not None:
                    self._fenced_mark(conn, table, m)
            if plain:
                stmt = self._insert(table)
                stmt = stmt.on_conflict_do_update(
                    index_elements=["consumer_group", "topic", "partition"],
                    set_={"next_offset": stmt.excluded.next_offset,
                          "updated_at": stmt.excluded.updated_at},
                    where=table.c.next_offset < stmt.excluded.next_offset,
                )
                conn.execute(stmt, plain)
        except FencedError:
            raise
        except Exception as e:  # marks come from the job's settings, not the data
            if is_data_error(e):
                raise StoreWriteError(
                    f"the database refused a partition mark ({driver_message(e)}); check the "
                    "consumer group and topic names") from e
            raise

    @staticmethod
    def _fenced_mark(conn: Connection, table: Table, mark: dict[str, Any]) -> None:
        key = (table.c.consumer_group == mark["consumer_group"]) & (
            table.c.topic == mark["topic"]) & (table.c.partition == mark["partition"])
        n = mark["next_offset"]
        moved = conn.execute(
            update(table).where(key & (table.c.epoch == mark["epoch"])).values(
                next_offset=case((table.c.next_offset < n, n), else_=table.c.next_offset),
                updated_at=mark["updated_at"]))
        if moved.rowcount == 1:
            return
        now = conn.execute(select(table.c.epoch, table.c.owner).where(key)).first()
        where = (f"epoch {now.epoch}, owner {now.owner}" if now is not None
                 else "no claim at all")
        raise FencedError(
            f"{mark['topic']}/{mark['partition']} of group {mark['consumer_group']}: this "
            f"worker claimed it at epoch {mark['epoch']}, the store now says {where}; the "
            "batch was rolled back and the partition's owner reads it again")

    # -- isolation ----------------------------------------------------------------------------

    def _isolate(self, conn: Connection, units: Sequence[_Unit], run_id: str, now: datetime,
                 failed: _Refused | None = None, observed: bool = True
                 ) -> list[tuple[_Unit, _Refused]]:
        """Write every unit the database accepts, halves in SAVEPOINTs, recursively; return
        the refused units with their error. `failed`: `units` failed together with that
        error, `observed` so or inferred (the parent failed, its first half did not); an
        inferred group is split without a try, but a single unit is always tried itself."""
        if failed is None or (len(units) == 1 and not observed):
            try:
                with conn.begin_nested():
                    self._write_units(conn, units, run_id, now)
                return []
            except _Refused as e:
                failed = e
        if len(units) == 1:
            return [(units[0], failed)]
        mid = len(units) // 2
        first = self._isolate(conn, units[:mid], run_id, now)
        return first + self._isolate(conn, units[mid:], run_id, now,
                                     failed=None if first else failed, observed=False)

    def _write_refused(self, conn: Connection, unit: _Unit, error: _Refused, run_id: str,
                       now: datetime) -> str:
        """`unit` as a stage-"store" dead letter: as it is, else sanitized (store.refused).
        Returns the warning to log once the transaction commits."""
        message = self.redactor.redact_text(driver_message(error.error))  # it may quote input
        last: _Refused | None = None
        for sanitize in (False, True):
            dead, audit = refused_rows(unit.record, unit.position, run_id, now, message,
                                       sanitize)
            audit.update(_pii(unit.record))
            try:
                with conn.begin_nested():
                    self._write_rows(conn, [], [dead], [audit], [], run_id, now)
            except _Refused as e:
                last = e
                continue
            kind = "result" if unit.is_result else "dead letter"
            return (f"store: the database refused the {kind} at {fit_text(unit.position, 300)} "
                    f"(run {run_id}): {fit_text(message)}; stored it as a dead letter with stage "
                    f"store, reason {dead['reason']}"
                    + (", sanitized" if sanitize else "")
                    + (f", at {dead['position']}" if dead["position"] != unit.position else ""))
        raise StoreWriteError(
            f"the database refused even the sanitized dead letter of the record at "
            f"{mask_secrets(ascii(unit.position))[:300]} (run {run_id}): "
            f"{self.redactor.redact_text(driver_message(last.error)) if last else message}"
        ) from (last.error if last else error.error)

    # -- the batch ----------------------------------------------------------------------------

    def _units(self, batch: WriteBatch, now: datetime) -> list[_Unit]:
        """One unit per input position; where a batch holds two records for one position,
        the later one wins (failures come after results)."""
        units: dict[str, _Unit] = {}
        for r in batch.results:
            units[r.position.ref] = _Unit(r, r.position.ref, _result_row(r, batch.run_id, now),
                                          _audit_row(r, batch.run_id, now))
        for f in batch.failures:
            ref = f.dead_letter.position.ref
            units[ref] = _Unit(f, ref, _dead_row(f, batch.run_id, now),
                               _audit_row(f, batch.run_id, now))
        return list(units.values())

    def _failed(self, e: BaseException, batch: WriteBatch) -> StoreWriteError:
        what = (f"a batch of {len(batch.results)} results and {len(batch.failures)} dead "
                f"letters (run {batch.run_id})")
        if is_transient(e):
            return StoreUnavailableError(
                f"the database at {mask_url(self.engine.url)} is unavailable "
                f"({short_reason(e)}): {what} was rolled back; retry it later")
        return StoreWriteError(f"writing {what} failed and was rolled back: "
                               f"{e.__class__.__name__}: "
                               f"{self.redactor.redact_text(driver_message(e))}")

    def write(self, batch: WriteBatch) -> WriteReport:
        """Write `batch` in one transaction; see the class docstring.

        Raises `StoreUnavailableError` (nothing written; retry) on a transient failure and
        `StoreWriteError` (nothing written) on any other failure that is not the data's."""
        if not len(batch) and not batch.marks:
            return WriteReport()
        batch = self.redactor.redact(batch)
        now = datetime.now(UTC)
        units = self._units(batch, now)
        marks = _furthest_marks(batch, now)
        try:
            with self.engine.begin() as conn:
                self._write_marks(conn, marks)  # first: a fenced batch writes nothing
                self._write_units(conn, units, batch.run_id, now)
                if self._fault:
                    self._fault("after_results")
            n_results = sum(u.is_result for u in units)
            return WriteReport(results=n_results, dead_letters=len(units) - n_results,
                               marks=len(marks))
        except _Refused as refused:
            first = refused  # rolled back; isolate the refused records below
        except (SQLAlchemyError, ConnectionError, TimeoutError) as e:
            raise self._failed(e, batch) from e
        return self._write_isolating(batch, units, marks, now, first)

    def _write_isolating(self, batch: WriteBatch, units: list[_Unit],
                         marks: list[dict[str, Any]], now: datetime,
                         first: _Refused) -> WriteReport:
        try:
            with self.engine.begin() as conn:
                if self.dialect == "sqlite":
                    _sqlite_in_transaction(conn)
                self._write_marks(conn, marks)
                refused = self._isolate(conn, units, batch.run_id, now, failed=first)
                warnings = [self._write_refused(conn, unit, error, batch.run_id, now)
                            for unit, error in refused]
                if self._fault:
                    self._fault("after_results")
        except _Refused as e:  # not expected: every statement above runs in a savepoint
            raise self._failed(e.error, batch) from e.error
        except (SQLAlchemyError, ConnectionError, TimeoutError) as e:
            raise self._failed(e, batch) from e
        for warning in warnings:
            log.warning("%s", warning)
        bad = {id(u) for u, _ in refused}
        n_results = sum(u.is_result and id(u) not in bad for u in units)
        return WriteReport(results=n_results, dead_letters=len(units) - n_results,
                           isolated=len(refused), marks=len(marks),
                           isolated_positions=tuple(u.position for u, _ in refused))


def _sqlite_in_transaction(conn: Connection) -> None:
    """Make sure a SQLite transaction is open before the first SAVEPOINT: under the sqlite3
    module's legacy transaction control (an engine not made by store.engine.make_engine), a
    SAVEPOINT issued first would live outside the transaction."""
    dbapi_conn = conn.connection.dbapi_connection
    if dbapi_conn is not None and not getattr(dbapi_conn, "in_transaction", True):
        conn.exec_driver_sql("BEGIN")
