"""Fixtures of the web tests: a store filled fast (rows inserted directly, no model run, no
pipeline), an app over it, and the reviewers' tokens.

What is in a seeded store is `Seed` (built by `make_seed`, deterministic): compute what a
test expects from it, never from the store itself.

- `seed_store(engine)`: migrate (a no-op at head) and insert a `Seed` into an empty store:
  120 results (3 sources, 4 labels, model versions 1 and 2, processed over 3 days and many
  hours, scores in (0, 1), every third one flagged `needs_review` with a stored `text`,
  groups of identical processed_at and of identical scores), 6 dead letters (with payloads),
  3 runs (2 with summaries), 2 registered model versions (2 in production), audit rows of
  a few posts, reviewer `ann` (active) and `bob` (revoked), and 9 reviews of 8 posts by ann.
- `store_kind` (module scope): "sqlite", then "postgres"; every fixture below follows it,
  so a test using any of them runs on both stores.
- `seeded` (module scope): a seeded store that tests only read. Never write to it: other
  tests of the module compare it with `Seed`.
- `scratch` (module scope): another seeded store that tests may write to; each test writes
  only about posts of its own (`SeededStore.scratch_post`, or rows it inserts) so that no
  test depends on another's writes.
- `api` / `scratch_api`: a FastAPI TestClient over `seeded` / `scratch` (read and review
  URL both the store's own; tests/web/test_api.py serves a PostgreSQL store with the reader
  and reviewer roles too).
"""

from __future__ import annotations

import hashlib
import itertools
import random
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from docstream.store import registry
from docstream.store.engine import make_engine
from docstream.store.migrate import upgrade
from docstream.store.reviews import add_reviewer, revoke_reviewer
from docstream.store.tables import (
    AuditRow,
    ClassificationRow,
    DeadLetterRow,
    ReviewRow,
    RunRow,
)
from docstream.web.app import create_app
from docstream.web.context import ServeContext
from docstream.web.settings import ServeSettings

BASE = datetime(2026, 3, 1, tzinfo=UTC)
LABELS = ("Business", "SciTech", "Sports", "World")
SOURCES = ("blog", "forum", "news")
MODEL = "news"
VERSIONS = ("1", "2")
N_RESULTS = 120
SECRET = b"s" * 32
#: (members, same source too): each group gets the processed_at of its first member
TIME_TIES = (((30, 33, 36), True), ((61, 64), True), ((90, 91, 92), False))
#: each group gets the score of its first member (and its source: ties then break on id)
SCORE_TIES = ((5, 8, 11), (40, 41), (70, 73))
#: the posts reviewed in the seed (by ann): (index, action, label or None for the model's)
#: post 0 twice: accepted first, relabelled an hour later (the latest review wins)
SEED_REVIEWS = ((0, "accept", None), (0, "relabel", "other"), (3, "relabel", "other"),
                (6, "accept", None), (9, "relabel", "other"), (12, "accept", None),
                (15, "relabel", "other"), (1, "accept", None), (2, "relabel", "other"))


def _other(label: str) -> str:
    return LABELS[(LABELS.index(label) + 1) % len(LABELS)]


def _scores(label: str, score: float) -> dict[str, float]:
    rest = [x for x in LABELS if x != label]
    weights = (0.5, 0.3, 0.2)
    out = {x: round((1 - score) * w, 4) for x, w in zip(rest, weights, strict=True)}
    return {label: score, **out}


def result_row(i: int, *, source: str, label: str, score: float, processed_at: datetime,
               version: str = "1", needs_review: bool = False,
               doc_id: str | None = None) -> dict[str, Any]:
    """A `classifications` row as the writer stores it (all fields filled)."""
    doc_id = doc_id or f"p{i:03d}"
    return {
        "source": source, "id": doc_id, "label": label, "score": score,
        "scores": _scores(label, score), "needs_review": needs_review, "model_name": MODEL,
        "model_version": version, "weights_sha256": version * 64, "kind": "post",
        "title": f"Title {doc_id}", "created_at": processed_at - timedelta(days=1),
        "n_chunks": 1 + i % 2, "n_tokens": 10 + i, "entities": None,
        "text": (f"Post {doc_id}: <b>flagged</b> & kept for review" if needs_review else None),
        "timings_ms": {"classify": 1.5}, "input_sha256": hashlib.sha256(doc_id.encode())
        .hexdigest(), "position": f"file:posts.jsonl:{i + 1}", "run_id": f"run-{version}",
        "processed_at": processed_at,
    }


@dataclass
class Seed:
    """What `seed_store` inserts (times aware UTC)."""

    results: list[dict[str, Any]]
    dead_letters: list[dict[str, Any]]
    runs: list[dict[str, Any]]
    audit: list[dict[str, Any]]
    reviews: list[dict[str, Any]]
    models: list[dict[str, Any]]

    def result(self, doc_id: str) -> dict[str, Any]:
        return next(r for r in self.results if r["id"] == doc_id)

    def latest_review(self, doc_id: str) -> dict[str, Any] | None:
        mine = [r for r in self.reviews if r["doc_id"] == doc_id]
        return max(mine, key=lambda r: r["reviewed_at"]) if mine else None

    def reviewed_ids(self) -> set[str]:
        return {r["doc_id"] for r in self.reviews}


def make_seed() -> Seed:
    rng = random.Random(20260301)
    results = []
    for i in range(N_RESULTS):
        at = BASE + timedelta(days=rng.randrange(3), hours=rng.randrange(24),
                              minutes=rng.randrange(60), seconds=rng.randrange(60),
                              microseconds=rng.randrange(1, 10**6) if i % 4 else 0)
        label = LABELS[rng.randrange(4)]
        results.append(result_row(
            i, source=SOURCES[rng.randrange(3)], label=label,
            score=round(rng.uniform(0.02, 0.98), 4), processed_at=at,
            version=VERSIONS[1] if rng.random() < 0.35 else VERSIONS[0],
            needs_review=i % 3 == 0))
    for members, same_source in TIME_TIES:
        for m in members[1:]:
            results[m]["processed_at"] = results[members[0]]["processed_at"]
            if same_source:
                results[m]["source"] = results[members[0]]["source"]
    for members in SCORE_TIES:
        for m in members[1:]:
            r, first = results[m], results[members[0]]
            r.update(score=first["score"], scores=_scores(r["label"], first["score"]),
                     source=first["source"])
    dead = []
    for n, (reason, stage, resolved, kafka) in enumerate((
            ("bad_json", "decode", False, False), ("bad_json", "decode", True, False),
            ("bad_json", "decode", False, True), ("too_long", "preprocess", False, False),
            ("too_long", "preprocess", False, True), ("schema", "validate", True, False))):
        seen = BASE + timedelta(hours=5 * n + 1)
        dead.append({
            "position": f"kafka:posts:0:{n}" if kafka else f"file:bad.jsonl:{n + 1}",
            "input_kind": "kafka" if kafka else "file",
            "file": None if kafka else "bad.jsonl", "line": None if kafka else n + 1,
            "topic": "posts" if kafka else None, "partition": 0 if kafka else None,
            "offset": n if kafka else None, "key": b"KEY-SECRET" if kafka else None,
            "payload": f"PAYLOAD-SECRET-{n}".encode(), "doc_id": f"d{n}", "source": "news",
            "stage": stage, "reason": reason, "error": f"{reason} at {n}", "count": 1 + n % 2,
            "first_seen": seen - timedelta(minutes=30), "last_seen": seen, "run_id": "run-1",
            "resolved_at": seen + timedelta(hours=1) if resolved else None,
            "resolved_by": "run-2" if resolved else None,
        })
    # two dead letters seen at the same instant: their order breaks on position
    dead[4]["last_seen"] = dead[3]["last_seen"]
    dead[4]["first_seen"] = dead[3]["first_seen"]
    runs = [
        {"run_id": "run-1", "started_at": BASE, "finished_at": BASE + timedelta(seconds=4),
         "source": "posts.jsonl", "model": f"{MODEL}@1", "status": "succeeded",
         "summary": {"inputs": 82, "classified": 78, "dead_letters": 4, "seconds": 4.0,
                     "docs_per_s": 20.5}},
        {"run_id": "run-2", "started_at": BASE + timedelta(days=1),
         "finished_at": BASE + timedelta(days=1, seconds=2), "source": "posts.jsonl",
         "model": f"{MODEL}@2", "status": "succeeded",
         "summary": {"inputs": 44, "classified": 42, "dead_letters": 2, "seconds": 2.0,
                     "docs_per_s": 22.0}},
        {"run_id": "run-3", "started_at": BASE + timedelta(days=2), "finished_at": None,
         "source": "kafka://127.0.0.1:9092/posts", "model": f"{MODEL}@2",
         "status": "running", "summary": None},
    ]
    audit = []
    for doc_id in ("p001", "p002"):
        r = next(x for x in results if x["id"] == doc_id)
        for run, version in (("run-1", "1"), ("run-2", "2")):
            audit.append({
                "run_id": run, "position": r["position"], "doc_id": doc_id,
                "source": r["source"], "input_sha256": r["input_sha256"],
                "model_version": f"{MODEL}@{version}", "outcome": "classified",
                "stage": None, "timings_ms": {"classify": 1.0},
                "recorded_at": BASE + timedelta(days=int(version), minutes=1),
                "replay_of": None, "pii_policy": "redact", "pii_counts": {"EMAIL": 1},
                "chain": None, "prev_hash": None, "hash": None})
    reviews = []
    for n, (i, action, label) in enumerate(SEED_REVIEWS):
        r = results[i]
        reviews.append({
            "review_id": f"seed{n:02d}", "source": r["source"], "doc_id": r["id"],
            "action": action, "label": _other(r["label"]) if label else r["label"],
            "previous_label": r["label"], "previous_score": r["score"], "model_name": MODEL,
            "model_version": r["model_version"], "reviewer": "ann",
            "reviewed_at": BASE + timedelta(days=3, hours=n)})
    models = [{"name": MODEL, "version": v, "path": f"/models/{MODEL}-{v}",
               "weights_sha256": v * 64, "metrics": {"macro_f1": 0.8 + int(v) / 100}}
              for v in VERSIONS]
    return Seed(results, dead, runs, audit, reviews, models)


@dataclass
class SeededStore:
    """A seeded store: `url` reads and writes it (its owner or an administrator);
    `tokens`: reviewer name -> token (bob's is revoked)."""

    kind: str
    url: str
    engine: Engine
    seed: Seed
    tokens: dict[str, str]
    _taken: itertools.count = field(default_factory=lambda: itertools.count())

    def scratch_post(self, *, flagged: bool = True) -> dict[str, Any]:
        """A seeded post no test reviewed yet, for a test that writes about it (each call
        gives another one; unreviewed in the seed)."""
        reviewed = self.seed.reviewed_ids()
        candidates = [r for r in self.seed.results
                      if r["needs_review"] == flagged and r["id"] not in reviewed]
        return candidates[-1 - next(self._taken)]

    def auth(self, name: str = "ann") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}


def seed_store(engine: Engine, seed: Seed | None = None) -> tuple[Seed, dict[str, str]]:
    """Migrate (nothing when at head) and insert `seed` (default `make_seed()`) into an empty
    store; returns it with the reviewers' tokens."""
    seed = seed or make_seed()
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(insert(ClassificationRow), seed.results)
        conn.execute(insert(DeadLetterRow), seed.dead_letters)
        conn.execute(insert(RunRow), seed.runs)
        conn.execute(insert(AuditRow), seed.audit)
        conn.execute(insert(ReviewRow), seed.reviews)
    for m in seed.models:
        registry.register(engine, name=m["name"], version=m["version"], path=m["path"],
                          weights_sha256=m["weights_sha256"], metrics=m["metrics"])
    registry.promote(engine, MODEL, VERSIONS[-1])
    tokens = {"ann": add_reviewer(engine, "ann"), "bob": add_reviewer(engine, "bob")}
    revoke_reviewer(engine, "bob")
    return seed, tokens


@contextmanager
def new_database(kind: str, request: pytest.FixtureRequest, directory: Path) -> Iterator[str]:
    """The URL of a new empty store (a SQLite file in `directory`, or a PostgreSQL database
    made for the caller and dropped after it), as its owner (the superuser on PostgreSQL)."""
    if kind == "sqlite":
        yield f"sqlite:///{directory / f'{uuid.uuid4().hex[:8]}.db'}"
        return
    server_url = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    server = create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(False)
    finally:
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


@contextmanager
def client_for(read_url: str, review_url: str | None = None) -> Iterator[TestClient]:
    """A TestClient over `create_app` (lifespan run: the context closes at the end)."""
    settings = ServeSettings(read_url=read_url, review_url=review_url or read_url,
                             secret=SECRET)
    with TestClient(create_app(ServeContext.open(settings))) as client:
        yield client


@contextmanager
def _seeded(kind: str, request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededStore]:
    with new_database(kind, request, tmp_path_factory.mktemp("web-store")) as url:
        engine = make_engine(url)
        try:
            seed, tokens = seed_store(engine)
            yield SeededStore(kind, url, engine, seed, tokens)
        finally:
            engine.dispose()


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="module")
def seeded(store_kind: str, request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededStore]:
    """A seeded store that tests only read (see the module docstring)."""
    with _seeded(store_kind, request, tmp_path_factory) as store:
        yield store


@pytest.fixture(scope="module")
def scratch(store_kind: str, request: pytest.FixtureRequest,
            tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeededStore]:
    """A seeded store that tests may write to, each about posts of its own."""
    with _seeded(store_kind, request, tmp_path_factory) as store:
        yield store


@pytest.fixture(scope="module")
def api(seeded: SeededStore) -> Iterator[TestClient]:
    with client_for(seeded.url) as client:
        yield client


@pytest.fixture(scope="module")
def scratch_api(scratch: SeededStore) -> Iterator[TestClient]:
    with client_for(scratch.url) as client:
        yield client
