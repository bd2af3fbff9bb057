"""Sentence starts from the model's own subword tokens: spaCy's Sentencizer rule, without a
second tokenisation.

Only texts longer than one model window need sentence boundaries (to cut windows there).
Running spaCy's tokenizer over those texts cost more than all the rest of preprocessing
together (benchmark `stages`). The model's encoding is read instead, through its character
offsets only, so any subword scheme works: each token's text is split into units, a
punctuation mark per unit and the runs of other characters between them, with whitespace
left out. WordPiece tokens are such units already; a SentencePiece piece such as "▁U" or
"s." and a byte-level BPE piece such as '."' are split, and a piece that is only a space
("▁", "Ġ") gives no unit. spaCy's rule-based Sentencizer is then applied to the units:

- a sentence ends at one of spaCy's sentence-final characters (`.`, `!`, `?`, `。`, ...);
- the next sentence starts at the first following token that is not punctuation (closing
  quotes and brackets stay with the sentence they close);
- spaCy's tokenizer keeps "U.S.", "Corp." or "Mr." whole thanks to its exceptions; here a
  boundary also needs whitespace before the new sentence ("3.5" never splits) and no
  abbreviation before it: initials ("U.S.", "V.") or one of spaCy's own English tokenizer
  exceptions that end in a period.

`PreprocessConfig.sentences = "spacy"` selects spaCy's own tokenizer + Sentencizer instead.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator
from functools import lru_cache

from tokenizers import Encoding


@lru_cache(maxsize=1)
def sentence_final() -> frozenset[str]:
    """spaCy's Sentencizer.default_punct_chars (imported lazily: spaCy is heavy)."""
    from spacy.pipeline.sentencizer import Sentencizer

    return frozenset(Sentencizer.default_punct_chars)


_INITIALS = re.compile(r"(?:\w\.){2,}|[A-Z]\.")


@lru_cache(maxsize=1)
def abbreviations() -> frozenset[str]:
    """spaCy's English tokenizer exceptions that end in a period ("Corp.", "Jan.", "Calif.",
    "Mr.", "e.g." ...): where spaCy's own tokenizer would not end a sentence."""
    from spacy.lang.en import English

    return frozenset(k for k in English.Defaults.tokenizer_exceptions
                     if k.endswith(".") and len(k) > 1)


_LOOKBACK = 64  # characters: longer than any abbreviation; keeps the check O(1) per boundary


def _abbreviation_before(text: str, end: int) -> bool:
    head = text[max(0, end - _LOOKBACK) : end]
    word = head.rsplit(None, 1)[-1] if head.strip() else ""
    word = word.lstrip("\"'([{“‘").rstrip(",;:)]}\"'”’")
    return bool(_INITIALS.fullmatch(word)) or word in abbreviations()


def _is_punct(piece: str) -> bool:
    return len(piece) == 1 and unicodedata.category(piece).startswith("P")


#: a unit inside a token: a run of letters and digits, or any other single visible character
_UNIT = re.compile(r"[^\W_]+|\S")


def _units(text: str, offsets: list[tuple[int, int]]) -> Iterator[tuple[int, int]]:
    """(begin, end) of every unit of every token, in order (see the module docstring)."""
    for begin, end in offsets:
        if end <= begin:  # special or empty pieces carry no text
            continue
        if end - begin == 1 or text[begin:end].isalnum():  # most tokens: one unit already
            if not text[begin].isspace():
                yield begin, end
            continue
        for m in _UNIT.finditer(text, begin, end):
            yield m.start(), m.end()


def sentence_starts(text: str, encoding: Encoding) -> list[int]:
    """Character offsets where sentences begin; the first is always 0.

    `encoding` is the text's encoding by the model's tokenizer, any family (only its
    offsets are read).

    Example:
        >>> from docstream.model.tokenizer import load_tokenizer  # doctest: +SKIP
        >>> t = 'Rates rose. "Stocks fell!" The U.S. dollar held.'  # doctest: +SKIP
        >>> sentence_starts(t, load_tokenizer().encode(t, add_special_tokens=False))  # doctest: +SKIP
        [0, 12, 27]
    """
    finals = sentence_final()
    starts = [0]
    seen_final = False
    candidate: int | None = None  # first unit after the final that follows whitespace
    prev_end = 0
    for begin, end in _units(text, encoding.offsets):
        piece = text[begin:end]
        spaced = begin > prev_end and text[prev_end:begin].isspace()
        if seen_final and spaced and candidate is None:
            candidate = begin
        if piece in finals:
            seen_final, candidate = True, None
        elif seen_final and not _is_punct(piece):
            if (candidate is not None and candidate > starts[-1]
                    and not _abbreviation_before(text, candidate)):
                starts.append(candidate)
            seen_final, candidate = False, None
        prev_end = end
    return starts
