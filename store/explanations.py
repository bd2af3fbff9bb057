"""The `explanations` table: one row per (source, doc_id, model_version), upserted."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from docstream.schemas.explanation import StoredExplanation

from .tables import ExplanationRow

_COLUMNS = tuple(c.name for c in ExplanationRow.__table__.columns)


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def save_explanations(engine: Engine, explanations: Sequence[StoredExplanation]) -> int:
    """Upsert `explanations` in one transaction (a recomputation replaces the row)."""
    if not explanations:
        return 0
    insert = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    rows = [e.model_dump(mode="json") | {"computed_at": e.computed_at} for e in explanations]
    stmt = insert(ExplanationRow.__table__).values(rows)
    keys = ("source", "doc_id", "model_version")
    stmt = stmt.on_conflict_do_update(index_elements=list(keys), set_={
        c: stmt.excluded[c] for c in _COLUMNS if c not in keys})
    with engine.begin() as conn:
        conn.execute(stmt)
    return len(rows)


def explanation_for(engine: Engine, source: str, doc_id: str, model_version: str,
                    stored_text: str | None) -> dict[str, Any] | None:
    """The explanation of a result's current model version, when it still points into the
    stored text (`text_sha256` matches); else None."""
    if not stored_text:
        return None
    e = ExplanationRow
    with engine.connect() as conn:
        row = conn.execute(select(*ExplanationRow.__table__.c).where(
            e.source == source, e.doc_id == doc_id, e.model_version == model_version)).first()
    if row is None or row.text_sha256 != text_sha256(stored_text):
        return None
    out = dict(row._mapping)
    # the page needs the gaps between words: each word with the text up to the next one
    words = sorted(out["words"], key=lambda w: w["start"])
    pieces, at = [], 0
    for w in words:
        if w["start"] < at:
            continue
        if w["start"] > at:
            pieces.append({"text": stored_text[at:w["start"]], "score": 0.0, "plain": True})
        pieces.append({**w, "plain": False})
        at = w["end"]
    if at < len(stored_text):
        pieces.append({"text": stored_text[at:], "score": 0.0, "plain": True})
    out["pieces"] = pieces
    return out
