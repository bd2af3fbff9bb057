"""Reviewers and reviews (store/reviews.py) on both stores: tokens shown once and stored as
their sha256 only, rotation and revocation, authentication against every active reviewer,
the refusals of a decision, append-only reviews, the latest review as the human label, and
the export of reviewed texts.

`post_row` and `review_row` (rows inserted directly, no model run) serve test_browse.py too.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.exc import DBAPIError

from docstream.schemas.review import ReviewDecision
from docstream.store import reviews
from docstream.store.engine import make_engine
from docstream.store.errors import StoreError
from docstream.store.migrate import upgrade
from docstream.store.reviews import (
    ReviewRefused,
    ReviewTarget,
    add_reviewer,
    authenticate,
    check_decision,
    insert_review,
    is_active,
    latest_reviews_query,
    list_reviewers,
    result_for_review,
    reviewed_texts,
    reviews_of,
    revoke_reviewer,
)
from docstream.store.tables import ClassificationRow, ReviewerRow, ReviewRow

T0 = datetime(2026, 3, 1, tzinfo=UTC)
LABELS = ("Business", "Sports", "World")


def post_row(doc_id: str, label: str = "World", *, source: str = "news", score: float = 0.6,
             processed_at: datetime = T0, needs_review: bool = False, version: str = "1",
             text: str | None = None) -> dict[str, Any]:
    """A `classifications` row with every field filled."""
    rest = [x for x in LABELS if x != label]
    return {
        "source": source, "id": doc_id, "label": label, "score": score,
        "scores": {label: score, rest[0]: round((1 - score) * 0.7, 4),
                   rest[1]: round((1 - score) * 0.3, 4)},
        "needs_review": needs_review, "model_name": "news", "model_version": version,
        "weights_sha256": version * 64, "kind": "post", "title": None, "created_at": None,
        "n_chunks": 1, "n_tokens": 5, "entities": None, "text": text, "timings_ms": {},
        "input_sha256": "0" * 64, "position": f"file:x.jsonl:{source}/{doc_id}",
        "run_id": f"run-{version}", "processed_at": processed_at}


def review_row(review_id: str, doc_id: str, label: str, at: datetime, *,
               source: str = "news", action: str = "relabel", previous: str = "World",
               reviewer: str = "ann") -> dict[str, Any]:
    return {"review_id": review_id, "source": source, "doc_id": doc_id, "action": action,
            "label": label, "previous_label": previous, "previous_score": 0.6,
            "model_name": "news", "model_version": "1", "reviewer": reviewer,
            "reviewed_at": at}


@pytest.fixture()
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated, empty store (SQLite, then PostgreSQL)."""
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def stored_hashes(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(ReviewerRow.name, ReviewerRow.token_sha256)).all())


# --- reviewers and tokens ----------------------------------------------------------------------

def test_a_token_is_shown_once_and_only_its_sha256_is_stored(engine: Engine) -> None:
    token = add_reviewer(engine, "ann")
    assert token.startswith("dsr_") and len(token) > 40
    stored = stored_hashes(engine)["ann"]
    assert stored != token and token not in stored
    assert stored == hashlib.sha256(token.encode()).hexdigest() == reviews.hash_token(token)
    [ann] = list_reviewers(engine)
    assert ann.name == "ann" and ann.revoked_at is None
    assert token not in ann.model_dump_json() and stored not in ann.model_dump_json()
    assert authenticate(engine, token) == "ann" and is_active(engine, "ann")
    with pytest.raises(StoreError, match="--rotate"):
        add_reviewer(engine, "ann")
    assert stored_hashes(engine)["ann"] == stored  # the refused add changed nothing


def test_bad_reviewer_names_are_refused(engine: Engine) -> None:
    for name in ("", "-ann", "ann smith", "a" * 65, "ann;drop", "é", "ann\n"):
        with pytest.raises(StoreError, match="bad reviewer name"):
            add_reviewer(engine, name)
    assert stored_hashes(engine) == {}
    add_reviewer(engine, "a" * 64)
    add_reviewer(engine, "ann.smith@example-1_x")
    assert set(stored_hashes(engine)) == {"a" * 64, "ann.smith@example-1_x"}


def test_rotate_gives_a_new_token_and_ends_the_old(engine: Engine) -> None:
    old = add_reviewer(engine, "ann")
    new = add_reviewer(engine, "ann", rotate=True)
    assert new != old
    assert authenticate(engine, old) is None and authenticate(engine, new) == "ann"
    assert stored_hashes(engine) == {"ann": hashlib.sha256(new.encode()).hexdigest()}


def test_revoke_ends_a_token_and_rotate_brings_the_reviewer_back(engine: Engine) -> None:
    token = add_reviewer(engine, "ann")
    other = add_reviewer(engine, "bob")
    revoke_reviewer(engine, "ann")
    assert authenticate(engine, token) is None and not is_active(engine, "ann")
    assert authenticate(engine, other) == "bob"  # only ann's token ended
    [ann] = [r for r in list_reviewers(engine) if r.name == "ann"]
    assert ann.revoked_at is not None
    with pytest.raises(StoreError, match="no active reviewer 'ann'"):
        revoke_reviewer(engine, "ann")
    with pytest.raises(StoreError, match="no active reviewer 'zed'"):
        revoke_reviewer(engine, "zed")
    again = add_reviewer(engine, "ann", rotate=True)
    assert authenticate(engine, again) == "ann" and authenticate(engine, token) is None
    assert is_active(engine, "ann")


def test_authenticate_compares_with_every_active_reviewer(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = {name: add_reviewer(engine, name) for name in ("ann", "bob", "cy", "dee")}
    revoke_reviewer(engine, "dee")
    calls: list[bytes] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append(b)
        return real(a, b)

    monkeypatch.setattr(reviews.hmac, "compare_digest", spy)
    for name in ("ann", "bob", "cy"):
        calls.clear()
        assert authenticate(engine, tokens[name]) == name
        # all three active hashes, whichever matched (ann's is found first or last)
        assert sorted(calls) == sorted(h.encode() for n, h in stored_hashes(engine).items()
                                       if n != "dee")
    calls.clear()
    assert authenticate(engine, tokens["dee"]) is None  # revoked
    assert authenticate(engine, tokens["ann"] + "x") is None
    assert authenticate(engine, tokens["ann"][:-1]) is None
    assert authenticate(engine, tokens["ann"].upper()) is None
    assert len(calls) == 4 * 3
    calls.clear()
    for token in ("", "x" * 201, tokens["ann"] + "y" * 200):
        assert authenticate(engine, token) is None
    assert calls == []  # refused before any comparison
    assert authenticate(engine, "x" * 200) is None and len(calls) == 3


def test_authenticate_with_no_reviewers(engine: Engine) -> None:
    assert authenticate(engine, "dsr_" + "x" * 43) is None


# --- decisions ----------------------------------------------------------------------------------

TARGET = ReviewTarget(source="news", doc_id="a", label="World", score=0.4,
                      labels=("Business", "Sports", "World"), model_name="news",
                      model_version="2")


def decision(**change: Any) -> ReviewDecision:
    return ReviewDecision(**{"source": "news", "doc_id": "a", "action": "accept", **change})


@pytest.mark.parametrize("target, change, words", [
    (None, {}, "no result 'news'/'a' in the store"),
    (TARGET, {"seen_version": "1"}, "reclassified by model version 2"),
    (TARGET, {"seen_label": "Sports"}, "is now labelled 'World'"),
    (TARGET, {"label": "Sports"}, "accept keeps the model's label 'World'"),
    (TARGET, {"action": "relabel"}, "relabel needs the new label"),
    (TARGET, {"action": "relabel", "label": "Cooking"},
     "unknown label 'Cooking' for result 'news'/'a'; the model's labels are Business, "
     "Sports, World"),
    (TARGET, {"action": "relabel", "label": "world"}, "unknown label 'world'"),
])
def test_check_decision_refusals(target: ReviewTarget | None, change: dict[str, Any],
                                 words: str) -> None:
    with pytest.raises(ReviewRefused) as caught:
        check_decision(target, decision(**change))
    assert words in str(caught.value)


@pytest.mark.parametrize("change, label", [
    ({}, "World"),
    ({"label": "World", "seen_version": "2", "seen_label": "World"}, "World"),
    ({"action": "relabel", "label": "Sports"}, "Sports"),
    ({"action": "relabel", "label": "  Sports "}, "Sports"),  # stripped
    ({"action": "relabel", "label": "World"}, "World"),  # recorded as an accept
])
def test_check_decision_gives_the_label(change: dict[str, Any], label: str) -> None:
    assert check_decision(TARGET, decision(**change)) == label


@pytest.mark.parametrize("change", [
    {"extra": 1}, {"action": "approve"}, {"doc_id": ""}, {"label": ""},
    {"source": "s" * 257}, {"seen_version": "v" * 65},
])
def test_malformed_decisions_are_refused_by_the_contract(change: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        decision(**change)


def test_insert_review_records_the_decision_and_what_it_replaced(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(ClassificationRow), [post_row("a", "World", score=0.4,
                                                          version="2")])
    target = result_for_review(engine, "news", "a")
    assert target == TARGET
    assert result_for_review(engine, "news", "nope") is None
    relabel = insert_review(engine, target, decision(action="relabel", label="Sports"), "ann")
    same = insert_review(engine, target, decision(action="relabel", label="World"), "bob")
    with pytest.raises(ReviewRefused):
        insert_review(engine, target, decision(action="relabel", label="Cooking"), "ann")
    stored = reviews_of(engine, "news", "a")
    assert stored == [relabel, same]
    assert [(r.action, r.label, r.previous_label, r.previous_score, r.model_name,
             r.model_version, r.reviewer) for r in stored] == [
        ("relabel", "Sports", "World", 0.4, "news", "2", "ann"),
        ("accept", "World", "World", 0.4, "news", "2", "bob")]
    assert all(r.reviewed_at.tzinfo is not None for r in stored)
    assert len({r.review_id for r in stored}) == 2


# --- append-only, latest wins, export --------------------------------------------------------

@pytest.mark.parametrize("sql", [
    "UPDATE reviews SET label = 'forged'",
    "UPDATE reviews SET reviewer = 'eve' WHERE review_id = 'r1'",
    "DELETE FROM reviews WHERE review_id = 'r1'",
])
def test_reviews_are_append_only(engine: Engine, sql: str) -> None:
    with engine.begin() as conn:
        conn.execute(insert(ReviewRow), [review_row("r1", "a", "Sports", T0)])
    with pytest.raises(DBAPIError, match="reviews is append-only"), engine.begin() as conn:
        conn.execute(text(sql))
    with engine.connect() as conn:
        assert conn.execute(select(ReviewRow.review_id, ReviewRow.label, ReviewRow.reviewer)
                            ).all() == [("r1", "Sports", "ann")]


def latest(engine: Engine) -> dict[tuple[str, str], tuple[str, str, str]]:
    q = latest_reviews_query()
    with engine.connect() as conn:
        rows = conn.execute(select(q.c.source, q.c.doc_id, q.c.label, q.c.reviewer,
                                   q.c.action)).all()
    return {(r.source, r.doc_id): (r.label, r.reviewer, r.action) for r in rows}


def test_the_latest_review_wins(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(ReviewRow), [
            review_row("r2", "a", "Sports", T0 + timedelta(hours=2), reviewer="bob"),
            review_row("r1", "a", "World", T0 + timedelta(hours=1), action="accept"),
            review_row("r3", "b", "Business", T0),
            # same instant: the larger review_id wins
            review_row("r5", "c", "Sports", T0), review_row("r4", "c", "Business", T0),
            # same doc_id, another source: another post
            review_row("r6", "a", "Business", T0, source="blog"),
        ])
    assert latest(engine) == {
        ("news", "a"): ("Sports", "bob", "relabel"), ("news", "b"): ("Business", "ann", "relabel"),
        ("news", "c"): ("Sports", "ann", "relabel"), ("blog", "a"): ("Business", "ann", "relabel")}
    assert [r.review_id for r in reviews_of(engine, "news", "a")] == ["r1", "r2"]
    assert reviews_of(engine, "news", "zzz") == []


def test_reviewed_texts_exports_latest_labels_and_skips_posts_without_text(
        engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(insert(ClassificationRow), [
            post_row("a", text="text of a"), post_row("b", text=None),
            post_row("c", text=""), post_row("d", text="text of d"),
            post_row("e", text="never reviewed")])
        conn.execute(insert(ReviewRow), [
            review_row("r1", "a", "World", T0 + timedelta(hours=1), action="accept"),
            review_row("r2", "b", "Sports", T0 + timedelta(hours=2)),
            review_row("r3", "c", "Sports", T0 + timedelta(hours=3)),
            review_row("r4", "d", "Business", T0 + timedelta(hours=4)),
            review_row("r5", "a", "Sports", T0 + timedelta(hours=5), reviewer="bob"),
            review_row("r6", "gone", "Sports", T0 + timedelta(hours=6)),  # no result
        ])
    skipped: list[tuple[str, str]] = []
    out = list(reviewed_texts(engine, skipped=skipped))
    assert [(x.doc_id, x.text, x.label, x.reviewer) for x in out] == [
        ("d", "text of d", "Business", "ann"), ("a", "text of a", "Sports", "bob")]
    assert skipped == [("news", "b"), ("news", "c"), ("news", "gone")]
    assert len(list(reviewed_texts(engine))) == 2  # without a list to fill
