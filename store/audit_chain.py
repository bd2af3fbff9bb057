"""The audit log's hash chains: every audit record carries its predecessor's hash and its own.

What it gives: a record changed, deleted, inserted or reordered after it was written breaks
its chain, and `store.audit_verify` (`docstream audit verify`) says where. Keyed with
`DOCSTREAM_AUDIT_KEY` (or a file named by `DOCSTREAM_AUDIT_KEY_FILE`), every hash is an
HMAC-SHA256, so someone with write access to the database but not the key cannot forge a
consistent chain; unkeyed, it is plain SHA-256 and protects only against changes made by
someone who does not recompute the chain (and, with the head kept outside, against any
change of what that head covers). The key is read from the environment, never stored.

Chains: one per writer and run. A `StoreWriter` writes run R's records into the chain
"R/<host>-<pid>-<8 hex>" (`AuditChainer.chain_id`), so writers in threads, processes or hosts
never contend for one head, and a run's chains are found by their prefix. Each chain's head
(last hash, length, keyed) is a row of audit_heads, read AND locked inside the writer's
transaction by one `INSERT … ON CONFLICT (chain) DO UPDATE … RETURNING` (PostgreSQL: a row
lock held to commit; SQLite: the database's one write lock, which the batch's earlier
upserts already hold) and updated in the same transaction as the records. Nothing about the
head is cached in memory: two transactions on one chain (threads sharing a writer, a
forked process) serialize on the row, and the chain never forks.

Only inserted records are chained: a replay (same run id and position) adds no audit
record, so the (run_id, position) pairs already recorded are read first, in the same
transaction, and left out before hashing; the rest is inserted as it was hashed (a plain
INSERT: a record ignored by ON CONFLICT DO NOTHING would leave a hole in the chain). If
another writer recorded one of the same pairs in between (two processes replaying the same
input at once, PostgreSQL; SQLite serializes writers), the insert violates the pair's unique
constraint: the batch is rolled back whole with `StoreUnavailableError`, and its retry leaves
the pair out. (PostgreSQL's RETURNING over 512 rows would have told which were inserted, but
costs SQLAlchemy one 8,000-parameter statement instead of a pipelined executemany: 4x the
insert's time.)

SQLite needs 3.35 (RETURNING) with JSON1 (json_each; built in since 3.38).

Savepoints: the writer's record isolation (store.writer) tries halves of a batch in
SAVEPOINTs. The head is read, and rows and head written, inside the savepoint, so a rolled
back savepoint takes its records and its head update with it; the next attempt chains from
the head as the transaction sees it.

Canonical encoding (version 1), `canonical`: the record's fields are every audit_log column
but `seq` and `hash` (`HASHED`: run_id, position, doc_id, source, input_sha256,
model_version, outcome, stage, timings_ms, recorded_at, replay_of, pii_policy, pii_counts,
chain, prev_hash); a field whose value is None (SQL NULL, JSON null) is left out, so a
nullable column added later does not change the hashes of older records; a datetime is its
UTC instant as "YYYY-MM-DDTHH:MM:SS.ffffffZ" (a naive one, as SQLite returns it, is UTC);
the rest is JSON as stored (JSON columns nested). The message is
b"docstream-audit-v1\\n" + json.dumps(fields, sort_keys=True, separators=(",", ":"),
ensure_ascii=True) (NaN as NaN), and the hash its lowercase hex SHA-256, or HMAC-SHA256 with
the key. `chain` is in the message (a record cannot move to another chain), so is
`prev_hash` (GENESIS, 64 zeros, for a chain's first record): the head hash commits to the
whole chain. `seq` is not (the database assigns it on insert): the order is the chain's,
and the verifier walks each chain in `seq` order, so a reordering breaks a link.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Connection, Engine, Table, select, text, update

from .errors import StoreError, StoreUnavailableError, StoreWriteError
from .tables import AuditHeadRow, AuditRow
from .transient import driver_message

KEY_ENV = "DOCSTREAM_AUDIT_KEY"
KEY_FILE_ENV = "DOCSTREAM_AUDIT_KEY_FILE"
MIN_KEY_BYTES = 16
GENESIS = "0" * 64
PREFIX = b"docstream-audit-v1\n"
#: audit_log's columns that a record's hash covers: all but seq (assigned on insert) and hash
HASHED: tuple[str, ...] = tuple(c.name for c in AuditRow.__table__.columns
                                if c.name not in ("seq", "hash"))
_SORTED = tuple(sorted(HASHED))
_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)
_HEX64 = re.compile(r"[0-9a-f]{64}")
# Which positions of a batch the run recorded already: the positions as ONE parameter (an
# array; SQLite: a JSON list), one index probe each. PostgreSQL: LATERAL … LIMIT 1 keeps the
# probes whatever the planner thinks of the run's size (a bitmap scan of the whole run per
# batch would make a run quadratic). 3x faster than an IN list of 512 on SQLite.
_RECORDED = {
    "postgresql": text(
        "SELECT p.position FROM unnest(CAST(:positions AS varchar[])) AS p(position) "
        "CROSS JOIN LATERAL (SELECT 1 FROM audit_log a WHERE a.run_id = :run_id "
        "AND a.position = p.position LIMIT 1) AS hit"),
    "sqlite": text(
        "SELECT j.value FROM json_each(:positions) AS j WHERE EXISTS (SELECT 1 FROM audit_log "
        "a WHERE a.run_id = :run_id AND a.position = j.value)"),
}


# -- the key ------------------------------------------------------------------------------


class AuditKey:
    """The HMAC key. Its bytes appear in no repr, message or log, and are never stored."""

    __slots__ = ("_secret",)

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_KEY_BYTES:
            raise StoreError(f"the audit key is too short ({len(secret)} bytes); use at least "
                             f"{MIN_KEY_BYTES}, e.g. the output of `openssl rand -hex 32`")
        self._secret = secret

    def __repr__(self) -> str:
        return "AuditKey(***)"

    def mac(self, message: bytes) -> str:
        return hmac.digest(self._secret, message, "sha256").hex()


def audit_key_from_env(environ: Mapping[str, str] | None = None) -> AuditKey | None:
    """The key named by $DOCSTREAM_AUDIT_KEY, or read from $DOCSTREAM_AUDIT_KEY_FILE (trailing
    newlines dropped); None when neither is set. Both set, an unreadable file or a short key:
    `StoreError`, in one line that never shows the key."""
    env = os.environ if environ is None else environ
    value, path = env.get(KEY_ENV), env.get(KEY_FILE_ENV)
    if value and path:
        raise StoreError(f"both {KEY_ENV} and {KEY_FILE_ENV} are set; set one")
    if path:
        try:
            with open(path, "rb") as f:
                secret = f.read().rstrip(b"\r\n")
        except OSError as e:
            raise StoreError(f"{KEY_FILE_ENV}={path}: cannot read the audit key: "
                             f"{e.strerror or e.__class__.__name__}") from e
        if not secret:
            raise StoreError(f"{KEY_FILE_ENV}={path}: the file is empty")
        return AuditKey(secret)
    if value:
        return AuditKey(value.encode("utf-8", "surrogateescape"))
    return None


# -- the encoding -------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)  # a batch's records share one timestamp
def _utc(value: datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return (f"{value.year:04d}-{value.month:02d}-{value.day:02d}T{value.hour:02d}:"
            f"{value.minute:02d}:{value.second:02d}.{value.microsecond:06d}Z")


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes a record's hash covers (see the module docstring).

    >>> canonical({"run_id": "r", "doc_id": None, "timings_ms": {"b": 1.5, "a": 2},
    ...            "recorded_at": datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)})
    b'docstream-audit-v1\\n{"recorded_at":"2026-01-02T03:04:05.000006Z","run_id":"r","timings_ms":{"a":2,"b":1.5}}'
    """
    fields = {}
    for name in _SORTED:
        value = record.get(name)
        if value is None:
            continue
        fields[name] = _utc(value) if isinstance(value, datetime) else value
    return PREFIX + _JSON.encode(fields).encode("ascii")


def record_hash(record: Mapping[str, Any], key: AuditKey | None) -> str:
    """The record's hash: HMAC-SHA256 with `key`, else SHA-256, of `canonical(record)`."""
    message = canonical(record)
    return key.mac(message) if key is not None else hashlib.sha256(message).hexdigest()


# -- heads kept outside the database ------------------------------------------------------


class AuditHead(BaseModel):
    """A chain's head: its last record's hash and how many records it holds."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    chain: str = Field(min_length=1, max_length=128)
    head_hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    length: int = Field(ge=1)
    keyed: bool


class HeadFile(BaseModel):
    """What `docstream run --audit-head-out FILE` writes; `--json`'s summary has the same
    `audit_heads` list."""

    model_config = ConfigDict(extra="ignore")

    run_id: str | None = None
    audit_heads: list[AuditHead]


def is_head_hash(text: str) -> bool:
    return bool(_HEX64.fullmatch(text))


def run_of(chain: str) -> str:
    """The run id of a chain id ("R/<host>-<pid>-<hex>" → "R")."""
    return chain.rpartition("/")[0]


def run_heads(engine: Engine, run_id: str, since: datetime | None = None) -> list[AuditHead]:
    """The heads of `run_id`'s chains (with `since`: those written at or after it), from
    audit_heads: what a run emits at its end, to be kept outside the database."""
    t = AuditHeadRow.__table__
    query = select(t.c.chain, t.c.head_hash, t.c.length, t.c.keyed).where(t.c.length > 0)
    if since is not None:
        query = query.where(t.c.updated_at >= since)
    with engine.connect() as conn:
        rows = conn.execute(query.order_by(t.c.chain)).all()
    return [AuditHead(chain=c, head_hash=h, length=n, keyed=k)
            for c, h, n, k in rows if run_of(c) == run_id]


# -- the writer's side --------------------------------------------------------------------


def _duplicate_record(error: BaseException) -> bool:
    """`error` is the unique violation of an audit record's (run_id, position)."""
    message = driver_message(error)
    return ("uq_audit_run_position" in message
            or "audit_log.run_id, audit_log.position" in message)


Execute = Callable[[Connection, Any, Any], Any]


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", socket.gethostname())[:32] or "host"


class AuditChainer:
    """Chains and inserts a writer's audit rows (`write`); see the module docstring."""

    def __init__(self, dialect: str, key: AuditKey | None,
                 insert: Callable[[Table], Any]) -> None:
        self.key = key
        self.dialect = dialect
        self._insert = insert
        self._instance = f"{_host()}-{{pid}}-{secrets.token_hex(4)}"

    @property
    def keyed(self) -> bool:
        return self.key is not None

    def chain_id(self, run_id: str) -> str:
        """This writer's chain for `run_id` (the pid is read at each call: a forked process
        gets a chain of its own)."""
        return f"{run_id}/{self._instance.format(pid=os.getpid())}"

    def _recorded(self, conn: Connection, run_id: str, positions: Sequence[str],
                  execute: Execute) -> set[str]:
        listed = list(positions) if self.dialect == "postgresql" else json.dumps(positions)
        return {p for (p,) in execute(conn, _RECORDED[self.dialect],
                                      {"positions": listed, "run_id": run_id})}

    def _lock_head(self, conn: Connection, chain: str, now: datetime,
                   execute: Execute) -> tuple[str, int]:
        """The chain's head (GENESIS, 0 for a new one), its row locked until commit."""
        t = AuditHeadRow.__table__
        stmt = self._insert(t).values(chain=chain, head_hash=GENESIS, length=0,
                                      keyed=self.keyed, updated_at=now)
        stmt = stmt.on_conflict_do_update(
            index_elements=["chain"], set_={"updated_at": stmt.excluded.updated_at},
        ).returning(t.c.head_hash, t.c.length, t.c.keyed)
        head_hash, length, keyed = execute(conn, stmt, None).one()
        if bool(keyed) != self.keyed:
            raise StoreWriteError(f"audit chain {chain} is {'' if keyed else 'un'}keyed in "
                                  f"audit_heads, but this writer is {'' if self.keyed else 'un'}"
                                  "keyed; the chain was tampered with or the key changed")
        return head_hash, int(length)

    def write(self, conn: Connection, rows: Iterable[Mapping[str, Any]], run_id: str,
              now: datetime, execute: Execute) -> int:
        """Insert `rows` (audit rows of `run_id`) not yet recorded for their (run_id,
        position), chained after this writer's head for `run_id`; returns how many were
        inserted. Call inside the batch's transaction (or savepoint); `execute` runs each
        statement (the writer's, which turns the data's refusals into isolation)."""
        fresh: dict[str, dict[str, Any]] = {}
        for row in rows:  # the first of two rows at one position wins, as the insert's would
            fresh.setdefault(row["position"], {c: row.get(c) for c in HASHED})
        if not fresh:
            return 0
        for position in self._recorded(conn, run_id, list(fresh), execute):
            fresh.pop(position, None)
        if not fresh:
            return 0
        chain = self.chain_id(run_id)
        prev, length = self._lock_head(conn, chain, now, execute)
        chained = []
        for row in fresh.values():
            row["run_id"], row["chain"], row["prev_hash"] = run_id, chain, prev
            if row["timings_ms"] is None:
                row["timings_ms"] = {}  # the column's default, made explicit: it is hashed
            row["hash"] = prev = record_hash(row, self.key)
            chained.append(row)
        try:
            execute(conn, self._insert(AuditRow.__table__), chained)
        except Exception as e:
            if not _duplicate_record(e):
                raise
            raise StoreUnavailableError(
                f"another writer recorded some of these audit records (run {run_id}) at the "
                f"same moment; the batch was rolled back so that audit chain {chain} does not "
                "break; retry it") from e
        t = AuditHeadRow.__table__
        execute(conn, update(t).where(t.c.chain == chain).values(
            head_hash=prev, length=length + len(chained), updated_at=now), None)
        return len(chained)
