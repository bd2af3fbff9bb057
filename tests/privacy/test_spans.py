"""Spans of an original text carried into its redacted copy (privacy.spans)."""

from __future__ import annotations

import re

import pytest

from docstream.privacy.anonymize import Edit
from docstream.privacy.policy import load_policy
from docstream.privacy.redact import PolicyRedactor
from docstream.privacy.spans import map_span, map_words


def words_of(text: str, score: float = 0.1) -> list[dict]:
    return [{"text": m.group(), "start": m.start(), "end": m.end(), "score": score,
             "raw": score} for m in re.finditer(r"\S+", text)]


def test_words_move_and_redacted_spans_become_one_placeholder() -> None:
    text = "Mail jane.doe@example.com or call +1 415 555 0100 today."
    red = "Mail <EMAIL> or call <PHONE> today."
    edits = [Edit("EMAIL_ADDRESS", 5, 25, 5, 12, True), Edit("PHONE_NUMBER", 34, 49, 21, 28, True)]
    out = map_words(words_of(text), edits, red)
    assert [w["text"] for w in out] == ["Mail", "<EMAIL>", "or", "call", "<PHONE>", "today."]
    assert all(red[w["start"]:w["end"]] == w["text"] for w in out)
    phone = out[4]
    assert phone["redacted"] == "PHONE_NUMBER" and phone["raw"] == pytest.approx(0.4)  # 4 words
    assert "jane" not in str(out) and "415" not in str(out)


def test_a_word_touching_a_span_is_never_carried() -> None:
    text = "Ask Kwame Mensah's team."
    red = "Ask <PERSON>'s team."
    edits = [Edit("PERSON", 4, 16, 4, 12, True)]
    out = map_words(words_of(text), edits, red)
    assert [w["text"] for w in out] == ["Ask", "<PERSON>", "team."]
    assert "Mensah" not in str(out)


def test_a_redact_operator_leaves_no_entry_and_kept_types_move() -> None:
    text = "Call 555-0100 from 10.0.0.1 now"
    red = "Call  from 10.0.0.1 now"  # phone redacted to nothing; IP kept by the policy
    edits = [Edit("PHONE_NUMBER", 5, 13, 5, 5, True), Edit("IP_ADDRESS", 19, 27, 11, 19, False)]
    out = map_words(words_of(text), edits, red)
    assert [w["text"] for w in out] == ["Call", "from", "10.0.0.1", "now"]
    assert map_span(edits, 0) == 0 and map_span(edits, 9) == 5 and map_span(edits, 31) == 23


def test_the_redactor_maps_exactly_what_it_stores() -> None:
    redactor = PolicyRedactor(load_policy("default"), None).load()
    text = "Write to ann.lee@example.org, or ring +44 20 7946 0958, about the merger."
    red, edits = redactor.redact_with_edits(text)
    assert red == redactor.redact_text(text)
    out = map_words(words_of(text), edits, red)
    assert all(red[w["start"]:w["end"]] == w["text"] for w in out)
    assert {w.get("redacted") for w in out} >= {"EMAIL_ADDRESS", "PHONE_NUMBER"}
    assert "ann.lee" not in str(out) and "7946" not in str(out)
