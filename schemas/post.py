"""The input contract: one post (news article or social-media post).

Characters a stored string may hold are the same for SQLite and PostgreSQL, and decided here:

- every string field (id, text, title, source, lang; `kind` is one of two words) refuses NUL
  (U+0000), which PostgreSQL text cannot hold, and lone UTF-16 surrogates (U+D800-U+DFFF, from
  an unpaired `\\ud800` escape), which are not Unicode scalar values and cannot be encoded as
  UTF-8 (pydantic refuses these itself, as `string_unicode`);
- the identifying fields `id`, `source` and `lang` also refuse every other control character
  (Unicode category Cc: U+0001-U+001F, U+007F-U+009F): they are keys and labels, and a tab,
  newline or escape in them is a producer bug that would make equal-looking keys differ;
- `text` and `title` keep the other controls: tabs and newlines are ordinary in text, and
  cleaning (preprocess/clean.py) removes the rest from what the model reads;
- `metadata` is not stored (results carry no metadata) and keeps what JSON allows, except
  lone surrogates in its keys, which pydantic refuses as in any str.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

MAX_TEXT_CHARS = 100_000
MAX_ID_CHARS = 256

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")  # Unicode category Cc


def forbidden_character(value: str, *, controls: bool) -> str | None:
    """What makes `value` unstorable, in words, or None when it is fine.

    NUL and lone surrogates always count; other control characters when `controls`.

    Example:
        >>> forbidden_character("a\\x00b", controls=False)
        'a NUL character (U+0000) at position 1'
        >>> forbidden_character("a\\tb", controls=False) is None
        True
    """
    if controls:
        if not value.isprintable() and (m := _CONTROL.search(value)):
            what = "a NUL character" if m.group() == "\x00" else "a control character"
            return f"{what} (U+{ord(m.group()):04X}) at position {m.start()}"
    elif "\x00" in value:
        return f"a NUL character (U+0000) at position {value.index(chr(0))}"
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as e:
            return f"a lone surrogate (U+{ord(value[e.start]):04X}) at position {e.start}"
    return None


def _refuse(problem: str, advice: str) -> PydanticCustomError:
    """The validation error for an unstorable string; its type is `forbidden_character`."""
    return PydanticCustomError("forbidden_character", "contains {problem}; {advice}",
                               {"problem": problem, "advice": advice})


class Post(BaseModel):
    """A post as it arrives from a file line or a Kafka message.

    Example:
        >>> Post.model_validate({"id": "p1", "text": "Stocks rallied.", "kind": "news"}).kind
        'news'
    """

    model_config = ConfigDict(extra="ignore", frozen=True, str_strip_whitespace=False)

    id: str = Field(min_length=1, max_length=MAX_ID_CHARS, description="Stable id of the post.")
    text: str = Field(
        max_length=MAX_TEXT_CHARS,
        description="Body text; must be non-empty after cleaning; at most 100,000 characters.",
    )
    title: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    source: str | None = Field(
        default=None, max_length=256, description="Feed or account the post came from."
    )
    kind: Literal["news", "social"] | None = None
    lang: str | None = Field(default=None, max_length=32)
    created_at: datetime | None = Field(
        default=None, description="ISO 8601 timestamp; without an offset it is taken as UTC. "
        "Stored as the UTC instant (years 1-9999).")
    metadata: dict[str, Any] | None = None

    @field_validator("id")
    @classmethod
    def _id_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("id must contain a non-space character")
        if not value.isprintable() and (problem := forbidden_character(value, controls=True)):
            raise _refuse(problem, "ids must be printable: remove tabs, newlines and other "
                          "control characters")
        return value

    @field_validator("source", "lang")
    @classmethod
    def _printable(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and not value.isprintable() and (
                problem := forbidden_character(value, controls=True)):
            name = info.field_name or "the field"
            raise _refuse(problem, f"{name} must be printable: "
                          "remove tabs, newlines and other control characters")
        return value

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        if "\x00" in value:
            raise _refuse(forbidden_character(value, controls=False) or "NUL",
                          "PostgreSQL cannot store it: remove NUL characters (\\u0000)")
        if not value.strip():
            raise ValueError("text is empty")
        return value

    @field_validator("title")
    @classmethod
    def _title_storable(cls, value: str | None) -> str | None:
        if value is not None and "\x00" in value:
            raise _refuse(forbidden_character(value, controls=False) or "NUL",
                          "PostgreSQL cannot store it: remove NUL characters (\\u0000)")
        return value

    @field_validator("created_at", mode="before")
    @classmethod
    def _created_at_is_text(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError("created_at must be an ISO 8601 string such as "
                             "2026-12-03T10:00:00Z; a number is ambiguous (seconds or "
                             "milliseconds since 1970?)")
        return value

    @field_validator("created_at")
    @classmethod
    def _created_at_in_utc(cls, value: datetime | None) -> datetime | None:
        """The UTC instant: both stores then hold and return the same time (SQLite keeps no
        offset), and one that UTC cannot express (past 9999 or before year 1) is refused
        here rather than stored as a value PostgreSQL cannot read back."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        try:
            return value.astimezone(UTC)
        except OverflowError as e:
            raise ValueError("created_at is outside the years 1-9999 once converted to UTC") from e

    @property
    def source_key(self) -> str:
        """The `source` part of the result key: empty when the post names none."""
        return self.source or ""
