"""`docstream query` shows the model's label and the human label (the latest review) side by
side, in every format, and filters on whether a post was reviewed (--reviewed /
--not-reviewed). A later model version that reclassifies a post changes `label`, never
`human_label`."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, update

from docstream.cli import main
from docstream.store.engine import make_engine
from docstream.store.migrate import upgrade
from docstream.store.tables import ClassificationRow, ReviewRow

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
# id -> (label, needs_review, minutes after T0)
POSTS = {"a": ("World", True, 4), "b": ("Sports", False, 3), "c": ("Business", True, 2),
         "d": ("World", False, 1)}
LABELS = ("Business", "Sports", "World")


def _row(doc_id: str) -> dict[str, Any]:
    label, flagged, minutes = POSTS[doc_id]
    return {
        "source": "news", "id": doc_id, "label": label, "score": 0.6,
        "scores": {x: 0.6 if x == label else 0.2 for x in LABELS}, "needs_review": flagged,
        "model_name": "news", "model_version": "1", "weights_sha256": "1" * 64,
        "kind": "post", "title": None, "created_at": None, "n_chunks": 1, "n_tokens": 5,
        "entities": None, "text": "t" if flagged else None, "timings_ms": {},
        "input_sha256": "0" * 64, "position": f"file:x.jsonl:{doc_id}", "run_id": "run-1",
        "processed_at": T0 + timedelta(minutes=minutes)}


def _review(n: int, doc_id: str, action: str, label: str, reviewer: str) -> dict[str, Any]:
    return {"review_id": f"r{n}", "source": "news", "doc_id": doc_id, "action": action,
            "label": label, "previous_label": POSTS[doc_id][0], "previous_score": 0.6,
            "model_name": "news", "model_version": "1", "reviewer": reviewer,
            "reviewed_at": T0 + timedelta(hours=1, minutes=n)}


@pytest.fixture()
def store(db_url: str) -> str:
    """Four posts; `a` accepted by bob then relabelled Sports by ann (the latest wins), then
    reclassified Business by model version 2 (a rerun's upsert); `b` accepted by bob."""
    engine = make_engine(db_url)
    try:
        upgrade(engine)
        with engine.begin() as conn:
            conn.execute(insert(ClassificationRow), [_row(i) for i in POSTS])
            conn.execute(insert(ReviewRow), [
                _review(1, "a", "accept", "World", "bob"),
                _review(2, "a", "relabel", "Sports", "ann"),
                _review(3, "b", "accept", "Sports", "bob")])
            conn.execute(update(ClassificationRow).where(ClassificationRow.id == "a").values(
                label="Business", model_version="2", needs_review=True,
                processed_at=T0 + timedelta(minutes=5)))
    finally:
        engine.dispose()
    return db_url


def query(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> str:
    capsys.readouterr()
    assert main(["query", "--db", url, *args]) == 0
    return capsys.readouterr().out


def test_json_shows_both_labels(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    rows = json.loads(query(capsys, store, "--format", "json"))
    assert [(r["id"], r["label"], r["model_version"], r["human_label"], r["reviewer"])
            for r in rows] == [
        ("a", "Business", "2", "Sports", "ann"),  # the model moved on; the human label stays
        ("b", "Sports", "1", "Sports", "bob"),
        ("c", "Business", "1", None, None),
        ("d", "World", "1", None, None)]


FILTERS = [
    (["--reviewed"], ["a", "b"]),
    (["--not-reviewed"], ["c", "d"]),
    (["--needs-review", "--reviewed"], ["a"]),
    (["--needs-review", "--not-reviewed"], ["c"]),
    (["--label", "World", "--not-reviewed"], ["d"]),
    (["--label", "Sports", "--not-reviewed"], []),
    (["--since", "2026-03-01T14:02:30+02:00", "--reviewed"], ["a", "b"]),
    (["--since", "2026-03-01T12:02:30Z", "--not-reviewed"], []),
    (["--reviewed", "--limit", "1"], ["a"]),
]


def test_reviewed_filters(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    for args, expected in FILTERS:
        rows = json.loads(query(capsys, store, "--format", "json", *args))
        assert [r["id"] for r in rows] == expected, args


def test_reviewed_and_not_reviewed_exclude_each_other(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["query", "--reviewed", "--not-reviewed"])
    assert e.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_csv_has_the_human_label_columns(store: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    rows = list(csv.DictReader(io.StringIO(query(capsys, store, "--format", "csv"))))
    assert list(rows[0])[-2:] == ["human_label", "reviewer"]
    assert [(r["id"], r["label"], r["human_label"], r["reviewer"]) for r in rows] == [
        ("a", "Business", "Sports", "ann"), ("b", "Sports", "Sports", "bob"),
        ("c", "Business", "", ""), ("d", "World", "", "")]


def _cells(out: str) -> dict[str, list[str]]:
    """id -> the cells of its row in the rich table."""
    rows = [[c.strip() for c in line.strip("│ ").split("│")] for line in out.splitlines()
            if line.startswith("│")]
    return {r[1]: r for r in rows}


def test_table_shows_both_labels(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = query(capsys, store)
    header = next(line for line in out.splitlines() if "source" in line)
    assert header.split("┃")[-3:-1] == [" human_label ", " reviewer "]
    cells = _cells(out)
    assert {k: (v[2], v[5], v[-2], v[-1]) for k, v in cells.items()} == {
        "a": ("Business", "2", "Sports", "ann"), "b": ("Sports", "1", "Sports", "bob"),
        "c": ("Business", "1", "-", "-"), "d": ("World", "1", "-", "-")}
    out = query(capsys, store, "--reviewed")
    assert set(_cells(out)) == {"a", "b"} and "2 row(s)" in out
