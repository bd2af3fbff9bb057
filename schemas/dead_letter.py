"""An input that could not be classified, with a reason a person can act on."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .position import InputPosition

# "store": the database refused the record itself (e.g. a value it cannot hold); see store.writer
Stage = Literal[
    "decode", "parse", "validate", "preprocess", "inference", "postprocess", "store",
]


class DeadLetter(BaseModel):
    """One dead-lettered input. `reason` is a short machine code, `error` the readable text."""

    model_config = ConfigDict(frozen=True)

    position: InputPosition
    payload: bytes = Field(description="The raw input bytes (after redaction).")
    key: bytes | None = None
    doc_id: str | None = None
    source: str | None = None
    stage: Stage
    reason: str = Field(description="Short code, e.g. invalid_json, schema, empty_text, oversize.")
    error: str = Field(description="What went wrong and what to do about it.")
