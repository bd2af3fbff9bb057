"""Data contracts of docstream: every boundary is one of these pydantic v2 models."""

from schemas.classification import Classification, Entity, ModelRef
from schemas.dead_letter import DeadLetter, Stage
from schemas.position import InputPosition
from schemas.post import MAX_TEXT_CHARS, Post

__all__ = [
    "MAX_TEXT_CHARS",
    "Classification",
    "DeadLetter",
    "Entity",
    "InputPosition",
    "ModelRef",
    "Post",
    "Stage",
]
