"""`docstream explain`: --text and --id on the bundled model, plain and --json, and its
one-line errors. Integrated Gradients with 2 steps: the values do not matter here."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from docstream.cli import main
from docstream.store.engine import make_engine
from docstream.store.tables import ClassificationRow

STEPS = ["--n-steps", "2"]
TEXT = "The striker scored twice as United beat City 2-0 to reach the cup semifinals."


def row(doc_id: str, text: str | None, *, source: str = "news", title: str | None = None,
        label: str = "Business") -> dict[str, Any]:
    """A stored result; its label deliberately differs from what the text reads as."""
    return {"source": source, "id": doc_id, "label": label, "score": 0.51,
            "scores": {label: 0.51}, "needs_review": True, "model_name": "news-topic",
            "model_version": "1.0.0", "weights_sha256": "0" * 64, "kind": "news",
            "title": title, "created_at": None, "n_chunks": 1, "n_tokens": 20,
            "entities": None, "text": text, "timings_ms": {}, "input_sha256": "0" * 64,
            "position": f"file:x.jsonl:{doc_id}", "run_id": "r1",
            "processed_at": datetime(2026, 12, 1, tzinfo=UTC)}


@pytest.fixture()
def store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'docstream.db'}"
    engine = make_engine(url)
    ClassificationRow.__table__.create(engine)
    with engine.begin() as conn:
        conn.execute(ClassificationRow.__table__.insert(), [
            row("d1", TEXT, title="Cup <b>night</b>"),
            row("d2", None),
            row("d3", "Shares fell.", source="a"), row("d3", "Shares rose.", source="b"),
        ])
    engine.dispose()
    return url


def test_text_prints_prediction_and_words(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--text", TEXT, *STEPS]) == 0
    out = capsys.readouterr().out
    assert "prediction: Sports" in out and "news-topic@1.0.0" in out
    assert TEXT in out  # the words, coloured on a terminal
    assert "for Sports:" in out and "against:" in out


def test_text_json_parses(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--text", TEXT, "--target", "Business", "--json", *STEPS]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["target"] == "Business" and doc["label"] == "Sports"
    assert doc["method"] == "integrated_gradients" and doc["settings"]["n_steps"] == 2
    assert len(doc["windows"]) == 1 and doc["windows"][0]["weight"] == 1.0
    for w in doc["words"]:
        assert TEXT[w["start"] : w["end"]] == w["text"]


def test_id_explains_the_stored_text_and_says_so(store: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--id", "d1", "--db", store, *STEPS]) == 0
    out = capsys.readouterr().out
    assert "stored label Business" in out  # the stored result's label ...
    assert "prediction: Sports" in out  # ... and what the stored text reads as now
    assert "explaining the stored, redacted text" in out
    assert "title: Cup <b>night</b>" in out

    assert main(["explain", "--id", "d3", "--source", "b", "--db", store, "--json",
                 *STEPS]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["stored"]["source"] == "b" and doc["stored"]["label"] == "Business"
    assert "redacted" in doc["explained"]
    assert [w["text"] for w in doc["explanation"]["words"]] == ["Shares", "rose", "."]


@pytest.mark.parametrize(("argv", "message"), [
    (["--id", "d2"], "has no stored text; the job keeps texts only of flagged posts: run it "
                     "with --store-text all"),
    (["--id", "nope"], "no stored result with id 'nope'"),
    (["--id", "d3"], "is stored under several sources (a, b); pass --source"),
    (["--text", "x", "--model", "noop"], "--model noop has no weights to explain"),
    (["--text", "  <br>  "], "nothing to explain"),
    (["--text", "x", "--target", "Cooking"], "'Cooking' is not a label of news-topic@1.0.0"),
])
def test_errors_are_one_line(store: str, capsys: pytest.CaptureFixture[str], argv: list[str],
                             message: str) -> None:
    assert main(["explain", *argv, "--db", store, *STEPS]) == 2
    err = capsys.readouterr().err
    assert err.startswith("docstream explain: error: ") and message in err
    assert len(err.strip().splitlines()) == 1
