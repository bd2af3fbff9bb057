"""An explanation as stored: token attributions of one result, over its stored text."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class WordAttribution(BaseModel):
    """One word of the stored text and its attribution towards the target label.

    `score` is normalised to [-1, 1] by the document's largest |attribution|; `raw` is the
    method's own value. `redacted` names the entity type when the entry stands for a span the
    privacy policy replaced (its text is then the placeholder the stored text holds)."""

    model_config = ConfigDict(frozen=True)

    text: str
    start: int = Field(ge=0)
    end: int = Field(ge=0)
    score: float = Field(ge=-1.0, le=1.0)
    raw: float = 0.0
    redacted: str | None = None


class WindowWeight(BaseModel):
    """One model window: its span in the stored text and the aggregator's weight for it."""

    model_config = ConfigDict(frozen=True)

    start: int = Field(ge=0)
    end: int = Field(ge=0)
    weight: float = Field(ge=0.0, le=1.0)


class StoredExplanation(BaseModel):
    """What the `explanations` table holds for (source, doc_id, model_version)."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    source: str
    doc_id: str
    model_name: str
    model_version: str
    target: str
    target_prob: float = Field(ge=0.0, le=1.0)
    method: str
    settings: dict[str, Any]
    delta: float
    words: list[WordAttribution]
    windows: list[WindowWeight]
    text_field: Literal["text", "title"] = "text"
    text_sha256: str = Field(min_length=64, max_length=64)
    pii_policy: str | None = None
    seconds: float = Field(ge=0.0)
    run_id: str | None = None
    computed_at: datetime
