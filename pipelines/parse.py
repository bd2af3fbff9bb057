"""Bytes → Post: the named step where bad input is caught and explained."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from pydantic import ValidationError

from docstream.schemas.dead_letter import DeadLetter
from docstream.schemas.envelope import FailedRecord
from docstream.schemas.post import MAX_TEXT_CHARS, Post

from .records import ParsedItem, RawInput

MAX_PAYLOAD_BYTES = 1_048_576  # 1 MiB: a post's JSON is far below; above it, the input is refused


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _dead(raw: RawInput, digest: str, stage: str, reason: str, error: str,
          doc_id: str | None = None, source: str | None = None,
          payload: bytes | None = None) -> FailedRecord:
    return FailedRecord(
        dead_letter=DeadLetter(
            position=raw.position, payload=raw.payload if payload is None else payload,
            key=raw.key, doc_id=doc_id, source=source, stage=stage,  # type: ignore[arg-type]
            reason=reason, error=error,
        ),
        input_sha256=digest,
    )


def _describe(e: ValidationError) -> tuple[str, str]:
    """A short reason code and a readable sentence for a pydantic error."""
    parts = []
    reason = "schema"
    for err in e.errors()[:5]:
        loc = ".".join(str(x) for x in err["loc"]) or "post"
        if loc == "text" and err["type"] == "string_too_long":
            reason = "oversize"
            parts.append(f"text has more than {MAX_TEXT_CHARS:,} characters; split the document")
            continue
        if loc == "text" and err["type"] == "value_error":
            reason = "empty_text"
        parts.append(f"field '{loc}': {err['msg']}")
    return reason, "; ".join(parts)


def parse_raw(raw: RawInput) -> ParsedItem | FailedRecord:
    """Decode, parse and validate one input. Never raises for bad data.

    Example:
        >>> from schemas.position import InputPosition
        >>> pos = InputPosition(kind="file", file="x.jsonl", line=1)
        >>> parse_raw(RawInput(pos, b'{"id": "a", "text": "hi"}')).post.id
        'a'
        >>> parse_raw(RawInput(pos, b'{"id": "a"')).dead_letter.reason
        'invalid_json'
    """
    t0 = time.perf_counter()
    payload = raw.payload
    digest = sha256(payload)
    if raw.unreadable is not None:
        reason, message = raw.unreadable
        return _dead(raw, digest, "decode", reason, message)
    if len(payload) > MAX_PAYLOAD_BYTES:
        return _dead(raw, digest, "decode", "oversize",
                     f"input is {len(payload):,} bytes, over the {MAX_PAYLOAD_BYTES:,}-byte limit; "
                     "split the document or send it as a file",
                     payload=payload[:4096])
    if b"\x00" in payload:
        return _dead(raw, digest, "decode", "binary",
                     "input contains NUL bytes: it looks binary, not a JSON post")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        return _dead(raw, digest, "decode", "invalid_utf8",
                     f"input is not valid UTF-8 (byte {e.start}: {payload[e.start:e.start + 4]!r}); "
                     "re-encode it as UTF-8")
    try:
        obj: Any = json.loads(text)
    except json.JSONDecodeError as e:
        return _dead(raw, digest, "parse", "invalid_json",
                     f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}")
    if not isinstance(obj, dict):
        return _dead(raw, digest, "validate", "schema",
                     f"expected a JSON object with 'id' and 'text', got a JSON {type(obj).__name__}")
    try:
        post = Post.model_validate(obj)
    except ValidationError as e:
        reason, message = _describe(e)
        doc_id = obj.get("id") if isinstance(obj.get("id"), str) else None
        source = obj.get("source") if isinstance(obj.get("source"), str) else None
        return _dead(raw, digest, "validate", reason, message,
                     doc_id=doc_id[:256] if doc_id else None,
                     source=source[:256] if source else None)
    return ParsedItem(raw=raw, post=post, sha256=digest,
                      parse_ms=(time.perf_counter() - t0) * 1000)
