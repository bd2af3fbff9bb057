"""Where each character of a cleaned text came from in the text it was cleaned from.

Cleaning (preprocess.clean) normalises unicode, strips HTML, rewrites social conventions and
collapses whitespace, and keeps no offsets. `align` recovers them with a two-level diff:
whitespace-separated words first (fast: a long post is a few thousand words), then the
characters inside the runs of words that differ. Every character of the cleaned text then
maps to a span of the original:

- a character kept as it was maps to itself (one character);
- a character that replaced something ("&amp;" → "&", "ﬁ" → "f","i", "@bob" → "@user")
  maps to the whole span it replaced;
- a character the cleaning added (the space that splits "#WorldCup") maps to an empty span
  at the place it was added.

So a word's span in the original is the smallest span covering its characters' spans: exact
for the words cleaning left alone, the rewritten region for a rewritten word.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from difflib import SequenceMatcher

import numpy as np

_WORD = re.compile(r"\S+")
#: a run of differing words longer than this (characters, both sides multiplied) is not
#: diffed character by character: each of its characters maps to the whole run
MAX_CHAR_DIFF = 4_000_000


@dataclass(frozen=True, slots=True)
class CharMap:
    """`starts[j]`, `ends[j]`: the span of the original that cleaned character j came from."""

    starts: np.ndarray
    ends: np.ndarray

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The original span of the cleaned span [start, end) (end > start)."""
        if not 0 <= start < end <= len(self.starts):
            raise ValueError(f"span [{start}, {end}) is outside the cleaned text "
                             f"(length {len(self.starts)})")
        return int(self.starts[start:end].min()), int(self.ends[start:end].max())


def identity(n: int) -> CharMap:
    idx = np.arange(n, dtype=np.int64)
    return CharMap(idx, idx + 1)


def _blank(ch: str) -> bool:
    """Whitespace, or a control or format character (zero-width space, BOM): what cleaning
    turns into a space or drops."""
    return ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf")


def _trim(text: str, start: int, end: int) -> tuple[int, int]:
    """[start, end) without blank characters at either end (unchanged if all blank)."""
    a, b = start, end
    while a < b and _blank(text[a]):
        a += 1
    while b > a and _blank(text[b - 1]):
        b -= 1
    return (a, b) if a < b else (start, end)


def _diff_chars(original: str, cleaned: str, o0: int, c0: int,
                starts: np.ndarray, ends: np.ndarray) -> None:
    """Map cleaned[c0 : c0+len(cleaned)] into original[o0 : o0+len(original)] by characters."""
    if len(original) * len(cleaned) > MAX_CHAR_DIFF:
        starts[c0 : c0 + len(cleaned)] = o0
        ends[c0 : c0 + len(cleaned)] = o0 + len(original)
        return
    ops = SequenceMatcher(None, original, cleaned, autojunk=False).get_opcodes()
    for tag, i1, i2, j1, j2 in ops:
        if tag == "equal":
            starts[c0 + j1 : c0 + j2] = np.arange(o0 + i1, o0 + i2)
            ends[c0 + j1 : c0 + j2] = np.arange(o0 + i1 + 1, o0 + i2 + 1)
        elif tag == "replace":  # the replaced text, without blanks the diff lumped in
            a, b = _trim(original, i1, i2)
            starts[c0 + j1 : c0 + j2] = o0 + a
            ends[c0 + j1 : c0 + j2] = o0 + b
        elif tag == "insert":
            starts[c0 + j1 : c0 + j2] = o0 + i1
            ends[c0 + j1 : c0 + j2] = o0 + i1
        # "delete": original characters nothing in the cleaned text comes from


def align(original: str, cleaned: str) -> CharMap:
    """Offsets of every character of `cleaned` in `original` (see the module docstring).

    Example:
        >>> m = align("<p>Big&nbsp;win  for @bob now</p>", "Big win for @user now")
        >>> m.span(0, 3), m.span(4, 7), m.span(13, 17)
        ((3, 6), (12, 15), (22, 25))
    """
    if original == cleaned:
        return identity(len(cleaned))
    starts = np.zeros(len(cleaned), dtype=np.int64)
    ends = np.zeros(len(cleaned), dtype=np.int64)
    o_words = [(m.start(), m.end()) for m in _WORD.finditer(original)]
    c_words = [(m.start(), m.end()) for m in _WORD.finditer(cleaned)]
    matcher = SequenceMatcher(None, [original[a:b] for a, b in o_words],
                              [cleaned[a:b] for a, b in c_words], autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for (oa, _ob), (ca, cb) in zip(o_words[i1:i2], c_words[j1:j2], strict=True):
                starts[ca:cb] = np.arange(oa, oa + cb - ca)
                ends[ca:cb] = starts[ca:cb] + 1
        elif j2 > j1:  # replace or insert: diff the characters of the two runs
            oa = o_words[i1][0] if i2 > i1 else (o_words[i1 - 1][1] if i1 else 0)
            ob = o_words[i2 - 1][1] if i2 > i1 else oa
            ca, cb = c_words[j1][0], c_words[j2 - 1][1]
            _diff_chars(original[oa:ob], cleaned[ca:cb], oa, ca, starts, ends)
    # whitespace between cleaned words (never part of a word): an empty span after the
    # previous character's, so that every character has a valid place
    last = 0
    for j, ch in enumerate(cleaned):
        if ch.isspace():
            starts[j] = ends[j] = last
        else:
            last = int(ends[j])
    return CharMap(starts, ends)
