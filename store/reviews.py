"""Reviewers and reviews: tokens (only their sha256 is stored), human decisions, exports.

Writes here are split by role on PostgreSQL (store/roles.py): `add_reviewer` and
`revoke_reviewer` need the owner (or an admin); `authenticate` and `insert_review` are all the
reviewer role may do (SELECT on reviewers, INSERT on reviews); the reads of results that a
decision checks against (`result_for_review`) go through the reader.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql import Subquery

from docstream.schemas.review import REVIEWER_NAME, Review, ReviewDecision, Reviewer

from .errors import StoreError
from .tables import ClassificationRow, ReviewerRow, ReviewRow
from .times import as_utc

TOKEN_PREFIX = "dsr_"  # so a leaked token is recognisable (secret scanners, logs)


class ReviewRefused(StoreError):
    """A decision that cannot be recorded; the message says why and what to do."""


def hash_token(token: str) -> str:
    """sha256 of a token. Tokens are 256 random bits, so a plain hash cannot be reversed."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_name(name: str) -> None:
    if not REVIEWER_NAME.fullmatch(name):
        raise StoreError(f"bad reviewer name {name!r}: 1-64 letters, digits and _.@-, "
                         "starting with a letter or digit")


def add_reviewer(engine: Engine, name: str, *, rotate: bool = False) -> str:
    """Create reviewer `name` and return their new token (shown once, never stored).
    With `rotate`, an existing (or revoked) reviewer gets a new token and the old one stops
    working; without it, an existing name is refused."""
    _check_name(name)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    with engine.begin() as conn:
        exists = conn.execute(select(ReviewerRow.name).where(ReviewerRow.name == name)).first()
        if exists and not rotate:
            raise StoreError(f"reviewer {name!r} exists; `docstream reviewers add {name} "
                             "--rotate` gives them a new token (the old one stops working)")
        if exists:
            conn.execute(update(ReviewerRow).where(ReviewerRow.name == name).values(
                token_sha256=hash_token(token), revoked_at=None))
        else:
            conn.execute(insert(ReviewerRow).values(
                name=name, token_sha256=hash_token(token), created_at=now))
    return token


def revoke_reviewer(engine: Engine, name: str) -> None:
    """End `name`'s token now (their reviews stay)."""
    with engine.begin() as conn:
        done = conn.execute(update(ReviewerRow).where(
            ReviewerRow.name == name, ReviewerRow.revoked_at.is_(None)).values(
            revoked_at=datetime.now(UTC))).rowcount
    if not done:
        raise StoreError(f"no active reviewer {name!r} (`docstream reviewers list`)")


def list_reviewers(engine: Engine) -> list[Reviewer]:
    with engine.connect() as conn:
        rows = conn.execute(select(ReviewerRow.name, ReviewerRow.created_at,
                                   ReviewerRow.revoked_at).order_by(ReviewerRow.name)).all()
    return [Reviewer(name=r.name, created_at=r.created_at, revoked_at=r.revoked_at)
            for r in rows]


def is_active(engine: Engine, name: str) -> bool:
    """Whether `name` may review now (exists, not revoked): a session outlives no revocation."""
    with engine.connect() as conn:
        return conn.execute(select(ReviewerRow.name).where(
            ReviewerRow.name == name, ReviewerRow.revoked_at.is_(None))).first() is not None


def authenticate(engine: Engine, token: str) -> str | None:
    """The active reviewer whose token this is, else None. The token's hash is compared with
    every active reviewer's in constant time (hmac.compare_digest), all of them every time,
    so neither the timing nor an index lookup tells how close a guess came."""
    if not token or len(token) > 200:
        return None
    candidate = hash_token(token).encode("ascii")
    with engine.connect() as conn:
        rows = conn.execute(select(ReviewerRow.name, ReviewerRow.token_sha256).where(
            ReviewerRow.revoked_at.is_(None))).all()
    found: str | None = None
    for name, stored in rows:
        if hmac.compare_digest(candidate, stored.encode("ascii")) and found is None:
            found = name
    return found


@dataclass(frozen=True)
class ReviewTarget:
    """The stored result a decision is about, as the reader sees it now."""

    source: str
    doc_id: str
    label: str
    score: float
    labels: tuple[str, ...]
    model_name: str
    model_version: str


def result_for_review(engine: Engine, source: str, doc_id: str) -> ReviewTarget | None:
    c = ClassificationRow
    with engine.connect() as conn:
        row = conn.execute(select(c.label, c.score, c.scores, c.model_name, c.model_version)
                           .where(c.source == source, c.id == doc_id)).first()
    if row is None:
        return None
    return ReviewTarget(source=source, doc_id=doc_id, label=row.label, score=float(row.score),
                        labels=tuple(sorted(row.scores or {})), model_name=row.model_name,
                        model_version=row.model_version)


def check_decision(target: ReviewTarget | None, decision: ReviewDecision) -> str:
    """The label the decision gives, or ReviewRefused saying why it cannot be recorded."""
    where = f"result {decision.source!r}/{decision.doc_id!r}"
    if target is None:
        raise ReviewRefused(f"no {where} in the store")
    if decision.seen_version is not None and decision.seen_version != target.model_version:
        raise ReviewRefused(f"{where} was reclassified by model version "
                            f"{target.model_version} since you opened it (you saw "
                            f"{decision.seen_version}); reload it and decide again")
    if decision.seen_label is not None and decision.seen_label != target.label:
        raise ReviewRefused(f"{where} is now labelled {target.label!r} (you saw "
                            f"{decision.seen_label!r}); reload it and decide again")
    if decision.action == "accept":
        if decision.label is not None and decision.label != target.label:
            raise ReviewRefused(f"accept keeps the model's label {target.label!r}; "
                                f"use relabel for {decision.label!r}")
        return target.label
    if decision.label is None:
        raise ReviewRefused("relabel needs the new label")
    if decision.label not in target.labels:
        raise ReviewRefused(f"unknown label {decision.label!r} for {where}; the model's "
                            f"labels are {', '.join(target.labels)}")
    return decision.label


def insert_review(engine: Engine, target: ReviewTarget, decision: ReviewDecision,
                  reviewer: str) -> Review:
    """Record one decision (checked by `check_decision`) as a new `reviews` row. A plain
    INSERT with a client-made id: the reviewer role may insert and nothing else."""
    label = check_decision(target, decision)
    review = Review(
        review_id=uuid.uuid4().hex, source=target.source, doc_id=target.doc_id,
        action="relabel" if label != target.label else "accept", label=label,
        previous_label=target.label, previous_score=target.score,
        model_name=target.model_name, model_version=target.model_version, reviewer=reviewer,
        reviewed_at=datetime.now(UTC))
    try:
        with engine.begin() as conn:
            conn.execute(insert(ReviewRow).values(**review.model_dump()))
    except IntegrityError as e:  # a uuid4 collision: practically never
        raise StoreError(f"could not record the review of {target.doc_id!r}: {e.orig}") from e
    return review


def reviews_of(engine: Engine, source: str, doc_id: str) -> list[Review]:
    """Every review of one post, oldest first (the last one is its human label)."""
    with engine.connect() as conn:
        rows = conn.execute(select(*ReviewRow.__table__.c).where(
            ReviewRow.source == source, ReviewRow.doc_id == doc_id)
            .order_by(ReviewRow.reviewed_at, ReviewRow.review_id)).all()
    return [Review.model_validate({**r._mapping, "reviewed_at": as_utc(r.reviewed_at)})
            for r in rows]


def latest_reviews_query() -> Subquery:
    """A subquery: the latest review of each post (source, doc_id, label, reviewer,
    reviewed_at). Ties on reviewed_at (same microsecond) break on review_id."""
    r = ReviewRow
    ranked = select(
        r.source, r.doc_id, r.label, r.reviewer, r.reviewed_at, r.action,
        func.row_number().over(partition_by=(r.source, r.doc_id),
                               order_by=(r.reviewed_at.desc(), r.review_id.desc())).label("n"),
    ).subquery("ranked_reviews")
    return select(ranked.c.source, ranked.c.doc_id, ranked.c.label, ranked.c.reviewer,
                  ranked.c.reviewed_at, ranked.c.action).where(ranked.c.n == 1).subquery(
        "latest_reviews")


@dataclass(frozen=True)
class LabelledText:
    """One training example from the reviews: the post's stored (redacted) text."""

    source: str
    doc_id: str
    text: str
    label: str
    reviewer: str
    reviewed_at: datetime


def reviewed_texts(engine: Engine, *, skipped: list[tuple[str, str]] | None = None
                   ) -> Iterator[LabelledText]:
    """The latest human label of every reviewed post with its stored text, in review order.
    Posts whose text the store does not hold (run with --store-text off) go to `skipped`."""
    latest = latest_reviews_query()
    c = ClassificationRow
    stmt = (select(latest.c.source, latest.c.doc_id, latest.c.label, latest.c.reviewer,
                   latest.c.reviewed_at, c.text)
            .join(c, (c.source == latest.c.source) & (c.id == latest.c.doc_id), isouter=True)
            .order_by(latest.c.reviewed_at, latest.c.source, latest.c.doc_id))
    with engine.connect() as conn:
        for row in conn.execute(stmt):
            if not row.text:
                if skipped is not None:
                    skipped.append((row.source, row.doc_id))
                continue
            yield LabelledText(source=row.source, doc_id=row.doc_id, text=row.text,
                               label=row.label, reviewer=row.reviewer,
                               reviewed_at=row.reviewed_at)
