"""The whole review loop, end to end, on generated news posts (tests/news_posts.py):

1. `docstream run` with the production model (the bundled news-topic 1.0.0, registered) and a
   high review threshold flags most posts and keeps their redacted text;
2. a reviewer (`docstream reviewers add`) reviews 50 of the queue through the real API
   (POST /api/reviews with a bearer token): relabels a post to its true label where the model
   got it wrong, accepts it otherwise; the 50 leave the queue;
3. `docstream reviews export --merge` writes the training file plus the 50 human labels;
4. `docstream train` (head mode: the cheapest artifact that loads) makes news-topic 1.1.0;
5. `docstream model register`, then `docstream model promote`;
6. `docstream run --model news-topic@production` classifies new posts (and re-runs some
   reviewed ones) with 1.1.0, and every human label is still there.

Every CLI step is a subprocess of the real entry point; the store is one SQLite file.
Beside it, a quick test of the export alone on a store filled directly: reviews of posts of
two sources with the same id, a post reviewed twice, a post whose text was not kept.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import insert

from docstream.cli import main
from docstream.model.bundled import BUNDLED_NAME, bundled_model_dir
from docstream.schemas.review import ReviewDecision
from docstream.store.engine import make_engine
from docstream.store.migrate import upgrade
from docstream.store.reviews import add_reviewer, insert_review, result_for_review
from docstream.store.tables import ClassificationRow
from docstream.web.app import create_app
from docstream.web.context import ServeContext
from docstream.web.settings import ServeSettings
from tests.news_posts import LABELS, labelled_rows

N_REVIEWS = 50
OLD_VERSION = "1.0.0"  # the bundled model's
NEW_VERSION = "1.1.0"
SOURCE = "wire"
REVIEWER = "rita"


def _cli(*args: str, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """`docstream ARGS` as a subprocess; fails the test with its stderr when it fails."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-m", "docstream.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"docstream {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return proc


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _post(row: dict[str, Any]) -> dict[str, Any]:
    """A post for `docstream run`: the labelled row without its label and split."""
    return {"id": row["id"], "source": SOURCE, "kind": "news", "text": row["text"]}


@contextmanager
def _api(url: str) -> Iterator[TestClient]:
    """The app of `docstream serve` over the store (reader and reviewer on the same URL);
    closed (and its engines disposed) before the next CLI step writes to the file."""
    ctx = ServeContext.open(ServeSettings(read_url=url, review_url=url, secret=b"x" * 32))
    with TestClient(create_app(ctx)) as client:
        yield client


def _get(client: TestClient, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    assert response.status_code == 200, (path, response.status_code, response.text)
    return response.json()


def _queue(client: TestClient) -> list[dict[str, Any]]:
    page = _get(client, "/api/queue", limit=500)
    assert page["next_cursor"] is None
    return page["items"]


def _stored(db: Path) -> dict[str, tuple[str, str, bool, str | None]]:
    """id -> (label, model_version, needs_review, text) of every stored result."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT id, label, model_version, needs_review, text "
                            "FROM classifications WHERE source = ?", (SOURCE,)).fetchall()
    return {r[0]: (r[1], r[2], bool(r[3]), r[4]) for r in rows}


@pytest.mark.slow
def test_review_export_train_promote_reclassify(tmp_path: Path) -> None:
    started = time.perf_counter()
    seconds: dict[str, float] = {}
    db = tmp_path / "store.db"
    url = f"sqlite:///{db}"

    # --- generated data: a training file (train/val) and posts, some of them in it --------
    rows = labelled_rows(train_per_label=60, test_per_label=30, seed=11, long_share=0.0)
    truth = {r["id"]: r for r in rows}
    train_rows = [r for r in rows if r["split"] == "train"]
    for i, r in enumerate(train_rows):  # 48 of the 240 validate, the rest train
        if i % 5 == 4:
            r["split"] = "val"
    fresh = [r for r in rows if r["split"] == "test"]  # 120 rows in no training file
    train_file = _write_jsonl(tmp_path / "train.jsonl", train_rows)
    # run 1: 40 posts of the training file (train and val rows) and 40 fresh ones
    first = train_rows[:40] + fresh[:40]
    posts = _write_jsonl(tmp_path / "posts.jsonl", [_post(r) for r in first])
    in_train_file = {r["id"] for r in train_rows}

    # --- the bundled model is the production version; run 1 flags most posts --------------
    _cli("model", "--db", url, "register", str(bundled_model_dir()), "--promote", cwd=tmp_path)
    t0 = time.perf_counter()
    _cli("run", "--source", str(posts), "--sink", url, "--model", f"{BUNDLED_NAME}@production",
         "--review-threshold", "0.99", "--no-progress", cwd=tmp_path)
    seconds["run 1"] = time.perf_counter() - t0
    stored = _stored(db)
    assert set(stored) == {r["id"] for r in first}
    assert {v[1] for v in stored.values()} == {OLD_VERSION}
    flagged_with_text = {i for i, (_, _, flagged, text) in stored.items() if flagged and text}
    assert len(flagged_with_text) >= N_REVIEWS, f"only {len(flagged_with_text)} flagged"
    # the generated posts hold no personal data: the redacted text is the text
    assert all(stored[i][3] == truth[i]["text"] for i in flagged_with_text)

    # --- a reviewer reviews 50 of the queue through the API --------------------------------
    token = _cli("reviewers", "--db", url, "add", REVIEWER, cwd=tmp_path).stdout.splitlines()[0]
    human: dict[str, str] = {}
    relabelled = 0
    with _api(url) as client:
        queue = _queue(client)
        assert {q["id"] for q in queue} == flagged_with_text
        scores = [q["score"] for q in queue]
        assert scores == sorted(scores)  # least sure first
        decision = {"source": SOURCE, "doc_id": queue[0]["id"], "action": "accept"}
        assert client.post("/api/reviews", json=decision).status_code == 401  # no token
        auth = {"Authorization": f"Bearer {token}"}
        for item in queue[:N_REVIEWS]:
            true_label = truth[item["id"]]["label"]
            decision = {"source": SOURCE, "doc_id": item["id"],
                        "seen_version": item["model_version"], "seen_label": item["label"]}
            if item["label"] == true_label:
                decision["action"] = "accept"
            else:
                decision.update(action="relabel", label=true_label)
                relabelled += 1
            response = client.post("/api/reviews", json=decision, headers=auth)
            assert response.status_code == 201, response.text
            review = response.json()
            assert (review["label"], review["reviewer"], review["previous_label"]) == (
                true_label, REVIEWER, item["label"])
            assert review["action"] == decision["action"]
            human[item["id"]] = true_label
        assert relabelled > 0, "the model got every reviewed post right: nothing relabelled"
        left = {q["id"] for q in _queue(client)}
        assert left == flagged_with_text - set(human)
    reviewed_in_file = set(human) & in_train_file
    assert reviewed_in_file and set(human) - in_train_file  # both kinds were reviewed

    # --- export: the training file with the 50 human labels merged in ----------------------
    exported = tmp_path / "train2.jsonl"
    _cli("reviews", "--db", url, "export", "--out", str(exported), "--merge", str(train_file),
         cwd=tmp_path)
    out = _read_jsonl(exported)
    ids = [r["id"] for r in out]
    assert len(ids) == len(set(ids))
    assert len(out) == len(train_rows) - len(reviewed_in_file) + N_REVIEWS
    assert all(set(r) == {"id", "text", "label", "split"} for r in out)
    kept = [r for r in train_rows if r["id"] not in human]
    assert out[:len(kept)] == kept  # the merged file's rows first, unchanged, in order
    for r in out[len(kept):]:  # then one row per review: its text and the human label
        split = next((t["split"] for t in train_rows if t["id"] == r["id"]), "train")
        assert r == {"id": r["id"], "text": truth[r["id"]]["text"], "label": human[r["id"]],
                     "split": split}  # a corrected row keeps its split
    assert {r["id"] for r in out[len(kept):]} == set(human)

    # --- train a new version (head mode: the encoder frozen, only the head trains) --------
    artifact = tmp_path / "news-topic-1.1.0"
    t0 = time.perf_counter()
    _cli("train", "--data", str(exported), "--out", str(artifact), "--mode", "head",
         "--labels", ",".join(LABELS), "--name", BUNDLED_NAME, "--version", NEW_VERSION,
         "--no-progress", cwd=tmp_path)
    seconds["train"] = time.perf_counter() - t0
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert (manifest["name"], manifest["version"], manifest["mode"]) == (
        BUNDLED_NAME, NEW_VERSION, "head")
    assert manifest["labels"] == LABELS
    assert manifest["training"]["rows"]["train"] == sum(r["split"] == "train" for r in out)

    # --- register, then promote (two steps) ----------------------------------------------
    registered = _cli("model", "--db", url, "register", str(artifact), cwd=tmp_path).stdout
    assert f"registered {BUNDLED_NAME}@{NEW_VERSION} (none)" in registered
    promoted = _cli("model", "--db", url, "promote", f"{BUNDLED_NAME}@{NEW_VERSION}",
                    cwd=tmp_path).stdout
    assert f"promoted {BUNDLED_NAME}@{NEW_VERSION} to production" in promoted

    # --- run 2 with NAME@production: new posts, and 10 reviewed ones again ----------------
    rerun = [truth[i] for i in list(human)[:10]]
    second = fresh[40:70] + rerun
    more = _write_jsonl(tmp_path / "more_posts.jsonl", [_post(r) for r in second])
    t0 = time.perf_counter()
    _cli("run", "--source", str(more), "--sink", url, "--model", f"{BUNDLED_NAME}@production",
         "--no-progress", cwd=tmp_path)
    seconds["run 2"] = time.perf_counter() - t0
    stored = _stored(db)
    second_ids = {r["id"] for r in second}
    assert set(stored) == {r["id"] for r in first} | second_ids
    assert {i for i, v in stored.items() if v[1] == NEW_VERSION} == second_ids
    assert {stored[i][1] for i in set(stored) - second_ids} == {OLD_VERSION}

    with _api(url) as client:
        stages = {m["version"]: m["stage"] for m in _get(client, "/api/models")
                  if m["name"] == BUNDLED_NAME}
        assert stages == {OLD_VERSION: "archived", NEW_VERSION: "production"}
        page = _get(client, "/api/results", model_version=NEW_VERSION, limit=500)
        assert {r["id"] for r in page["items"]} == second_ids
        assert all(r["model_name"] == BUNDLED_NAME for r in page["items"])
        for doc_id, label in human.items():
            result = _get(client, "/api/result", id=doc_id, source=SOURCE)
            assert (result["human_label"], result["reviewer"]) == (label, REVIEWER), doc_id
            assert result["agrees"] == (result["label"] == label)
            assert [r["label"] for r in result["reviews"]] == [label]
            assert result["model_version"] == (NEW_VERSION if doc_id in second_ids
                                               else OLD_VERSION)
            assert result["text"] == truth[doc_id]["text"]  # a re-run keeps the stored text
        # a reviewed post never comes back to the queue, re-flagged or not
        assert not {q["id"] for q in _queue(client)} & set(human)

    total = time.perf_counter() - started
    print(f"review loop: {total:.0f} s in all; " + ", ".join(
        f"{k} {v:.0f} s" for k, v in seconds.items()) + f"; {relabelled} relabelled")


def test_export_keeps_every_reviewed_post_and_the_latest_label(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Posts are (source, id): two sources' posts with id 7 are two training rows, and both
    replace the merged file's row 7; a post reviewed twice exports its latest label; a post
    whose text the store does not hold is skipped and said so."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    engine = make_engine(url)
    upgrade(engine)
    scores = {"World": 0.5, "Sports": 0.3, "Business": 0.1, "Sci/Tech": 0.1}
    posts = {("a", "7"): "Shares rose.", ("b", "7"): "The striker scored.",
             ("a", "8"): "Rebels signed a ceasefire.", ("a", "9"): None}
    now = datetime.now(UTC)
    with engine.begin() as conn:
        conn.execute(insert(ClassificationRow), [
            {"source": source, "id": doc_id, "label": "World", "score": 0.5, "scores": scores,
             "needs_review": True, "model_name": "m", "model_version": "1", "text": text,
             "weights_sha256": "0" * 64, "input_sha256": "0" * 64, "run_id": "r",
             "position": f"file:{source}:{doc_id}", "processed_at": now}
            for (source, doc_id), text in posts.items()])
    add_reviewer(engine, REVIEWER)
    for source, doc_id, action, label in [("a", "7", "relabel", "Business"),
                                          ("b", "7", "relabel", "Sports"),
                                          ("a", "8", "relabel", "Sci/Tech"),
                                          ("a", "8", "accept", None),
                                          ("a", "9", "accept", None)]:
        decision = ReviewDecision(source=source, doc_id=doc_id, action=action, label=label)
        insert_review(engine, result_for_review(engine, source, doc_id), decision, REVIEWER)
    engine.dispose()
    merge = _write_jsonl(tmp_path / "train.jsonl", [
        {"id": "1", "text": "Kept.", "label": "World", "split": "train"},
        {"id": "7", "text": "Replaced.", "label": "World", "split": "val"}])
    out = tmp_path / "out" / "train2.jsonl"
    assert main(["reviews", "export", "--out", str(out), "--merge", str(merge),
                 "--db", url]) == 0  # --db after the action works too
    assert _read_jsonl(out) == [
        {"id": "1", "text": "Kept.", "label": "World", "split": "train"},
        {"id": "7", "text": "Shares rose.", "label": "Business", "split": "val"},
        {"id": "7", "text": "The striker scored.", "label": "Sports", "split": "val"},
        {"id": "8", "text": "Rebels signed a ceasefire.", "label": "World", "split": "train"}]
    err = capsys.readouterr().err
    assert "exported 3 reviewed posts merged with 1 rows" in err and "1 replaced" in err
    assert "skipped 1 reviewed posts" in err
