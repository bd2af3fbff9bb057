"""Spans of an original text carried into its redacted copy (explanations are computed on the
original text and stored against the redacted one).

A word outside every redacted span moves by the length change of the spans before it. Words
that touch a changed span are never carried: they become ONE entry per span holding what the
stored text holds there (e.g. "<EMAIL_ADDRESS>", a mask, a keyed hash; nothing for `redact`),
with their scores summed, so an explanation shows that the span mattered without ever storing
a word the policy removed. Spans of a type the policy keeps move like any text.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence
from typing import Any

from .anonymize import Edit


def _shift(edits: Sequence[Edit], pos: int) -> int:
    """Where original offset `pos` (outside every edit) is in the redacted text."""
    i = bisect_right([e.end for e in edits], pos)
    if i == 0:
        return pos
    e = edits[i - 1]
    return e.new_end + (pos - e.end)


def map_words(words: Sequence[dict[str, Any]], edits: Sequence[Edit],
              redacted: str) -> list[dict[str, Any]]:
    """`words` ({"text", "start", "end", "score", ...} over the original text) over the
    redacted text `redacted`, in order; see the module docstring."""
    changed = [e for e in edits if e.changed]
    out: list[dict[str, Any]] = []
    merged: dict[int, dict[str, Any]] = {}
    for w in words:
        start, end = int(w["start"]), int(w["end"])
        hit = next((i for i, e in enumerate(changed) if start < e.end and end > e.start), None)
        if hit is None:
            new_start = _shift(edits, start) if not _inside(edits, start) else _moved(edits, start)
            new_end = new_start + (end - start)
            entry = {**w, "start": new_start, "end": new_end}
            entry["text"] = redacted[new_start:new_end]
            out.append(entry)
            continue
        e = changed[hit]
        if hit in merged:
            for key in ("score", "raw"):
                if key in w and key in merged[hit]:
                    merged[hit][key] = float(merged[hit][key]) + float(w[key])
            continue
        entry = {**w, "start": e.new_start, "end": e.new_end,
                 "text": redacted[e.new_start:e.new_end], "redacted": e.entity_type}
        merged[hit] = entry
        out.append(entry)
    return [w for w in out if w["end"] > w["start"]]


def _inside(edits: Sequence[Edit], pos: int) -> bool:
    return any(e.start <= pos < e.end for e in edits)


def _moved(edits: Sequence[Edit], pos: int) -> int:
    """Offset `pos` inside a kept (unchanged) span: the same offset within its new span."""
    e = next(e for e in edits if e.start <= pos < e.end)
    return e.new_start + (pos - e.start)


def map_span(edits: Sequence[Edit], pos: int) -> int:
    """A boundary of the original text (a window's start or end) in the redacted text; one
    inside a redacted span goes to that span's end."""
    for e in edits:
        if e.start < pos < e.end:
            return e.new_end
    return _shift(edits, pos)
