"""Read-only browsing of the store for the API and the pages: filtered results with keyset
pagination, one result in full, dead letters (without payloads), runs.

Keyset pagination: a page ends with an opaque cursor holding the sort key of its last row;
the next page starts strictly after that key, so rows written meanwhile never shift a page
and no row is shown twice or skipped (unlike OFFSET). Orders:
- `newest`: processed_at, source, id, all descending (the default);
- `score`: calibrated score, source, id, ascending (the review queue: least sure first).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Engine, Select, and_, exists, select, tuple_

from .errors import StoreError
from .explanations import explanation_for
from .reviews import latest_reviews_query, reviews_of
from .tables import AuditRow, ClassificationRow, DeadLettersPublic, ReviewRow, RunRow
from .times import as_utc

Order = Literal["newest", "score"]
MAX_PAGE = 500


class BadCursor(StoreError):
    """A cursor that this store did not make (or made for another order)."""


class ResultFilter(BaseModel):
    """Filters over results; every one optional, all of them combined with AND."""

    model_config = ConfigDict(frozen=True, protected_namespaces=(), extra="forbid")

    label: str | None = None
    source: str | None = None
    model_version: str | None = None
    since: datetime | None = Field(default=None, description="processed at or after")
    until: datetime | None = Field(default=None, description="processed before")
    min_score: float | None = Field(default=None, ge=0.0, le=1.0)
    max_score: float | None = Field(default=None, ge=0.0, le=1.0)
    needs_review: bool | None = None
    reviewed: bool | None = Field(default=None, description="has at least one review")


class Page(BaseModel):
    model_config = ConfigDict(frozen=True)

    items: list[dict[str, Any]]
    next_cursor: str | None = Field(description="pass as `cursor` for the next page; null at "
                                                "the end")


def db_time(engine: Engine, value: datetime | None) -> datetime | None:
    """A time as the store compares it: aware UTC on PostgreSQL, naive UTC on SQLite (which
    stores DateTime as text without a zone). A naive input is taken as UTC."""
    aware = as_utc(value)
    if aware is None:
        return None
    return aware.replace(tzinfo=None) if engine.dialect.name == "sqlite" else aware


def encode_cursor(order: str, key: list[Any]) -> str:
    raw = json.dumps([order, *key], separators=(",", ":"), default=str).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, order: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError) as e:
        raise BadCursor("bad cursor: pass back the next_cursor of a previous page") from e
    if not isinstance(value, list) or len(value) < 2 or value[0] != order:
        raise BadCursor(f"this cursor is not for order={order}: pass back the next_cursor of "
                        "a page with the same order")
    return value[1:]


BAD_CURSOR = "bad cursor: pass back the next_cursor of a previous page"


def _cursor_key(engine: Engine, cursor: str, order: str, size: int) -> list[Any]:
    """The sort key in a cursor of `order`: its first part a time ("newest", "dead") or a
    finite score ("score"), the others strings; anything else is a BadCursor (never a
    server error, nor a comparison of mismatched types in the database)."""
    key = decode_cursor(cursor, order)
    if len(key) != size or not all(isinstance(k, str) for k in key[1:]):
        raise BadCursor(BAD_CURSOR)
    first = key[0]
    try:
        if order == "score":
            if isinstance(first, bool) or not isinstance(first, int | float) \
                    or not math.isfinite(first):
                raise ValueError(first)
            return [float(first), *key[1:]]
        return [db_time(engine, datetime.fromisoformat(first)), *key[1:]]
    except (TypeError, ValueError) as e:
        raise BadCursor(BAD_CURSOR) from e


RESULT_FIELDS = (
    "source", "id", "label", "score", "needs_review", "model_name", "model_version", "kind",
    "title", "created_at", "processed_at", "run_id", "n_chunks",
)


def _results_stmt(engine: Engine, f: ResultFilter) -> tuple[Select[Any], Any]:
    c = ClassificationRow
    latest = latest_reviews_query()
    stmt = (select(*(getattr(c, name) for name in RESULT_FIELDS),
                   latest.c.label.label("human_label"), latest.c.reviewer.label("reviewer"),
                   latest.c.reviewed_at.label("reviewed_at"))
            .join(latest, and_(latest.c.source == c.source, latest.c.doc_id == c.id),
                  isouter=True))
    conds = []
    if f.label is not None:
        conds.append(c.label == f.label)
    if f.source is not None:
        conds.append(c.source == f.source)
    if f.model_version is not None:
        conds.append(c.model_version == f.model_version)
    if f.since is not None:
        conds.append(c.processed_at >= db_time(engine, f.since))
    if f.until is not None:
        conds.append(c.processed_at < db_time(engine, f.until))
    if f.min_score is not None:
        conds.append(c.score >= f.min_score)
    if f.max_score is not None:
        conds.append(c.score <= f.max_score)
    if f.needs_review is not None:
        conds.append(c.needs_review.is_(f.needs_review))
    if f.reviewed is not None:
        has = exists().where(ReviewRow.source == c.source, ReviewRow.doc_id == c.id)
        conds.append(has if f.reviewed else ~has)
    return stmt.where(*conds), latest


def _item(row: Any) -> dict[str, Any]:
    item = dict(row._mapping)
    for key in ("processed_at", "created_at", "reviewed_at"):
        item[key] = as_utc(item.get(key))
    item["agrees"] = None if item["human_label"] is None else item["human_label"] == item["label"]
    return item


def list_results(engine: Engine, f: ResultFilter | None = None, *, order: Order = "newest",
                 limit: int = 50, cursor: str | None = None) -> Page:
    """One page of results with their human label (the latest review), if any."""
    if not 1 <= limit <= MAX_PAGE:
        raise StoreError(f"limit must be 1..{MAX_PAGE}")
    c = ClassificationRow
    stmt, _ = _results_stmt(engine, f or ResultFilter())
    if order == "score":
        key_cols = (c.score, c.source, c.id)
        stmt = stmt.order_by(c.score.asc(), c.source.asc(), c.id.asc())
    else:
        key_cols = (c.processed_at, c.source, c.id)
        stmt = stmt.order_by(c.processed_at.desc(), c.source.desc(), c.id.desc())
    if cursor:
        key = _cursor_key(engine, cursor, order, 3)
        if order == "score":
            stmt = stmt.where(tuple_(*key_cols) > tuple_(*key))
        else:
            stmt = stmt.where(tuple_(*key_cols) < tuple_(*key))
    with engine.connect() as conn:
        rows = conn.execute(stmt.limit(limit + 1)).all()
    more = len(rows) > limit
    items = [_item(r) for r in rows[:limit]]
    next_cursor = None
    if more and items:
        last = items[-1]
        first = last["score"] if order == "score" else last["processed_at"].isoformat()
        next_cursor = encode_cursor(order, [first, last["source"], last["id"]])
    return Page(items=items, next_cursor=next_cursor)


def get_result(engine: Engine, source: str, doc_id: str) -> dict[str, Any] | None:
    """One result in full: every stored field (the text is the redacted one), all class
    scores best first, its reviews (oldest first), its audit trail and the explanation of its
    current model version (None until one is stored, or when the stored text changed)."""
    c = ClassificationRow
    stmt, _ = _results_stmt(engine, ResultFilter())
    stmt = stmt.add_columns(c.scores, c.text, c.entities, c.timings_ms, c.n_tokens,
                            c.input_sha256, c.position, c.weights_sha256)
    with engine.connect() as conn:
        row = conn.execute(stmt.where(c.source == source, c.id == doc_id)).first()
        if row is None:
            return None
        audit = conn.execute(
            select(AuditRow.seq, AuditRow.run_id, AuditRow.position, AuditRow.outcome,
                   AuditRow.stage, AuditRow.model_version, AuditRow.recorded_at,
                   AuditRow.replay_of, AuditRow.pii_policy, AuditRow.pii_counts,
                   AuditRow.chain, AuditRow.hash)
            .where(AuditRow.source == source, AuditRow.doc_id == doc_id)
            .order_by(AuditRow.seq)).all()
    item = _item(row)
    item["scores"] = dict(sorted((item["scores"] or {}).items(), key=lambda kv: -kv[1]))
    item["reviews"] = [r.model_dump() for r in reviews_of(engine, source, doc_id)]
    item["audit"] = [{**dict(a._mapping), "recorded_at": as_utc(a.recorded_at)} for a in audit]
    item["explanation"] = explanation_for(engine, source, doc_id, item["model_version"],
                                          item["text"])
    return item


def list_dead_letters(engine: Engine, *, reason: str | None = None, stage: str | None = None,
                      open_only: bool | None = None, limit: int = 50,
                      cursor: str | None = None) -> Page:
    """Dead letters, newest first, from the view without payloads (dead_letters_public)."""
    if not 1 <= limit <= MAX_PAGE:
        raise StoreError(f"limit must be 1..{MAX_PAGE}")
    d = DeadLettersPublic.c
    stmt = select(DeadLettersPublic).order_by(d.last_seen.desc(), d.position.desc())
    if reason is not None:
        stmt = stmt.where(d.reason == reason)
    if stage is not None:
        stmt = stmt.where(d.stage == stage)
    if open_only is not None:
        stmt = stmt.where(d.resolved_at.is_(None) if open_only else d.resolved_at.is_not(None))
    if cursor:
        stmt = stmt.where(tuple_(d.last_seen, d.position) < tuple_(
            *_cursor_key(engine, cursor, "dead", 2)))
    with engine.connect() as conn:
        rows = conn.execute(stmt.limit(limit + 1)).all()
    items = []
    for r in rows[:limit]:
        item = dict(r._mapping)
        for k in ("first_seen", "last_seen", "resolved_at"):
            item[k] = as_utc(item[k])
        items.append(item)
    next_cursor = None
    if len(rows) > limit and items:
        next_cursor = encode_cursor("dead", [items[-1]["last_seen"].isoformat(),
                                             items[-1]["position"]])
    return Page(items=items, next_cursor=next_cursor)


def list_runs(engine: Engine, *, limit: int = 100) -> list[dict[str, Any]]:
    """The latest runs, newest first, with their throughput (from their summaries)."""
    with engine.connect() as conn:
        rows = conn.execute(select(*RunRow.__table__.c).order_by(RunRow.started_at.desc())
                            .limit(limit)).all()
    out = []
    for r in rows:
        summary = r.summary or {}
        out.append({
            "run_id": r.run_id, "source": r.source, "model": r.model, "status": r.status,
            "started_at": as_utc(r.started_at), "finished_at": as_utc(r.finished_at),
            "inputs": summary.get("inputs"), "classified": summary.get("classified"),
            "dead_letters": summary.get("dead_letters"), "seconds": summary.get("seconds"),
            "docs_per_s": summary.get("docs_per_s"),
        })
    return out
