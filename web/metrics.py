"""`GET /metrics` of `docstream serve`: store-level gauges for Prometheus, read at scrape time.

A custom collector (`StoreCollector`) runs a few aggregate queries over the app's read-only
engine (`ServeContext.reader`, the reader role on PostgreSQL) on each scrape, on one
connection: results by label, flagged results, the review queue (flagged, never reviewed:
the same rule as /api/queue), reviews by action, open dead letters by reason (the view
dead_letters_public, without payloads), runs by status and the newest processed_at. Nothing
is cached, so two scrapes a minute cost two rounds of these queries and nothing between.

Each app gets its own CollectorRegistry (kept in `app.state`), never prometheus_client's
global one: two apps in one process (tests) would otherwise register the same names twice.
A store that cannot be read gives `docstream_store_up 0` and none of the other gauges (an
absent series rather than a wrong one), with one warning in the log per failed scrape.

The gauges hold aggregates only (counts, labels, reasons, statuses): no post, id or text, so
the route needs no token, like the pages.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector
from sqlalchemy import Engine, and_, case, exists, func, select
from sqlalchemy.exc import SQLAlchemyError

from docstream.store.tables import ClassificationRow, DeadLettersPublic, ReviewRow, RunRow
from docstream.store.times import as_utc
from docstream.store.transient import driver_message

log = logging.getLogger(__name__)

router = APIRouter()
_LOCK = threading.Lock()


@dataclass
class StoreCounts:
    """What one scrape read from the store."""

    results: dict[str, int] = field(default_factory=dict)  # by label
    needs_review: int = 0
    review_queue: int = 0
    reviews: dict[str, int] = field(default_factory=dict)  # by action
    dead_open: dict[str, int] = field(default_factory=dict)  # by reason
    runs: dict[str, int] = field(default_factory=dict)  # by status
    last_processed: datetime | None = None


def read_counts(engine: Engine) -> StoreCounts:
    """The aggregates, in a handful of queries on one connection."""
    c, d = ClassificationRow, DeadLettersPublic.c
    out = StoreCounts()
    flagged = func.coalesce(func.sum(case((c.needs_review.is_(True), 1), else_=0)), 0)
    reviewed = exists().where(and_(ReviewRow.source == c.source, ReviewRow.doc_id == c.id))
    with engine.connect() as conn:
        for label, n, nr, last in conn.execute(
                select(c.label, func.count(), flagged, func.max(c.processed_at))
                .group_by(c.label)):
            out.results[label] = int(n)
            out.needs_review += int(nr or 0)
            last = _utc(last)
            if last is not None and (out.last_processed is None or last > out.last_processed):
                out.last_processed = last
        out.review_queue = int(conn.execute(
            select(func.count()).select_from(c).where(c.needs_review.is_(True), ~reviewed)
        ).scalar_one())
        out.reviews = {a: int(n) for a, n in conn.execute(
            select(ReviewRow.action, func.count()).group_by(ReviewRow.action))}
        out.dead_open = {r: int(n) for r, n in conn.execute(
            select(d.reason, func.count()).select_from(DeadLettersPublic)
            .where(d.resolved_at.is_(None)).group_by(d.reason))}
        out.runs = {s: int(n) for s, n in conn.execute(
            select(RunRow.status, func.count()).group_by(RunRow.status))}
    return out


def _utc(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite without the column's type applied
        value = datetime.fromisoformat(value)
    return as_utc(value)


def _gauge(name: str, doc: str, values: dict[str, int] | None = None, label: str = "",
           value: float | None = None) -> GaugeMetricFamily:
    if values is None:
        return GaugeMetricFamily(name, doc, value=value)
    g = GaugeMetricFamily(name, doc, labels=[label])
    for key, n in sorted(values.items()):
        g.add_metric([key], n)
    return g


class StoreCollector(Collector):
    """Store-level gauges, queried at each scrape (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        t0 = time.perf_counter()
        try:
            counts = read_counts(self.engine)
        except SQLAlchemyError as e:
            log.warning("metrics: the store could not be read: %s", driver_message(e))
            counts = None
        yield _gauge("docstream_store_up", "1 if this scrape could read the store, else 0",
                     value=0.0 if counts is None else 1.0)
        yield _gauge("docstream_store_scrape_duration_seconds", "Time the store queries of "
                     "this scrape took", value=time.perf_counter() - t0)
        if counts is None:
            return
        yield _gauge("docstream_store_results", "Results in the store, by label",
                     counts.results, "label")
        yield _gauge("docstream_store_needs_review", "Results flagged needs_review",
                     value=counts.needs_review)
        yield _gauge("docstream_store_review_queue", "Flagged results nobody has reviewed "
                     "yet (the review queue)", value=counts.review_queue)
        yield _gauge("docstream_store_reviews", "Reviews recorded, by action", counts.reviews,
                     "action")
        yield _gauge("docstream_store_dead_letters_open", "Dead letters not resolved by a "
                     "replay, by reason", counts.dead_open, "reason")
        yield _gauge("docstream_store_runs", "Job runs, by status", counts.runs, "status")
        if counts.last_processed is not None:
            yield _gauge("docstream_store_last_processed_timestamp_seconds", "When the newest "
                         "result was processed (Unix time)",
                         value=counts.last_processed.timestamp())


def registry_of(app: FastAPI) -> CollectorRegistry:
    """The app's own registry with its StoreCollector (made on the first scrape)."""
    with _LOCK:
        registry = getattr(app.state, "metrics_registry", None)
        if registry is None:
            registry = CollectorRegistry()
            registry.register(StoreCollector(app.state.ctx.reader))
            app.state.metrics_registry = registry
        return registry


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus exposition (text, or OpenMetrics when the scraper asks for it)."""
    encoder, content_type = choose_encoder(request.headers.get("accept", ""))
    return Response(encoder(registry_of(request.app)), media_type=content_type)
