"""The review loop's contracts: a reviewer's decision on one result, and the stored review.

Lifecycle of a result (stated in the README, tested in tests/web and tests/store):
1. The job stores a result; below the review threshold it is flagged `needs_review` and its
   text is kept, redacted (`--store-text review`).
2. Flagged and without a review, it is in the review queue (lowest calibrated score first).
3. A reviewer accepts the model's label or relabels it: one `reviews` row (append-only). The
   post leaves the queue for good: a later run may re-flag it, but a reviewed post is never
   queued again.
4. A later model version that reclassifies the post changes only `classifications`; the
   human label is the latest review, shown beside the model's label (`docstream query`, the
   API, the pages), and `agrees` says whether the two still match.
5. `docstream reviews export` turns the latest review of each post into training data.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

ReviewAction = Literal["accept", "relabel"]
REVIEWER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")


class ReviewDecision(BaseModel):
    """What a reviewer submits: accept the model's label, or relabel the post.

    `seen_version` and `seen_label`, when given, are the model version and label the reviewer
    was shown: if the stored result changed since (a newer model reclassified it), the
    decision is refused so that it is not recorded against a result nobody saw."""

    model_config = ConfigDict(frozen=True, protected_namespaces=(), extra="forbid")

    source: str = Field(max_length=256, description="The post's source ('' when none).")
    doc_id: str = Field(min_length=1, max_length=256)
    action: ReviewAction
    label: str | None = Field(default=None, min_length=1, max_length=128,
                              description="The new label (relabel only).")
    seen_version: str | None = Field(default=None, max_length=64)
    seen_label: str | None = Field(default=None, max_length=128)

    @field_validator("label")
    @classmethod
    def _strip(cls, value: str | None) -> str | None:
        return value.strip() if value is not None else None


class Review(BaseModel):
    """One stored review (a `reviews` row)."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())

    review_id: str
    source: str
    doc_id: str
    action: ReviewAction
    label: str
    previous_label: str
    previous_score: float
    model_name: str
    model_version: str
    reviewer: str
    reviewed_at: datetime


class Reviewer(BaseModel):
    """A person allowed to review (never their token)."""

    model_config = ConfigDict(frozen=True)

    name: str
    created_at: datetime
    revoked_at: datetime | None = None
