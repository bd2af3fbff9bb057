"""Strict, bounded JSON for untrusted posts: limits checked before and while parsing.

`json.loads` alone accepts things a post must not carry, or dies on them:

- nesting thousands of levels deep raises `RecursionError` (and with a raised recursion limit
  the C parser can overflow the C stack): `nesting_too_deep` pre-scans the text first;
- an integer literal of thousands of digits raises `ValueError` (Python's int digit limit),
  a float literal like `1e999999` becomes `inf`;
- `NaN`, `Infinity` and `-Infinity` are not JSON, yet `json` accepts them;
- a repeated key silently keeps the last value (`{"id": "a", "id": "b"}`).

`loads` refuses each with a `JsonRefused` carrying a reason code and a sentence; the numbers,
constants and keys are checked by the decoder's own hooks, during the one parse.

Costs, on the benchmark's posts (~380 bytes, bench/rows/stages.py reports them as the parse
stage's "input checks"): the pre-scan's fast path (counting brackets) takes 0.3-0.5 µs and the
hooks add a few tenths of a microsecond over `json.loads`; about 1 µs per post together. Text
with more than `MAX_DEPTH` brackets (quoting code, say) pays one regex pass to drop string
literals. The worst case, a 1 MiB payload of nothing but brackets, costs the pre-scan 25-35 ms,
less than `json.loads` then spends on the same bytes (50-130 ms).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from docstream.errors import DocstreamError

MAX_DEPTH = 64  # nested arrays/objects; a post is 2 deep, its metadata a few more
MAX_NUMBER_CHARS = 100  # one number literal, sign, point and exponent included

# One JSON string literal, or an unterminated one up to the end of the input. Possessive
# quantifiers and the "or the end" branch make every '"' start a match that never backtracks,
# so the substitution is linear even for inputs full of quotes and backslashes.
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_OPEN = frozenset(b"[{")


class JsonRefused(DocstreamError):
    """Input that is not acceptable JSON for a post: `reason` is the dead letter's code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def nesting_depth(payload: bytes, stop_above: int = MAX_DEPTH) -> int:
    """How deep arrays and objects nest in `payload`, outside string literals.

    Counting stops once the depth exceeds `stop_above` (the answer is then `stop_above + 1`).
    Unbalanced or invalid input gets a number too; the parser rejects it afterwards.

    Example:
        >>> nesting_depth(b'{"a": [1, {"b": "[[[["}]}')
        3
    """
    return _depth(_STRING.sub(b"", payload).translate(None, _NOT_BRACKETS), stop_above)


def _depth(brackets: bytes, stop_above: int) -> int:
    depth = deepest = 0
    for b in brackets:
        if b in _OPEN:
            depth += 1
            if depth > deepest:
                deepest = depth
                if deepest > stop_above:
                    break
        else:
            depth -= 1
    return deepest


def nesting_too_deep(text: str) -> JsonRefused | None:
    """A refusal when the JSON `text` nests deeper than MAX_DEPTH, else None. Run it before
    parsing. It cannot nest deeper than it has opening brackets: the common case costs one
    or two scans of the text, well under a microsecond for a 400-byte post."""
    opens = text.count("{")
    if "[" in text:  # str's `in` is a memchr; a count is not, and many posts have no array
        opens += text.count("[")
    if opens <= MAX_DEPTH or nesting_depth(text.encode("utf-8", "surrogatepass")) <= MAX_DEPTH:
        return None
    return JsonRefused(
        "too_deep",
        f"JSON nests arrays/objects more than {MAX_DEPTH} levels deep; a post is a flat object "
        "(metadata may nest a little): flatten the document")


def _number_too_long(literal: str) -> JsonRefused:
    return JsonRefused(
        "number_too_large",
        f"a number literal has {len(literal):,} characters ({literal[:20]}...), over the "
        f"{MAX_NUMBER_CHARS}-character limit; send it as a string if it must be kept")


def _parse_int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _number_too_long(literal)
    return int(literal)


def _parse_float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _number_too_long(literal)
    value = float(literal)
    if not math.isfinite(value):
        raise JsonRefused(
            "number_too_large",
            f"the number {literal} is beyond a 64-bit float's range (it would read as infinity); "
            "send it as a string if it must be kept")
    return value


def _parse_constant(name: str) -> float:
    raise JsonRefused(
        "invalid_json",
        f"{name} is not valid JSON (JSON numbers are finite); send null or a string instead")


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        key = ""
        for key, _ in pairs:
            if key in seen:
                break
            seen.add(key)
        raise JsonRefused(
            "duplicate_key",
            f"a JSON object repeats the key {key[:60]!r}; JSON readers disagree on which value "
            "wins, so docstream refuses it: send each key once")
    return obj


# Built once: json.loads with hooks would build a decoder per call. Sharing one between
# threads is safe (the C scanner keeps no per-parse state but a key memo it clears).
_DECODER = json.JSONDecoder(object_pairs_hook=_object, parse_int=_parse_int,
                            parse_float=_parse_float, parse_constant=_parse_constant)


def loads(text: str) -> Any:
    """Parse one JSON text strictly.

    Raises `JsonRefused` (numbers, constants, duplicate keys) or `json.JSONDecodeError`.
    Call `nesting_too_deep` on the text first: this does not bound the depth itself.

    Example:
        >>> loads('{"id": "a", "n": 1.5}')
        {'id': 'a', 'n': 1.5}
        >>> try:
        ...     loads('{"id": "a", "id": "b"}')
        ... except JsonRefused as e:
        ...     e.reason
        'duplicate_key'
    """
    return _DECODER.decode(text)
