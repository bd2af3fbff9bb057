"""Records the database refused, turned into stage-"store" dead letters (see store.writer).

A result or dead letter whose values the database cannot hold (a NUL character or a lone
surrogate in a text, a text longer than its column, NaN in JSON, a number out of range) is
written instead as a dead letter with stage "store" and reason `REASON`, whose error carries
the database's message. When even that dead letter is refused (the offending value is its
own doc id, source or position), `storable_rows` escapes and shortens every text to what
both stores accept: NUL and lone surrogates become backslash escapes, over-long texts are
cut and end in a hash of the original, numbers out of a column's range become NULL. The
payload (bytes, always accepted) is never touched.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from typing import Any

from docstream.schemas.envelope import FailedRecord, ResultRecord

REASON = "store_rejected"
# column limits (store.tables); a key also stays under PostgreSQL's btree row limit (2704 B)
POSITION_CHARS, POSITION_BYTES = 1024, 2000
_INT32 = 2**31 - 1
_INT64 = 2**63 - 1
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def _escape(text: str) -> str:
    """NUL and lone surrogates as backslash escapes (\\x00, \\udc80); the rest unchanged."""
    return _UNSTORABLE.sub(lambda m: f"\\x{ord(m[0]):02x}" if m[0] == "\x00"
                           else f"\\u{ord(m[0]):04x}", text)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]


def fit_text(text: str, max_chars: int | None = None, max_bytes: int | None = None,
             mark_changes: bool = False) -> str:
    """`text` escaped and cut to `max_chars` characters / `max_bytes` UTF-8 bytes.

    A cut text ends in "…#<12 hex of sha256(original)>"; with `mark_changes` an escaped one
    does too, so that two different keys never become the same key."""
    escaped = _escape(text)
    too_long = (max_chars is not None and len(escaped) > max_chars) or (
        max_bytes is not None and len(escaped.encode("utf-8")) > max_bytes)
    if not too_long and (escaped == text or not mark_changes):
        return escaped
    tail = f"…#{_digest(text)}"
    head = escaped if max_chars is None else escaped[: max_chars - len(tail)]
    if max_bytes is not None:
        budget = max_bytes - len(tail.encode("utf-8"))
        head = head.encode("utf-8")[:budget].decode("utf-8", "ignore")
    return head + tail


def storable_position(ref: str) -> str:
    """The position a refused record's dead letter and audit row use when its own `ref`
    cannot be stored; unchanged when `ref` is storable as it is."""
    return fit_text(ref, POSITION_CHARS, POSITION_BYTES, mark_changes=True)


def _fit_opt(text: str | None, max_chars: int) -> str | None:
    return None if text is None else fit_text(text, max_chars)


def _fit_int(value: int | None, limit: int) -> int | None:
    return value if value is not None and -limit - 1 <= value <= limit else None


def refused_payload(rec: ResultRecord | FailedRecord) -> bytes:
    """What to keep of a refused record for replay: a dead letter's own payload (the raw
    input); for a result, which has no raw input, a JSON rendering of the refused result
    (non-ASCII escaped, so NUL and surrogates survive as \\u escapes) under
    {"docstream": "refused_result", ...}; the raw input itself is at the record's position."""
    if isinstance(rec, FailedRecord):
        return rec.dead_letter.payload
    doc = {"docstream": "refused_result", "record": rec.model_dump(mode="json")}
    return json.dumps(doc, ensure_ascii=True, sort_keys=True, default=str).encode("ascii")


def refused_error(rec: ResultRecord | FailedRecord, db_message: str) -> str:
    """One sentence: what was refused, the database's words, what to do."""
    fix = ("remove the offending value (NUL or unpaired surrogate characters, an over-long id, "
           "source or position, NaN or infinite numbers) and replay the input")
    if isinstance(rec, FailedRecord):
        d = rec.dead_letter
        return (f"the database refused this input's dead letter ({d.stage}/{d.reason}: "
                f"{fit_text(d.error, 200)}): {fit_text(db_message, 500)}; the payload is the "
                f"raw input: {fix}")
    return (f"the database refused this input's result: {fit_text(db_message, 500)}; the "
            f"payload holds the refused result as JSON (the raw input is at this position): "
            f"{fix}")


def refused_rows(rec: ResultRecord | FailedRecord, position: str, run_id: str, now: Any,
                 db_message: str, sanitize: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The dead-letter row and audit row of a refused record; `sanitize` makes every value
    storable (see the module docstring)."""
    if isinstance(rec, FailedRecord):
        p, key = rec.dead_letter.position, rec.dead_letter.key
        doc_id, source = rec.dead_letter.doc_id, rec.dead_letter.source
        model_version, timings = None, dict(rec.timings_ms)
    else:
        p, key = rec.position, None
        doc_id, source = rec.result.doc_id, rec.result.source
        model_version = f"{rec.result.model.name}@{rec.result.model.version}"
        timings = dict(rec.result.timings_ms)
    replay_of, input_sha256 = rec.replay_of, rec.input_sha256
    file, line, topic, partition, offset = p.file, p.line, p.topic, p.partition, p.offset
    if sanitize:
        position = storable_position(position)
        file, topic = _fit_opt(file, 1024), _fit_opt(topic, 256)
        line, partition, offset = _fit_int(line, _INT32), _fit_int(partition, _INT32), \
            _fit_int(offset, _INT64)
        doc_id, source = _fit_opt(doc_id, 256), _fit_opt(source, 256)
        model_version, input_sha256 = _fit_opt(model_version, 200), fit_text(input_sha256, 64)
        replay_of = None if replay_of is None else fit_text(replay_of, POSITION_CHARS,
                                                            POSITION_BYTES, mark_changes=True)
        timings = {fit_text(k, 200): v for k, v in timings.items() if math.isfinite(v)}
    dead = {
        "position": position, "input_kind": p.kind, "file": file, "line": line,
        "topic": topic, "partition": partition, "offset": offset, "key": key,
        "payload": refused_payload(rec), "doc_id": doc_id, "source": source,
        "stage": "store", "reason": REASON, "error": _escape(refused_error(rec, db_message)),
        "count": 1, "first_seen": now, "last_seen": now, "run_id": run_id,
        "resolved_at": None, "resolved_by": None,
    }
    audit = {
        "run_id": run_id, "position": position, "doc_id": doc_id, "source": source,
        "input_sha256": input_sha256, "model_version": model_version,
        "outcome": "dead_letter", "stage": "store", "timings_ms": timings,
        "recorded_at": now, "replay_of": replay_of,
    }
    return dead, audit
