"""Where an input came from: a file line now, a Kafka offset in streaming."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class InputPosition(BaseModel):
    """One input position; `ref` is its stable, unique string form.

    Example:
        >>> InputPosition(kind="file", file="posts.jsonl", line=3).ref
        'file:posts.jsonl:3'
    """

    model_config = ConfigDict(frozen=True)

    kind: Literal["file", "kafka"]
    file: str | None = None
    line: int | None = Field(default=None, ge=1)
    topic: str | None = None
    partition: int | None = Field(default=None, ge=0)
    offset: int | None = Field(default=None, ge=0)

    @property
    def ref(self) -> str:
        if self.kind == "file":
            return f"file:{self.file}:{self.line}"
        return f"kafka:{self.topic}:{self.partition}:{self.offset}"
