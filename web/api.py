"""The JSON API: results (filters, keyset pagination), one result, stats, dead letters
(without payloads), runs, model versions; and the one write, POST /api/reviews, which needs
a reviewer's token (`Authorization: Bearer dsr_…`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, HTTPException, Query, status
from sqlalchemy import text

from docstream.schemas.review import Review, ReviewDecision
from docstream.store import browse, registry, reviews, stats
from docstream.store.masking import mask_url
from docstream.store.migrate import current_revision
from docstream.store.times import as_utc

from .context import ServeContext, context
from .models import (
    DeadLetterPage,
    Health,
    ModelItem,
    ResultDetail,
    ResultPage,
    RunItem,
    Stats,
)

router = APIRouter(prefix="/api", tags=["api"])
Ctx = Annotated[ServeContext, Depends(context)]
Limit = Annotated[int, Query(ge=1, le=browse.MAX_PAGE)]


def result_filter(
    label: str | None = None,
    source: str | None = None,
    model_version: str | None = None,
    since: Annotated[datetime | None, Query(description="processed at or after (ISO 8601)")
                     ] = None,
    until: Annotated[datetime | None, Query(description="processed before (ISO 8601)")] = None,
    min_score: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    max_score: Annotated[float | None, Query(ge=0.0, le=1.0)] = None,
    needs_review: bool | None = None,
    reviewed: Annotated[bool | None, Query(description="has a human review")] = None,
) -> browse.ResultFilter:
    return browse.ResultFilter(
        label=label, source=source, model_version=model_version, since=since, until=until,
        min_score=min_score, max_score=max_score, needs_review=needs_review, reviewed=reviewed)


Filter = Annotated[browse.ResultFilter, Depends(result_filter)]


@router.get("/results", response_model=ResultPage)
def results(ctx: Ctx, f: Filter, order: browse.Order = "newest", limit: Limit = 50,
            cursor: str | None = None) -> browse.Page:
    """Results, newest first (or least sure first with order=score), one page at a time."""
    return browse.list_results(ctx.reader, f, order=order, limit=limit, cursor=cursor)


@router.get("/queue", response_model=ResultPage)
def queue(ctx: Ctx, f: Filter, limit: Limit = 50, cursor: str | None = None) -> browse.Page:
    """The review queue: flagged results nobody has reviewed, lowest calibrated score first
    (the other filters narrow it)."""
    f = f.model_copy(update={"needs_review": True, "reviewed": False})
    return browse.list_results(ctx.reader, f, order="score", limit=limit, cursor=cursor)


@router.get("/result", response_model=ResultDetail)
def result(ctx: Ctx, id: str, source: str = "") -> dict:
    """One result: all class scores, the stored (redacted) text, reviews, audit trail."""
    found = browse.get_result(ctx.reader, source, id)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no result {source!r}/{id!r}")
    return found


@router.get("/stats", response_model=Stats)
def overview(ctx: Ctx, bucket: Literal["hour", "day"] = "hour", since: datetime | None = None,
             until: datetime | None = None) -> dict:
    """Counts per label per hour or day, review shares, dead letters by reason, runs."""
    return stats.overview(ctx.reader, bucket=bucket, since=since, until=until)


@router.get("/dead-letters", response_model=DeadLetterPage)
def dead_letters(ctx: Ctx, reason: str | None = None, stage: str | None = None,
                 open: bool | None = None, limit: Limit = 50,
                 cursor: str | None = None) -> browse.Page:
    """Dead letters, newest first, without their payloads."""
    return browse.list_dead_letters(ctx.reader, reason=reason, stage=stage, open_only=open,
                                    limit=limit, cursor=cursor)


@router.get("/runs", response_model=list[RunItem])
def runs(ctx: Ctx, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict]:
    return browse.list_runs(ctx.reader, limit=limit)


@router.get("/models", response_model=list[ModelItem])
def models(ctx: Ctx) -> list[dict]:
    return [{"name": m.name, "version": m.version, "stage": m.stage,
             "weights_sha256": m.weights_sha256, "metrics": m.metrics,
             "registered_at": as_utc(m.registered_at), "promoted_at": as_utc(m.promoted_at)}
            for m in registry.list_versions(ctx.reader)]


@router.get("/health", response_model=Health)
def health(ctx: Ctx) -> Health:
    with ctx.reader.connect() as conn:
        conn.execute(text("SELECT 1"))
        revision = current_revision(conn)
    return Health(store=mask_url(ctx.reader.url), schema_revision=revision,
                  reviews_enabled=True)


def bearer_reviewer(ctx: Ctx, authorization: Annotated[str | None, Header()] = None) -> str:
    """The reviewer named by `Authorization: Bearer TOKEN`, else 401."""
    scheme, _, token = (authorization or "").partition(" ")
    name = reviews.authenticate(ctx.reviewer, token.strip()) if scheme.lower() == "bearer" \
        else None
    if name is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "a review needs a reviewer's token: Authorization: Bearer TOKEN "
                            "(`docstream reviewers add NAME` prints one)",
                            headers={"WWW-Authenticate": "Bearer"})
    return name


@router.post("/reviews", response_model=Review, status_code=status.HTTP_201_CREATED)
def add_review(ctx: Ctx, decision: ReviewDecision,
               reviewer: Annotated[str, Depends(bearer_reviewer)]) -> Review:
    """Accept or relabel one result. Refused (409) when the result changed since
    `seen_version`/`seen_label`, or the label is not one of the model's."""
    target = reviews.result_for_review(ctx.reader, decision.source, decision.doc_id)
    if target is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND,
                            f"no result {decision.source!r}/{decision.doc_id!r}")
    return reviews.insert_review(ctx.reviewer, target, decision, reviewer)
