"""Data contracts of docstream: every boundary is one of these pydantic v2 models."""

from .classification import Classification, Entity, ModelRef
from .dead_letter import DeadLetter, Stage
from .position import InputPosition
from .post import MAX_TEXT_CHARS, Post
from .review import Review, ReviewDecision, Reviewer

__all__ = [
    "MAX_TEXT_CHARS",
    "Classification",
    "DeadLetter",
    "Entity",
    "InputPosition",
    "ModelRef",
    "Post",
    "Review",
    "ReviewDecision",
    "Reviewer",
    "Stage",
]
