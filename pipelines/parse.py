"""Bytes → Post: the named step where bad input is caught and explained.

`parse_raw` never raises for any input bytes: every failure to decode, parse or validate
becomes a dead letter with a short reason code and a sentence saying what is wrong and what
to do. The codes, by stage:

- decode: `oversize` (over MAX_PAYLOAD_BYTES), `binary` (NUL bytes), `invalid_utf8`;
- parse: `invalid_json` (including NaN/Infinity), `too_deep` (nesting over
  json_guard.MAX_DEPTH), `number_too_large` (a literal over json_guard.MAX_NUMBER_CHARS
  characters, or a float that overflows), `duplicate_key` (an object repeating a key);
- validate: `schema`, `empty_text`, `oversize` (text over MAX_TEXT_CHARS),
  `forbidden_character` (NUL or a lone surrogate in a string, a control character in id,
  source or lang; see schemas/post.py);
- parse: `internal_error` only if parsing itself has a bug (never expected: the fuzz tests
  in tests/pipelines/test_parse_fuzz.py assert it never happens); the job still goes on.

One leading UTF-8 byte order mark is skipped (some producers and editors write one).
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

from pydantic import ValidationError

from docstream.schemas.dead_letter import DeadLetter
from docstream.schemas.envelope import FailedRecord
from docstream.schemas.post import MAX_TEXT_CHARS, Post, forbidden_character

from .json_guard import JsonRefused, loads, nesting_too_deep
from .records import ParsedItem, RawInput

MAX_PAYLOAD_BYTES = 1_048_576  # 1 MiB: a post's JSON is far below; above it, the input is refused
UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_UTF16 = "input starts with a UTF-16 byte order mark: re-encode it as UTF-8"
_JSON_TYPES = {list: "array", str: "string", int: "number", float: "number", bool: "boolean",
               type(None): "null"}


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _storable(value: Any) -> str | None:
    """A dead letter's doc_id/source: the input's own value when it can be stored, else None."""
    if not isinstance(value, str) or forbidden_character(value, controls=True):
        return None
    return value[:256] or None


def _shown(text: str) -> str:
    """`text` for an error message: what a reader cannot see or the store cannot hold (controls,
    NUL, lone surrogates, invisible format characters) escaped as in Python source."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _dead(raw: RawInput, digest: str, stage: str, reason: str, error: str,
          doc_id: str | None = None, source: str | None = None,
          payload: bytes | None = None) -> FailedRecord:
    return FailedRecord(
        dead_letter=DeadLetter(
            position=raw.position, payload=raw.payload if payload is None else payload,
            key=raw.key, doc_id=doc_id, source=source, stage=stage,  # type: ignore[arg-type]
            reason=reason, error=error,
        ),
        input_sha256=digest, replay_of=raw.replay_of,
    )


def _describe(e: ValidationError) -> tuple[str, str]:
    """A short reason code and a readable sentence for a pydantic error."""
    parts = []
    reason = "schema"
    for err in e.errors(include_url=False, include_context=False, include_input=False)[:5]:
        loc = _shown(".".join(str(x) for x in err["loc"])) or "post"  # dict keys are input
        kind = err["type"]
        if loc == "text" and kind == "string_too_long":
            reason = "oversize"
            parts.append(f"text has more than {MAX_TEXT_CHARS:,} characters; split the document")
            continue
        if kind == "forbidden_character":
            reason = "forbidden_character"
            parts.append(f"field '{loc}' {err['msg']}")
            continue
        if kind == "string_unicode":  # pydantic refuses lone surrogates in a str itself
            reason = "forbidden_character"
            parts.append(f"field '{loc}' contains a lone UTF-16 surrogate (an unpaired \\ud800-"
                         "\\udfff escape), which is not valid Unicode and cannot be stored; fix "
                         "the producer's JSON encoding")
            continue
        if loc == "text" and kind == "value_error":
            reason = "empty_text"
        parts.append(f"field '{loc}': {_shown(err['msg'])}")
    return reason, "; ".join(parts)


def parse_raw(raw: RawInput) -> ParsedItem | FailedRecord:
    """Decode, parse and validate one input. Never raises for bad data.

    Example:
        >>> from docstream.schemas.position import InputPosition
        >>> pos = InputPosition(kind="file", file="x.jsonl", line=1)
        >>> parse_raw(RawInput(pos, b'{"id": "a", "text": "hi"}')).post.id
        'a'
        >>> parse_raw(RawInput(pos, b'{"id": "a"')).dead_letter.reason
        'invalid_json'
    """
    t0 = time.perf_counter()
    digest = sha256(raw.payload)
    try:
        out = _parse(raw, digest)
    except Exception as e:  # a bug here must cost one dead letter, not the job
        return _dead(raw, digest, "parse", "internal_error",
                     f"parsing failed unexpectedly ({e.__class__.__name__}: {str(e)[:200]!r}); "
                     "this is a docstream bug: report it with this dead letter's payload")
    if isinstance(out, FailedRecord):
        return out
    return ParsedItem(raw=raw, post=out, sha256=digest, parse_ms=(time.perf_counter() - t0) * 1000)


def _parse(raw: RawInput, digest: str) -> Post | FailedRecord:
    payload = raw.payload
    if raw.unreadable is not None:
        reason, message = raw.unreadable
        return _dead(raw, digest, "decode", reason, message)
    if len(payload) > MAX_PAYLOAD_BYTES:
        return _dead(raw, digest, "decode", "oversize",
                     f"input is {len(payload):,} bytes, over the {MAX_PAYLOAD_BYTES:,}-byte limit; "
                     "split the document or send it as a file",
                     payload=payload[:4096])
    if b"\x00" in payload:
        if payload[:2] in _UTF16_BOMS:
            return _dead(raw, digest, "decode", "invalid_utf8", _UTF16)
        return _dead(raw, digest, "decode", "binary",
                     "input contains NUL bytes: it looks binary, not a JSON post")
    skip = 3 if payload.startswith(UTF8_BOM) else 0
    if skip:
        payload = payload[skip:]
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        if payload[:2] in _UTF16_BOMS:
            return _dead(raw, digest, "decode", "invalid_utf8", _UTF16)
        return _dead(raw, digest, "decode", "invalid_utf8",
                     f"input is not valid UTF-8 (byte {skip + e.start}: "
                     f"{payload[e.start:e.start + 4]!r}); re-encode it as UTF-8")
    refused = nesting_too_deep(text)
    if refused is not None:
        return _dead(raw, digest, "parse", refused.reason, refused.message)
    try:
        obj: Any = loads(text)
    except JsonRefused as e:
        return _dead(raw, digest, "parse", e.reason, e.message)
    except json.JSONDecodeError as e:
        return _dead(raw, digest, "parse", "invalid_json",
                     f"invalid JSON at line {e.lineno} column {e.colno}: {e.msg}")
    except RecursionError:  # the pre-scan bounds depth; this is the belt to its braces
        return _dead(raw, digest, "parse", "too_deep",
                     "JSON nests too deep for the parser; flatten the document")
    if not isinstance(obj, dict):
        got = _JSON_TYPES.get(type(obj), "value")
        return _dead(raw, digest, "validate", "schema",
                     f"expected a JSON object with 'id' and 'text', got a JSON {got}")
    try:
        return Post.model_validate(obj)
    except ValidationError as e:
        reason, message = _describe(e)
        return _dead(raw, digest, "validate", reason, message,
                     doc_id=_storable(obj.get("id")), source=_storable(obj.get("source")))
