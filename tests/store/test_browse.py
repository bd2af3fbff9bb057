"""Browsing the store (store/browse.py) and its aggregates (store/stats.py) on both stores:
keyset pagination with ties, cursors, filters, one result in full, dead letters without
payloads, runs, and the overview's buckets and shares."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, create_engine, insert, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from docstream.store import stats
from docstream.store.browse import (
    BadCursor,
    ResultFilter,
    db_time,
    decode_cursor,
    encode_cursor,
    get_result,
    list_dead_letters,
    list_results,
    list_runs,
)
from docstream.store.engine import make_engine
from docstream.store.errors import StoreError
from docstream.store.migrate import upgrade
from docstream.store.tables import (
    AuditRow,
    ClassificationRow,
    DeadLetterRow,
    ReviewRow,
    RunRow,
)
from tests.store.test_reviews import post_row, review_row

T0 = datetime(2026, 3, 1, 22, 30, tzinfo=UTC)
H = timedelta(hours=1)
# id -> (source, label, score, processed_at, needs_review): ties on processed_at (a, b, c;
# b and c in one source) and on score (d, e, f), over midnight (T0 + 2h is the next day)
POSTS = {
    "a": ("news", "World", 0.5, T0, True),
    "b": ("blog", "World", 0.7, T0, False),
    "c": ("blog", "Sports", 0.2, T0, True),
    "d": ("news", "Sports", 0.3, T0 + H, True),
    "e": ("blog", "World", 0.3, T0 + 2 * H, False),
    "f": ("news", "Business", 0.3, T0 + 2 * H + timedelta(microseconds=7), True),
    "g": ("news", "World", 0.9, T0 - 25 * H, False),
}


def fill(engine: Engine) -> None:
    """Migrate and insert POSTS, two reviews of `a` (relabel, then accept), one of `d`
    (relabel), two audit rows of `a`, three dead letters and two runs."""
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(insert(ClassificationRow), [
            post_row(i, label, source=source, score=score, processed_at=at, needs_review=flag,
                     text=f"text of {i}" if flag else None)
            for i, (source, label, score, at, flag) in POSTS.items()])
        conn.execute(insert(ReviewRow), [
            review_row("r1", "a", "Sports", T0 + 3 * H),
            review_row("r2", "a", "World", T0 + 4 * H, action="accept"),
            review_row("r3", "d", "World", T0 + 3 * H, previous="Sports")])
        conn.execute(insert(AuditRow), [
            {"run_id": run, "position": "file:x.jsonl:news/a", "doc_id": "a", "source": "news",
             "input_sha256": "0" * 64, "model_version": "news@1", "outcome": "classified",
             "timings_ms": {}, "recorded_at": T0 + n * H}
            for n, run in enumerate(("run-1", "run-2"))])
        conn.execute(insert(DeadLetterRow), [
            dead_row(1, "bad_json", "decode", T0, False),
            dead_row(2, "bad_json", "decode", T0, True),
            dead_row(3, "too_long", "preprocess", T0 + H, False)])
        conn.execute(insert(RunRow), [
            {"run_id": "r1", "started_at": T0, "finished_at": T0 + H, "source": "x",
             "model": "m", "status": "succeeded",
             "summary": {"inputs": 7, "classified": 7, "dead_letters": 0, "seconds": 2.0,
                         "docs_per_s": 3.5}},
            {"run_id": "r2", "started_at": T0 + H, "finished_at": None, "source": "x",
             "model": "m", "status": "running", "summary": None}])


def dead_row(n: int, reason: str, stage: str, seen: datetime, resolved: bool) -> dict[str, Any]:
    return {"position": f"file:bad.jsonl:{n}", "input_kind": "file", "file": "bad.jsonl",
            "line": n, "key": b"KEY", "payload": b"PAYLOAD", "doc_id": None, "source": None,
            "stage": stage, "reason": reason, "error": "e", "count": 1, "first_seen": seen,
            "last_seen": seen, "run_id": "run-1",
            "resolved_at": seen + H if resolved else None,
            "resolved_by": "run-2" if resolved else None}


@pytest.fixture(scope="module",
                params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def engine(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One filled store (`fill`) per module and kind, that the tests here only read."""
    if request.param == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('browse') / 'd.db'}")
        fill(engine)
        yield engine
        engine.dispose()
        return
    server_url = request.getfixturevalue("postgres_server")
    name = f"t_{uuid.uuid4().hex[:12]}"
    server = create_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with server.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(server_url).set(database=name).render_as_string(False))
    try:
        fill(engine)
        yield engine
    finally:
        engine.dispose()
        with server.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()


def newest(keys: Any = POSTS) -> list[str]:
    return sorted(keys, key=lambda i: (POSTS[i][3], POSTS[i][0], i), reverse=True)


def by_score(keys: Any = POSTS) -> list[str]:
    return sorted(keys, key=lambda i: (POSTS[i][2], POSTS[i][0], i))


def pages(engine: Engine, order: str, limit: int, f: ResultFilter | None = None
          ) -> list[list[str]]:
    out, cursor = [], None
    while True:
        page = list_results(engine, f, order=order, limit=limit, cursor=cursor)  # type: ignore[arg-type]
        out.append([i["id"] for i in page.items])
        cursor = page.next_cursor
        if cursor is None:
            return out


@pytest.mark.parametrize("order", ["newest", "score"])
def test_pages_follow_the_key_order_through_ties(engine: Engine, order: str) -> None:
    expected = newest() if order == "newest" else by_score()
    for limit in (1, 2, 3, len(POSTS), 500):
        got = pages(engine, order, limit)
        assert [i for page in got for i in page] == expected, limit
        assert all(len(page) == limit for page in got[:-1])
    assert pages(engine, order, 2, ResultFilter(source="blog")) == [
        [i for i in expected if POSTS[i][0] == "blog"][:2],
        [i for i in expected if POSTS[i][0] == "blog"][2:]]


def test_rows_written_between_pages(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        fill(engine)
        first = list_results(engine, limit=3)
        with engine.begin() as conn:
            conn.execute(insert(ClassificationRow), [
                post_row("new", processed_at=T0 + 9 * H),  # before the cursor: never shown
                post_row("old", processed_at=T0 - 99 * H)])  # after it: shown in its place
        rest = list_results(engine, limit=500, cursor=first.next_cursor)
        assert [i["id"] for i in [*first.items, *rest.items]] == [*newest(), "old"]
    finally:
        engine.dispose()


def test_cursors(engine: Engine) -> None:
    cursor = encode_cursor("score", [0.3, "news", "d"])
    assert "=" not in cursor and decode_cursor(cursor, "score") == [0.3, "news", "d"]
    with pytest.raises(BadCursor, match="not for order=newest"):
        decode_cursor(cursor, "newest")
    page = list_results(engine, order="score", limit=3)  # ends inside the tie e, d, f
    assert [i["id"] for i in page.items] == by_score()[:3]
    assert decode_cursor(page.next_cursor or "", "score") == [0.3, "news", "d"]

    def raw(*parts: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(list(parts)).encode()).decode()

    for order, bad in [
        ("newest", "@@@"), ("newest", raw("newest", "yesterday", "news", "a")),
        ("newest", raw("newest", 17, "news", "a")), ("newest", raw("newest", T0.isoformat())),
        ("newest", raw("newest", T0.isoformat(), "news", 1)),
        ("score", raw("score", "0.3", "news", "a")), ("score", raw("score", True, "news", "a")),
        ("score", raw("score", None, "news", "a")), ("score", raw("score", float("nan"), "a", "b")),
        ("score", raw("score", 0.3, "news", "a", "extra")), ("score", raw("score")),
    ]:
        with pytest.raises(BadCursor, match="cursor"):
            list_results(engine, order=order, cursor=bad)  # type: ignore[arg-type]
    for bad in (raw("dead", "soon", "p"), raw("dead", T0.isoformat(), 3), raw("newest", 1)):
        with pytest.raises(BadCursor):
            list_dead_letters(engine, cursor=bad)


def test_limits(engine: Engine) -> None:
    for limit in (0, 501):
        with pytest.raises(StoreError, match=r"limit must be 1\.\.500"):
            list_results(engine, limit=limit)
        with pytest.raises(StoreError, match=r"limit must be 1\.\.500"):
            list_dead_letters(engine, limit=limit)


def test_filters_and_both_labels(engine: Engine) -> None:
    def found(**f: Any) -> list[str]:
        return [i["id"] for i in list_results(engine, ResultFilter(**f), limit=500).items]

    assert found(reviewed=True) == newest("ad")
    assert found(reviewed=False, needs_review=True) == newest("cf")
    assert found(label="World", min_score=0.5, max_score=0.7) == newest("ab")
    # aware in any zone, or naive (taken as UTC): the same instant
    assert found(since=T0 + H) == found(since=(T0 + H).replace(tzinfo=None)) == found(
        since=(T0 + H).astimezone(timezone(timedelta(hours=-7)))) == newest("def")
    assert found(until=T0) == ["g"] and found(since=T0, until=T0 + H) == newest("abc")
    items = {i["id"]: i for i in list_results(engine, limit=500).items}
    assert (items["a"]["label"], items["a"]["human_label"], items["a"]["agrees"]) == (
        "World", "World", True)  # accepted after a relabel: the latest review wins
    assert (items["d"]["label"], items["d"]["human_label"], items["d"]["agrees"]) == (
        "Sports", "World", False)
    assert (items["b"]["human_label"], items["b"]["reviewer"], items["b"]["agrees"]) == (
        None, None, None)
    assert all(i["processed_at"].tzinfo is not None for i in items.values())
    with pytest.raises(ValidationError):
        ResultFilter(min_score=1.5)
    with pytest.raises(ValidationError):
        ResultFilter(labels="World")  # type: ignore[call-arg]


def test_get_result(engine: Engine) -> None:
    assert get_result(engine, "blog", "a") is None and get_result(engine, "news", "zz") is None
    got = get_result(engine, "news", "a")
    assert got is not None
    assert list(got["scores"]) == ["World", "Business", "Sports"]  # best first
    assert got["text"] == "text of a" and got["explanation"] is None
    assert [r["review_id"] for r in got["reviews"]] == ["r1", "r2"]
    assert all(r["reviewed_at"].tzinfo is not None for r in got["reviews"])
    assert [(a["run_id"], a["recorded_at"]) for a in got["audit"]] == [
        ("run-1", T0), ("run-2", T0 + H)]
    assert get_result(engine, "blog", "b")["text"] is None  # type: ignore[index]


def test_dead_letters_without_payloads(engine: Engine) -> None:
    page = list_dead_letters(engine, limit=500)
    assert [d["position"] for d in page.items] == [
        "file:bad.jsonl:3", "file:bad.jsonl:2", "file:bad.jsonl:1"]
    assert all("payload" not in d and "key" not in d for d in page.items)
    assert all(d["last_seen"].tzinfo is not None for d in page.items)
    seen, cursor = [], None
    while True:
        one = list_dead_letters(engine, limit=1, cursor=cursor)
        seen += [d["position"] for d in one.items]
        if (cursor := one.next_cursor) is None:
            break
    assert seen == [d["position"] for d in page.items]
    assert [d["line"] for d in list_dead_letters(engine, reason="bad_json").items] == [2, 1]
    assert [d["line"] for d in list_dead_letters(engine, stage="preprocess").items] == [3]
    assert [d["line"] for d in list_dead_letters(engine, open_only=True).items] == [3, 1]
    assert [d["line"] for d in list_dead_letters(engine, open_only=False).items] == [2]


def test_runs_and_overview(engine: Engine) -> None:
    runs = list_runs(engine)
    assert [(r["run_id"], r["docs_per_s"], r["inputs"]) for r in runs] == [
        ("r2", None, None), ("r1", 3.5, 7)]
    assert [r["run_id"] for r in list_runs(engine, limit=1)] == ["r2"]

    hour = stats.overview(engine, bucket="hour")
    assert hour["per_bucket"] == [
        {"bucket": "2026-02-28T21:00:00Z", "counts": {"World": 1}},
        {"bucket": "2026-03-01T22:00:00Z", "counts": {"Sports": 1, "World": 2}},
        {"bucket": "2026-03-01T23:00:00Z", "counts": {"Sports": 1}},
        {"bucket": "2026-03-02T00:00:00Z", "counts": {"Business": 1, "World": 1}}]
    assert hour["labels"] == ["Business", "Sports", "World"]
    assert (hour["results"], hour["needs_review"], hour["needs_review_share"]) == (7, 4, 0.5714)
    assert (hour["reviewed"], hour["reviewed_share"], hour["reviewed_flagged"],
            hour["reviewed_of_flagged_share"], hour["relabelled"]) == (2, 0.2857, 2, 0.5, 2)
    assert hour["dead_letters"] == [{"reason": "bad_json", "count": 2, "open": 1},
                                    {"reason": "too_long", "count": 1, "open": 1}]
    assert [r["docs_per_s"] for r in hour["runs"]] == [None, 3.5]
    day = stats.overview(engine, bucket="day")
    assert day["per_bucket"] == [
        {"bucket": "2026-02-28T00:00:00Z", "counts": {"World": 1}},
        {"bucket": "2026-03-01T00:00:00Z", "counts": {"Sports": 2, "World": 2}},
        {"bucket": "2026-03-02T00:00:00Z", "counts": {"Business": 1, "World": 1}}]
    # a window: every count, the review counts too, is of the results processed in it
    window = stats.overview(engine, since=T0 + H, until=T0 + 2 * H)
    assert (window["results"], window["needs_review"], window["reviewed"],
            window["relabelled"], window["reviewed_of_flagged_share"]) == (1, 1, 1, 1, 1.0)
    window = stats.overview(engine, since=T0 + 2 * H)
    assert (window["results"], window["reviewed"], window["relabelled"]) == (2, 0, 0)


def test_overview_of_an_empty_window(engine: Engine) -> None:
    empty = stats.overview(engine, since=T0 + 99 * H)
    assert (empty["results"], empty["per_bucket"], empty["needs_review_share"],
            empty["reviewed_share"], empty["reviewed_of_flagged_share"]) == (0, [], 0.0, 0.0, 0.0)


def test_db_time(engine: Engine) -> None:
    aware = datetime(2026, 3, 1, 12, tzinfo=timezone(timedelta(hours=2)))
    expected = datetime(2026, 3, 1, 10, tzinfo=UTC)
    if engine.dialect.name == "sqlite":
        expected = expected.replace(tzinfo=None)
    assert db_time(engine, aware) == expected
    assert db_time(engine, datetime(2026, 3, 1, 10)) == expected  # naive: UTC
    assert db_time(engine, None) is None
