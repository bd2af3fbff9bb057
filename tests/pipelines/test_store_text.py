"""`docstream run --store-text`: the text of flagged posts (or all, or none) is stored,
redacted, for people to review. End to end through `docstream.cli.main`, in process, with the
real bundled model (the fixed-label one flags nothing) and a review threshold that flags the
topic-free posts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from docstream.cli import main
from docstream.privacy.redact import ENTITIES_ENV, POLICY_ENV
from docstream.store.engine import make_engine
from docstream.store.tables import AuditRow, ClassificationRow

# Topic-free filler gets a low calibrated score from the bundled model (checked: 0.44–0.75),
# a clear topic a high one (0.94–0.97): a threshold of 0.85 flags the first two only.
FILLER = "It happened on a Tuesday. Nobody expected it. Then it happened again on Wednesday. "
THRESHOLD = "0.85"
POSTS = [
    {"id": "sport", "title": "Cup final",
     "text": "The striker scored twice in the second half as the home team won the championship "
             "final three to one in front of a sold-out stadium. Tickets: jo.doe@example.com"},
    {"id": "flat-pii", "text": FILLER + "Write to ann.lee@example.com or call +44 20 7946 0958."},
    {"id": "flat", "text": FILLER * 2},
    {"id": "business", "text": "Shares of the bank fell after quarterly profit missed analyst "
                               "forecasts and the company cut its dividend."},
]
FLAGGED = {"flat-pii", "flat"}
REDACTED = {
    "sport": POSTS[0]["text"].replace("jo.doe@example.com", "<EMAIL_ADDRESS>"),
    "flat-pii": FILLER + "Write to <EMAIL_ADDRESS> or call <PHONE_NUMBER>.",
    "flat": FILLER * 2,
    "business": POSTS[3]["text"],
}


@pytest.fixture(scope="module")
def posts_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("store-text") / "posts.jsonl"
    path.write_text("".join(json.dumps(p) + "\n" for p in POSTS))
    return path


@pytest.fixture(autouse=True)
def _run_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The CLI leaves its policy and TOKENIZERS_PARALLELISM in the environment: restore it."""
    for name in (POLICY_ENV, ENTITIES_ENV):
        monkeypatch.setenv(name, "")  # records the value before, which teardown restores
        monkeypatch.delenv(name)
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "true")
    yield


def run(source: Path, db_url: str, capsys: pytest.CaptureFixture[str], *args: str
        ) -> dict[str, tuple[bool, str | None, dict | None]]:
    """Run the job; returns id → (needs_review, stored text, the audit record's pii_counts)."""
    capsys.readouterr()
    code = main(["run", "--source", str(source), "--sink", db_url, "--run-id", "st",
                 "--review-threshold", THRESHOLD, "--no-progress", *args])
    assert code == 0, capsys.readouterr().err[-2000:]
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            counts = dict(conn.execute(select(AuditRow.doc_id, AuditRow.pii_counts)).all())
            return {i: (review, text, counts[i]) for i, review, text in conn.execute(
                select(ClassificationRow.id, ClassificationRow.needs_review,
                       ClassificationRow.text))}
    finally:
        engine.dispose()


def test_flagged_posts_keep_their_redacted_text(posts_file: Path, db_url: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    rows = run(posts_file, db_url, capsys)  # --store-text review is the default
    assert {i for i, (review, _, _) in rows.items() if review} == FLAGGED
    assert {i: text for i, (_, text, _) in rows.items()} == {
        "sport": None, "flat-pii": REDACTED["flat-pii"], "flat": FILLER * 2, "business": None}
    # the audit counts what the text held; the unkept text of "sport" is not counted
    assert rows["flat-pii"][2] == {"EMAIL_ADDRESS": 1, "PHONE_NUMBER": 1}
    assert rows["sport"][2] == {}


@pytest.mark.parametrize("store_text", ["all", "off"])
def test_store_text_all_or_off(posts_file: Path, sqlite_url: str, store_text: str,
                               capsys: pytest.CaptureFixture[str]) -> None:
    rows = run(posts_file, sqlite_url, capsys, "--store-text", store_text)
    assert {i for i, (review, _, _) in rows.items() if review} == FLAGGED
    texts = {i: text for i, (_, text, _) in rows.items()}
    assert texts == (REDACTED if store_text == "all" else dict.fromkeys(REDACTED))
