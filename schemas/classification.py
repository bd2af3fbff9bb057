"""The output contract: one classified post."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class ModelRef(BaseModel):
    """Which model produced a result."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    name: str
    version: str
    weights_sha256: str = Field(description="sha256 over the artifact's weight files.")


class Entity(BaseModel):
    """A named entity found by spaCy (only with --entities)."""

    model_config = ConfigDict(frozen=True)

    text: str
    label: str
    start: int = Field(ge=0, description="Character offset in the cleaned text.")
    end: int = Field(ge=0)


class Classification(BaseModel):
    """One result row: the label of one post and how it was reached.

    Example:
        >>> c = Classification(doc_id="p1", source="", label="Sports", score=0.9,
        ...     scores={"Sports": 0.9, "World": 0.1},
        ...     model=ModelRef(name="m", version="1", weights_sha256="0" * 64))
        >>> c.needs_review
        False
    """

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    doc_id: str
    source: str = Field(description="Post source; empty string when the post named none.")
    label: str
    score: float = Field(ge=0.0, le=1.0, description="Calibrated probability of `label`.")
    scores: dict[str, float] = Field(description="Calibrated probability of every class.")
    model: ModelRef
    timings_ms: dict[str, float] = Field(
        default_factory=dict, description="Milliseconds spent per stage, per document."
    )
    entities: list[Entity] | None = Field(
        default=None, description="Named entities; present only when the run used --entities."
    )
    needs_review: bool = Field(
        default=False, description="True when `score` is below the review threshold."
    )
    n_chunks: int = Field(default=1, ge=1, description="Model windows the text was split into.")
    n_tokens: int = Field(
        default=0, ge=0, description="Model wordpieces in the cleaned text, before windowing."
    )
