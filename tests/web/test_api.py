"""The JSON API of `docstream serve` (web/api.py) on both stores, against a store filled
directly (tests/web/conftest.py: `Seed`): filters, keyset pagination, the review queue, one
result, stats, dead letters without payloads, runs, models, health, reviews (tokens,
refusals, the lifecycle of a human label), security headers, and on PostgreSQL the reader and
reviewer roles (least privilege).

Read-only tests use `api` (over `seeded`); tests that write use `scratch_api` and posts of
their own (`scratch.scratch_post()`).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, func, insert, select, text, update
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.pool import NullPool

from docstream.store.engine import make_engine
from docstream.store.migrate import head_revision
from docstream.store.roles import RoleNames, ensure_roles, role_url, upgrade_as_owner
from docstream.store.tables import ClassificationRow, ReviewRow
from tests.web.conftest import (
    BASE,
    LABELS,
    MODEL,
    SCORE_TIES,
    TIME_TIES,
    Seed,
    SeededStore,
    client_for,
    new_database,
    result_row,
    seed_store,
)

Row = dict[str, Any]


def newest_first(rows: list[Row]) -> list[str]:
    return [r["id"] for r in sorted(rows, key=lambda r: (r["processed_at"], r["source"],
                                                         r["id"]), reverse=True)]


def least_sure_first(rows: list[Row]) -> list[str]:
    return [r["id"] for r in sorted(rows, key=lambda r: (r["score"], r["source"], r["id"]))]


def all_pages(client: TestClient, path: str, params: dict[str, Any] | None = None,
              limit: int = 500) -> list[Row]:
    """Every item of every page (following next_cursor), checking each page's size."""
    items: list[Row] = []
    cursor = None
    while True:
        response = client.get(path, params={**(params or {}), "limit": limit,
                                            **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items
        assert len(page["items"]) == limit  # only a full page has a next one


def ids(items: list[Row]) -> list[str]:
    return [i["id"] for i in items]


def at(value: datetime, hours: int = 0) -> str:
    """`value` as ISO 8601 in another zone (UTC+hours): the API compares instants."""
    return value.astimezone(timezone(timedelta(hours=hours))).isoformat()


def tie_time(seed: Seed) -> datetime:
    return seed.results[TIME_TIES[0][0][0]]["processed_at"]


# --- GET /api/results: filters --------------------------------------------------------------

DAY2 = BASE + timedelta(days=1, hours=6, minutes=30)
DAY3 = BASE + timedelta(days=2, hours=3)
Spec = tuple[Callable[[Seed], dict[str, Any]], Callable[[Seed, Row], bool]]
FILTERS: dict[str, Spec] = {
    "label": (lambda s: {"label": "World"}, lambda s, r: r["label"] == "World"),
    "source": (lambda s: {"source": "forum"}, lambda s, r: r["source"] == "forum"),
    "model_version": (lambda s: {"model_version": "2"}, lambda s, r: r["model_version"] == "2"),
    "since": (lambda s: {"since": at(DAY2, 2)}, lambda s, r: r["processed_at"] >= DAY2),
    "until": (lambda s: {"until": at(DAY2, -5)}, lambda s, r: r["processed_at"] < DAY2),
    "since_inclusive": (lambda s: {"since": at(tie_time(s), 9)},
                        lambda s, r: r["processed_at"] >= tie_time(s)),
    "until_exclusive": (lambda s: {"until": at(tie_time(s), -3)},
                        lambda s, r: r["processed_at"] < tie_time(s)),
    "min_score": (lambda s: {"min_score": 0.7}, lambda s, r: r["score"] >= 0.7),
    "max_score": (lambda s: {"max_score": 0.3}, lambda s, r: r["score"] <= 0.3),
    "needs_review": (lambda s: {"needs_review": "true"}, lambda s, r: r["needs_review"]),
    "not_needs_review": (lambda s: {"needs_review": "false"},
                         lambda s, r: not r["needs_review"]),
    "reviewed": (lambda s: {"reviewed": "true"}, lambda s, r: r["id"] in s.reviewed_ids()),
    "not_reviewed": (lambda s: {"reviewed": "false"},
                     lambda s, r: r["id"] not in s.reviewed_ids()),
    "window_and_score": (
        lambda s: {"since": at(DAY2, 1), "until": at(DAY3, -1), "min_score": 0.25,
                   "max_score": 0.75},
        lambda s, r: DAY2 <= r["processed_at"] < DAY3 and 0.25 <= r["score"] <= 0.75),
    "label_source_version": (
        lambda s: {"label": "Sports", "source": "news", "model_version": "1"},
        lambda s, r: (r["label"], r["source"], r["model_version"]) == ("Sports", "news", "1")),
    "flagged_reviewed_forum": (
        lambda s: {"needs_review": "true", "reviewed": "true", "source": s.results[0]["source"]},
        lambda s, r: r["needs_review"] and r["id"] in s.reviewed_ids()
        and r["source"] == s.results[0]["source"]),
    "everything": (
        lambda s: {"label": "Business", "source": "blog", "model_version": "1",
                   "since": at(BASE, 3), "until": at(DAY3, 0), "min_score": 0.01,
                   "max_score": 0.99, "needs_review": "false", "reviewed": "false"},
        lambda s, r: (r["label"], r["source"], r["model_version"]) == ("Business", "blog", "1")
        and BASE <= r["processed_at"] < DAY3 and not r["needs_review"]
        and r["id"] not in s.reviewed_ids()),
    "nothing": (lambda s: {"label": "World", "min_score": 0.9, "max_score": 0.1},
                lambda s, r: False),
}


@pytest.mark.parametrize("name", FILTERS)
def test_results_filters(api: TestClient, seeded: SeededStore, name: str) -> None:
    params, keep = FILTERS[name]
    expected = [r for r in seeded.seed.results if keep(seeded.seed, r)]
    assert name == "nothing" or 0 < len(expected) < len(seeded.seed.results)
    got = all_pages(api, "/api/results", params(seeded.seed))
    assert ids(got) == newest_first(expected)


def test_results_items_carry_both_labels(api: TestClient, seeded: SeededStore) -> None:
    seed = seeded.seed
    items = all_pages(api, "/api/results")
    assert len(items) == len(seed.results)
    for item in items:
        row = seed.result(item["id"])
        for key in ("source", "label", "score", "needs_review", "model_version", "run_id",
                    "title", "n_chunks"):
            assert item[key] == row[key], key
        assert datetime.fromisoformat(item["processed_at"]) == row["processed_at"]
        review = seed.latest_review(item["id"])
        if review is None:
            assert (item["human_label"], item["reviewer"], item["agrees"]) == (None, None, None)
        else:
            assert item["human_label"] == review["label"] and item["reviewer"] == "ann"
            assert datetime.fromisoformat(item["reviewed_at"]) == review["reviewed_at"]
            assert item["agrees"] is (review["label"] == row["label"])
    # post 0: accepted, then relabelled: the latest review wins
    first = next(i for i in items if i["id"] == "p000")
    assert first["human_label"] != first["label"] and first["agrees"] is False


@pytest.mark.parametrize("params", [
    {"since": "yesterday"}, {"until": "2026-13-01T00:00:00Z"}, {"min_score": "-0.1"},
    {"min_score": "1.5"}, {"max_score": "high"}, {"needs_review": "maybe"},
    {"reviewed": "sometimes"}, {"order": "oldest"}, {"limit": "0"}, {"limit": "501"},
    {"limit": "ten"},
])
def test_results_invalid_values_are_422(api: TestClient, params: dict[str, str]) -> None:
    response = api.get("/api/results", params=params)
    assert response.status_code == 422, response.text
    assert response.json()["detail"]


# --- keyset pagination ---------------------------------------------------------------------

@pytest.mark.parametrize("order", ["newest", "score"])
def test_pages_of_seven_are_the_full_order(api: TestClient, seeded: SeededStore,
                                           order: str) -> None:
    items = all_pages(api, "/api/results", {"order": order}, limit=7)
    expected = (newest_first if order == "newest" else least_sure_first)(seeded.seed.results)
    assert ids(items) == expected
    assert len(set(ids(items))) == len(items) == len(seeded.seed.results)


def test_pages_break_ties_on_source_and_id(api: TestClient, seeded: SeededStore) -> None:
    """Rows with the same processed_at (or score) come one per page of one row, in key
    order, none twice or skipped."""
    seed = seeded.seed
    for members, _ in TIME_TIES:
        moment = seed.results[members[0]]["processed_at"]
        params = {"since": at(moment), "until": at(moment + timedelta(microseconds=1))}
        tied = [seed.results[m] for m in members]
        assert ids(all_pages(api, "/api/results", params, limit=1)) == newest_first(tied)
    for members in SCORE_TIES:
        score = seed.results[members[0]]["score"]
        params = {"order": "score", "min_score": score, "max_score": score}
        tied = [r for r in seed.results if r["score"] == score]
        assert len(tied) >= len(members)
        assert ids(all_pages(api, "/api/results", params, limit=1)) == least_sure_first(tied)


def test_filtered_pages_by_score(api: TestClient, seeded: SeededStore) -> None:
    expected = [r for r in seeded.seed.results if r["label"] == "World" and r["score"] < 0.8]
    got = all_pages(api, "/api/results", {"order": "score", "label": "World",
                                          "max_score": 0.8}, limit=7)
    assert ids(got) == least_sure_first(expected)


def test_a_newer_row_does_not_shift_the_next_page(scratch_api: TestClient,
                                                  scratch: SeededStore) -> None:
    before = ids(all_pages(scratch_api, "/api/results"))
    first = scratch_api.get("/api/results", params={"limit": 7}).json()
    assert ids(first["items"]) == before[:7]
    newest = max(r["processed_at"] for r in scratch.seed.results) + timedelta(days=1)
    doc_id = f"new{uuid.uuid4().hex[:6]}"
    with scratch.engine.begin() as conn:
        conn.execute(insert(ClassificationRow), [result_row(
            0, source="news", label="World", score=0.5, processed_at=newest, doc_id=doc_id)])
    second = scratch_api.get("/api/results",
                             params={"limit": 7, "cursor": first["next_cursor"]}).json()
    assert ids(second["items"]) == before[7:14]
    assert ids(scratch_api.get("/api/results", params={"limit": 1}).json()["items"]) == [doc_id]


def _cursor(*parts: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode().rstrip("=")


@pytest.mark.parametrize("cursor", [
    "garbage!", "%%%", "bm90IGpzb24", _cursor("newest"), _cursor("newest", 1),
    _cursor("newest", "not a time", "news", "p001"), _cursor("newest", None, "news", "p001"),
    _cursor("newest", "2026-03-01T00:00:00+00:00", 7, 8),
    _cursor("score", "high", "news", "p001"), _cursor("score", [], "news", "p001"),
    _cursor({"order": "newest"}), _cursor("dead", "2026-03-01T00:00:00+00:00", "x"),
])
def test_a_bad_cursor_is_400(api: TestClient, cursor: str) -> None:
    for order in ("newest", "score"):
        response = api.get("/api/results", params={"order": order, "cursor": cursor})
        assert response.status_code == 400, response.text
        assert "cursor" in response.json()["detail"]
        assert "next_cursor" in response.json()["detail"]


@pytest.mark.parametrize("cursor", [
    "garbage!", _cursor("dead"), _cursor("dead", "not a time", "x"), _cursor("dead", 5, "x"),
    _cursor("dead", "2026-03-01T00:00:00+00:00", 5), _cursor("dead", "2026-03-01", "x", "y"),
    _cursor("newest", "2026-03-01T00:00:00+00:00", "news", "p001"),
])
def test_a_bad_dead_letter_cursor_is_400(api: TestClient, cursor: str) -> None:
    response = api.get("/api/dead-letters", params={"cursor": cursor})
    assert response.status_code == 400, response.text
    assert "next_cursor" in response.json()["detail"]


def test_a_cursor_of_another_order_is_400(api: TestClient) -> None:
    by_score = api.get("/api/results", params={"order": "score", "limit": 7}).json()
    response = api.get("/api/results", params={"order": "newest",
                                               "cursor": by_score["next_cursor"]})
    assert response.status_code == 400
    assert "not for order=newest" in response.json()["detail"]
    dead = api.get("/api/dead-letters", params={"limit": 1}).json()["next_cursor"]
    assert api.get("/api/results", params={"cursor": dead}).status_code == 400
    assert api.get("/api/dead-letters", params={"cursor": by_score["next_cursor"]}
                   ).status_code == 400


# --- the review queue ------------------------------------------------------------------------

def test_queue_is_flagged_unreviewed_least_sure_first(api: TestClient,
                                                      seeded: SeededStore) -> None:
    seed = seeded.seed
    expected = [r for r in seed.results if r["needs_review"] and r["id"] not in
                seed.reviewed_ids()]
    items = all_pages(api, "/api/queue", limit=7)
    assert ids(items) == least_sure_first(expected)
    assert all(i["needs_review"] and i["human_label"] is None for i in items)
    # the other filters narrow it; needs_review/reviewed cannot widen it
    narrowed = all_pages(api, "/api/queue", {"source": "news", "needs_review": "false",
                                             "reviewed": "true"})
    assert ids(narrowed) == least_sure_first([r for r in expected if r["source"] == "news"])


def test_a_reviewed_post_leaves_the_queue(scratch_api: TestClient,
                                          scratch: SeededStore) -> None:
    post = scratch.scratch_post()
    assert post["id"] in ids(all_pages(scratch_api, "/api/queue"))
    response = scratch_api.post("/api/reviews", headers=scratch.auth(), json={
        "source": post["source"], "doc_id": post["id"], "action": "accept"})
    assert response.status_code == 201, response.text
    assert post["id"] not in ids(all_pages(scratch_api, "/api/queue"))


# --- one result --------------------------------------------------------------------------------

def test_one_result_in_full(api: TestClient, seeded: SeededStore) -> None:
    seed = seeded.seed
    row = seed.result("p000")  # flagged (text kept), reviewed twice
    got = api.get("/api/result", params={"source": row["source"], "id": "p000"}).json()
    assert got["scores"] == row["scores"]
    assert list(got["scores"].values()) == sorted(row["scores"].values(), reverse=True)
    assert got["text"] == row["text"] and "<b>flagged</b>" in got["text"]
    assert [r["review_id"] for r in got["reviews"]] == ["seed00", "seed01"]
    assert [r["action"] for r in got["reviews"]] == ["accept", "relabel"]
    assert all(datetime.fromisoformat(r["reviewed_at"]).tzinfo is not None
               for r in got["reviews"])
    assert got["human_label"] == got["reviews"][-1]["label"] != got["label"]
    for key in ("input_sha256", "position", "weights_sha256", "n_tokens", "timings_ms"):
        assert got[key] == row[key]
    assert got["audit"] == [] and got["explanation"] is None

    row = seed.result("p001")  # audit trail of two runs, not flagged: no text
    got = api.get("/api/result", params={"source": row["source"], "id": "p001"}).json()
    assert got["text"] is None
    trail = [a for a in seed.audit if a["doc_id"] == "p001"]
    assert [(a["run_id"], a["model_version"], a["outcome"], a["pii_counts"])
            for a in got["audit"]] == [(a["run_id"], a["model_version"], a["outcome"],
                                         a["pii_counts"]) for a in trail]
    assert [datetime.fromisoformat(a["recorded_at"]) for a in got["audit"]] == [
        a["recorded_at"] for a in trail]


def test_an_unknown_result_is_404(api: TestClient, seeded: SeededStore) -> None:
    row = seeded.seed.result("p001")
    other = next(s for s in ("blog", "forum", "news") if s != row["source"])
    for params in ({"source": row["source"], "id": "nope"}, {"source": other, "id": "p001"},
                   {"id": "p001"}):
        response = api.get("/api/result", params=params)
        assert response.status_code == 404 and "no result" in response.json()["detail"]
    assert api.get("/api/result").status_code == 422  # id is required


# --- stats -------------------------------------------------------------------------------------

def _bucket(value: datetime, bucket: str) -> str:
    return value.strftime("%Y-%m-%dT%H:00:00Z" if bucket == "hour" else "%Y-%m-%dT00:00:00Z")


def _expected_stats(seed: Seed, bucket: str, keep: Callable[[Row], bool]) -> dict[str, Any]:
    rows = [r for r in seed.results if keep(r)]
    counts: dict[str, Counter[str]] = {}
    for r in rows:
        counts.setdefault(_bucket(r["processed_at"], bucket), Counter())[r["label"]] += 1
    reviewed = [r for r in rows if r["id"] in seed.reviewed_ids()]
    flagged = [r for r in rows if r["needs_review"]]
    relabelled = {v["doc_id"] for v in seed.reviews if v["action"] == "relabel"} & {
        r["id"] for r in rows}
    return {
        "labels": sorted({r["label"] for r in rows}),
        "per_bucket": [{"bucket": b, "counts": dict(sorted(c.items()))}
                       for b, c in sorted(counts.items())],
        "results": len(rows), "needs_review": len(flagged),
        "needs_review_share": round(len(flagged) / len(rows), 4),
        "reviewed": len(reviewed), "reviewed_share": round(len(reviewed) / len(rows), 4),
        "reviewed_flagged": sum(r["needs_review"] for r in reviewed),
        "reviewed_of_flagged_share": round(sum(r["needs_review"] for r in reviewed)
                                           / len(flagged), 4),
        "relabelled": len(relabelled),
    }


@pytest.mark.parametrize("bucket", ["hour", "day"])
def test_stats(api: TestClient, seeded: SeededStore, bucket: str) -> None:
    seed = seeded.seed
    got = api.get("/api/stats", params={"bucket": bucket}).json()
    expected = _expected_stats(seed, bucket, lambda r: True)
    assert {k: got[k] for k in expected} == expected
    assert got["results"] == 120 and got["needs_review"] == 40
    assert got["needs_review_share"] == 0.3333
    assert len(got["per_bucket"]) == (3 if bucket == "day" else len(expected["per_bucket"]))
    reasons = Counter(d["reason"] for d in seed.dead_letters)
    still_open = Counter(d["reason"] for d in seed.dead_letters if d["resolved_at"] is None)
    assert got["dead_letters"] == [{"reason": r, "count": reasons[r], "open": still_open[r]}
                                   for r in sorted(reasons)]
    assert [(r["run_id"], r["docs_per_s"]) for r in got["runs"]] == [
        ("run-3", None), ("run-2", 22.0), ("run-1", 20.5)]


def test_stats_of_a_window(api: TestClient, seeded: SeededStore) -> None:
    got = api.get("/api/stats", params={"bucket": "hour", "since": at(DAY2, 4),
                                        "until": at(DAY3, -2)}).json()
    expected = _expected_stats(seeded.seed, "hour",
                               lambda r: DAY2 <= r["processed_at"] < DAY3)
    assert {k: got[k] for k in expected} == expected
    assert datetime.fromisoformat(got["since"]) == DAY2
    assert api.get("/api/stats", params={"bucket": "week"}).status_code == 422
    assert api.get("/api/stats", params={"since": "soon"}).status_code == 422


# --- dead letters, runs, models, health, OpenAPI ---------------------------------------------

def _dead_order(rows: list[Row]) -> list[str]:
    return [d["position"] for d in sorted(rows, key=lambda d: (d["last_seen"], d["position"]),
                                          reverse=True)]


@pytest.mark.parametrize("params, keep", [
    ({}, lambda d: True),
    ({"reason": "bad_json"}, lambda d: d["reason"] == "bad_json"),
    ({"stage": "preprocess"}, lambda d: d["stage"] == "preprocess"),
    ({"open": "true"}, lambda d: d["resolved_at"] is None),
    ({"open": "false"}, lambda d: d["resolved_at"] is not None),
    ({"reason": "bad_json", "open": "true"},
     lambda d: d["reason"] == "bad_json" and d["resolved_at"] is None),
    ({"reason": "bad_json", "stage": "preprocess"}, lambda d: False),
])
def test_dead_letters(api: TestClient, seeded: SeededStore, params: dict[str, str],
                      keep: Callable[[Row], bool]) -> None:
    expected = [d for d in seeded.seed.dead_letters if keep(d)]
    for limit in (2, 500):
        items = all_pages(api, "/api/dead-letters", params, limit=limit)
        assert [d["position"] for d in items] == _dead_order(expected)
    for item in items:
        assert "payload" not in item and "key" not in item
        row = next(d for d in seeded.seed.dead_letters if d["position"] == item["position"])
        assert (item["reason"], item["stage"], item["count"], item["error"]) == (
            row["reason"], row["stage"], row["count"], row["error"])
    raw = api.get("/api/dead-letters", params=params).text
    assert "SECRET" not in raw
    assert api.get("/api/dead-letters", params={"open": "perhaps"}).status_code == 422


def test_runs_models_health(api: TestClient, seeded: SeededStore) -> None:
    runs = api.get("/api/runs").json()
    assert [r["run_id"] for r in runs] == ["run-3", "run-2", "run-1"]
    run1 = runs[2]
    assert (run1["inputs"], run1["classified"], run1["dead_letters"], run1["seconds"],
            run1["docs_per_s"], run1["status"]) == (82, 78, 4, 4.0, 20.5, "succeeded")
    assert runs[0]["finished_at"] is None and runs[0]["docs_per_s"] is None
    assert [r["run_id"] for r in api.get("/api/runs", params={"limit": 1}).json()] == ["run-3"]
    assert api.get("/api/runs", params={"limit": 0}).status_code == 422

    models = api.get("/api/models").json()
    assert [(m["name"], m["version"], m["stage"]) for m in models] == [
        (MODEL, "1", "none"), (MODEL, "2", "production")]
    assert models[1]["metrics"] == seeded.seed.models[1]["metrics"]
    assert models[1]["weights_sha256"] == "2" * 64
    assert all(datetime.fromisoformat(m["registered_at"]).tzinfo is not None for m in models)

    health = api.get("/api/health").json()
    assert health["schema_revision"] == head_revision() and health["reviews_enabled"] is True
    assert health["store"].startswith(seeded.kind)


def test_openapi_lists_the_api_and_no_docs_pages(api: TestClient) -> None:
    spec = api.get("/openapi.json").json()
    assert set(spec["paths"]) == {
        "/api/results", "/api/queue", "/api/result", "/api/stats", "/api/dead-letters",
        "/api/runs", "/api/models", "/api/health", "/api/reviews"}
    assert list(spec["paths"]["/api/reviews"]) == ["post"]
    assert api.get("/docs").status_code == 404 and api.get("/redoc").status_code == 404


# --- POST /api/reviews -------------------------------------------------------------------------

def reviews_of(store: SeededStore, doc_id: str) -> list[Row]:
    with store.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(ReviewRow).where(ReviewRow.doc_id == doc_id)
            .order_by(ReviewRow.reviewed_at))]


def test_a_review_with_a_token_is_recorded(scratch_api: TestClient,
                                           scratch: SeededStore) -> None:
    post = scratch.scratch_post()
    new_label = next(label for label in LABELS if label != post["label"])
    response = scratch_api.post("/api/reviews", headers=scratch.auth(), json={
        "source": post["source"], "doc_id": post["id"], "action": "relabel",
        "label": new_label, "seen_version": post["model_version"],
        "seen_label": post["label"]})
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["action"], body["label"], body["previous_label"], body["reviewer"]) == (
        "relabel", new_label, post["label"], "ann")
    [stored] = reviews_of(scratch, post["id"])
    assert stored["review_id"] == body["review_id"]
    assert (stored["source"], stored["action"], stored["label"], stored["previous_label"],
            stored["previous_score"], stored["model_name"], stored["model_version"],
            stored["reviewer"]) == (post["source"], "relabel", new_label, post["label"],
                                    post["score"], MODEL, post["model_version"], "ann")
    shown = scratch_api.get("/api/result", params={"source": post["source"],
                                                   "id": post["id"]}).json()
    assert (shown["label"], shown["human_label"], shown["agrees"]) == (
        post["label"], new_label, False)


def test_unauthenticated_reviews_are_401(scratch_api: TestClient,
                                         scratch: SeededStore) -> None:
    post = scratch.scratch_post()
    decision = {"source": post["source"], "doc_id": post["id"], "action": "accept"}
    for headers in ({}, {"Authorization": "Bearer dsr_" + "x" * 43},
                    {"Authorization": "Bearer "}, {"Authorization": "Bearer " + "y" * 300},
                    {"Authorization": f"Basic {scratch.tokens['ann']}"},
                    {"Authorization": scratch.tokens["ann"]},
                    scratch.auth("bob")):  # revoked
        response = scratch_api.post("/api/reviews", headers=headers, json=decision)
        assert response.status_code == 401, (headers, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "token" in response.json()["detail"]
    # a bad body with no token: still 401 (nothing is said about the body to a stranger)
    assert scratch_api.post("/api/reviews", json={"bogus": 1}).status_code == 401
    assert reviews_of(scratch, post["id"]) == []


@pytest.mark.parametrize("change, status, words", [
    ({"action": "relabel", "label": "Cooking"}, 409, "unknown label 'Cooking'"),
    ({"action": "relabel"}, 409, "relabel needs the new label"),
    ({"action": "accept", "seen_version": "0"}, 409, "reclassified by model version"),
    ({"action": "accept", "seen_label": "Cooking"}, 409, "is now labelled"),
    ({"action": "accept", "label": "OTHER"}, 409, "accept keeps the model's label"),
    ({"action": "accept", "doc_id": "no-such-post"}, 404, "no result"),
    ({"action": "accept", "source": "elsewhere"}, 404, "no result"),
    ({"action": "accept", "note": "extra"}, 422, "note"),
    ({"action": "approve"}, 422, "action"),
    ({"action": "accept", "doc_id": ""}, 422, "doc_id"),
    ({"action": "relabel", "label": "x" * 129}, 422, "label"),
])
def test_refused_reviews(scratch_api: TestClient, scratch: SeededStore, change: Row,
                         status: int, words: str) -> None:
    post = scratch.scratch_post()
    other = next(label for label in LABELS if label != post["label"])
    decision = {"source": post["source"], "doc_id": post["id"], **change}
    if decision.get("label") == "OTHER":
        decision["label"] = other
    response = scratch_api.post("/api/reviews", headers=scratch.auth(), json=decision)
    assert response.status_code == status, response.text
    assert words in json.dumps(response.json()["detail"])
    assert reviews_of(scratch, post["id"]) == []


# --- lifecycle -----------------------------------------------------------------------------------

def rerun(engine: Engine, post: Row, *, label: str, version: str, score: float,
          needs_review: bool) -> None:
    """What a later run of another model version does to a stored result: the upsert
    replaces the model's fields (never a review)."""
    with engine.begin() as conn:
        conn.execute(update(ClassificationRow).where(
            ClassificationRow.source == post["source"], ClassificationRow.id == post["id"])
            .values(label=label, score=score, scores=result_row(
                0, source=post["source"], label=label, score=score,
                processed_at=post["processed_at"])["scores"], model_version=version,
                needs_review=needs_review, run_id=f"run-{version}",
                processed_at=datetime.now(UTC)))


def test_a_new_model_version_keeps_the_human_label(scratch_api: TestClient,
                                                    scratch: SeededStore) -> None:
    post = scratch.scratch_post()
    human = LABELS[(LABELS.index(post["label"]) + 1) % len(LABELS)]
    model = LABELS[(LABELS.index(post["label"]) + 2) % len(LABELS)]
    assert scratch_api.post("/api/reviews", headers=scratch.auth(), json={
        "source": post["source"], "doc_id": post["id"], "action": "relabel",
        "label": human}).status_code == 201
    rerun(scratch.engine, post, label=model, version="3", score=0.11, needs_review=True)

    shown = scratch_api.get("/api/result", params={"source": post["source"],
                                                   "id": post["id"]}).json()
    assert (shown["label"], shown["model_version"], shown["needs_review"]) == (
        model, "3", True)
    assert (shown["human_label"], shown["reviewer"], shown["agrees"]) == (human, "ann", False)
    assert [(r["previous_label"], r["model_version"]) for r in shown["reviews"]] == [
        (post["label"], post["model_version"])]
    listed = next(i for i in all_pages(scratch_api, "/api/results", {"reviewed": "true"})
                  if i["id"] == post["id"])
    assert (listed["label"], listed["human_label"], listed["agrees"]) == (model, human, False)
    # flagged again by the new model, but reviewed: never queued again
    assert post["id"] not in ids(all_pages(scratch_api, "/api/queue"))
    # a decision made against the old version is refused; against the new one it is taken
    stale = {"source": post["source"], "doc_id": post["id"], "action": "accept",
             "seen_version": post["model_version"]}
    assert scratch_api.post("/api/reviews", headers=scratch.auth(),
                            json=stale).status_code == 409
    fresh = {**stale, "seen_version": "3"}
    assert scratch_api.post("/api/reviews", headers=scratch.auth(),
                            json=fresh).status_code == 201
    shown = scratch_api.get("/api/result", params={"source": post["source"],
                                                   "id": post["id"]}).json()
    assert (shown["human_label"], shown["agrees"], len(shown["reviews"])) == (model, True, 2)


# --- headers -----------------------------------------------------------------------------------

def test_security_headers_on_every_response(api: TestClient, seeded: SeededStore) -> None:
    responses = [
        api.get(path) for path in (
            "/api/results", "/api/queue", "/api/stats", "/api/dead-letters", "/api/runs",
            "/api/models", "/api/health", "/openapi.json", "/docs", "/api/nope",
            "/api/result?id=nope", "/api/results?limit=0", "/api/results?cursor=x")]
    responses.append(api.get("/api/result", params={"source": seeded.seed.results[0]["source"],
                                                    "id": seeded.seed.results[0]["id"]}))
    responses.append(api.post("/api/reviews", json={}))
    assert {r.status_code for r in responses} == {200, 400, 401, 404, 422}
    for response in responses:
        csp = response.headers["Content-Security-Policy"]
        assert "'unsafe-inline'" not in csp and "'unsafe-eval'" not in csp
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"


# --- PostgreSQL with least privilege -------------------------------------------------------------

@dataclass(frozen=True)
class RoleStore:
    store: SeededStore
    names: RoleNames
    reader_url: str
    reviewer_url: str


def _drop_roles(server_url: str, names: RoleNames) -> None:
    server = create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        with server.connect() as conn:
            there = conn.execute(text("SELECT rolname FROM pg_roles WHERE rolname = ANY(:n)"),
                                 {"n": list(names.all())}).scalars().all()
            if there:
                conn.execute(text(f"DROP OWNED BY {', '.join(there)}"))
                for role in there:
                    conn.execute(text(f"DROP ROLE {role}"))
    finally:
        server.dispose()


@pytest.fixture(scope="module")
def role_store(postgres_server: str, request: pytest.FixtureRequest,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[RoleStore]:
    """A seeded PostgreSQL store set up the documented way (`db roles` as the administrator,
    `db upgrade` as the owner), its rows written by the administrator."""
    names = RoleNames(f"t{uuid.uuid4().hex[:8]}")
    try:
        with new_database("postgres", request, tmp_path_factory.mktemp("roles")) as url:
            admin = make_engine(url)
            owner = make_engine(role_url(url, names.owner).render_as_string(False))
            try:
                ensure_roles(admin, names)
                upgrade_as_owner(owner, names)
                seed, tokens = seed_store(admin)
                yield RoleStore(SeededStore("postgres", url, admin, seed, tokens), names,
                                role_url(url, names.reader).render_as_string(False),
                                role_url(url, names.reviewer).render_as_string(False))
            finally:
                owner.dispose()
                admin.dispose()
    finally:
        _drop_roles(postgres_server, names)


def test_least_privilege_serves_and_records_reviews(role_store: RoleStore) -> None:
    store = role_store.store
    reader = make_engine(role_store.reader_url)
    reviewer = make_engine(role_store.reviewer_url)
    try:  # the roles are as narrow as documented: the app must not need more
        for engine, table in ((reader, "reviewers"), (reviewer, "classifications"),
                              (reviewer, "reviews")):
            with pytest.raises(ProgrammingError, match="permission denied"), \
                    engine.connect() as conn:
                conn.execute(text(f"SELECT count(*) FROM {table}"))
    finally:
        reader.dispose()
        reviewer.dispose()

    post = store.scratch_post()
    with client_for(role_store.reader_url, role_store.reviewer_url) as client:
        for path in ("/api/results", "/api/queue", "/api/stats", "/api/dead-letters",
                     "/api/runs", "/api/models", "/api/health"):
            assert client.get(path).status_code == 200, (path, client.get(path).text)
        assert len(all_pages(client, "/api/results", limit=50)) == len(store.seed.results)
        assert client.get("/api/health").json()["store"].startswith(
            f"postgresql+psycopg://{role_store.names.reader}@")
        assert post["id"] in ids(all_pages(client, "/api/queue"))
        new_label = next(label for label in LABELS if label != post["label"])
        response = client.post("/api/reviews", headers=store.auth(), json={
            "source": post["source"], "doc_id": post["id"], "action": "relabel",
            "label": new_label, "seen_version": post["model_version"]})
        assert response.status_code == 201, response.text
        assert client.post("/api/reviews", headers=store.auth("bob"), json={
            "source": post["source"], "doc_id": post["id"],
            "action": "accept"}).status_code == 401
        shown = client.get("/api/result", params={"source": post["source"],
                                                  "id": post["id"]}).json()
        assert (shown["human_label"], shown["reviewer"], shown["agrees"]) == (
            new_label, "ann", False)
        assert post["id"] not in ids(all_pages(client, "/api/queue"))
    with store.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(ReviewRow).where(
            ReviewRow.doc_id == post["id"], ReviewRow.reviewer == "ann",
            ReviewRow.previous_label == post["label"])).scalar_one() == 1
