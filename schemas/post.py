"""The input contract: one post (news article or social-media post)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_TEXT_CHARS = 100_000
MAX_ID_CHARS = 256


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
    created_at: datetime | None = Field(default=None, description="ISO 8601 timestamp.")
    metadata: dict[str, Any] | None = None

    @field_validator("id")
    @classmethod
    def _id_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("id must contain a non-space character")
        return value

    @field_validator("text")
    @classmethod
    def _text_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("text is empty")
        return value

    @property
    def source_key(self) -> str:
        """The `source` part of the result key: empty when the post names none."""
        return self.source or ""
