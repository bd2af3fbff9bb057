"""End to end with the real bundled model, on SQLite and on the real PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from docstream.commands.run import default_sample
from docstream.model.bundled import bundled_model_dir
from docstream.pipelines.batch import run_batch
from docstream.pipelines.file_source import iter_lines
from docstream.pipelines.options import RunSettings
from docstream.store.engine import make_engine
from docstream.store.tables import AuditRow, ClassificationRow, DeadLetterRow

LABELS = {"World", "Sports", "Business", "Sci/Tech"}

# Topic-free filler: the bundled model gives it nearly flat probabilities (checked: about
# 0.23/0.14/0.25/0.37, confidence 0.04), so only the deciding sentence carries a topic.
FILLER = "It happened on a Tuesday. Nobody expected it. Then it happened again on Wednesday. "
DECIDER = (
    "The striker scored twice in the second half as the home team won the championship final "
    "three to one in front of a sold-out stadium."
)


def settings(sources: list[str], url: str, run_id: str) -> RunSettings:
    return RunSettings(sources=sources, sink=url, model_dir=str(bundled_model_dir()),
                       run_id=run_id, progress=False)


def counts(url: str) -> tuple[int, int, int]:
    engine = make_engine(url)
    with engine.connect() as conn:
        out = tuple(conn.execute(select(func.count()).select_from(t)).scalar_one()
                    for t in (ClassificationRow, DeadLetterRow, AuditRow))
    engine.dispose()
    return out  # type: ignore[return-value]


def test_samples_all_accounted_for_and_rerun_upserts(db_url: str) -> None:
    sample = default_sample()
    n_inputs = len(list(iter_lines(sample)))
    summary = run_batch(settings([sample], db_url, "first"))
    assert summary.inputs == n_inputs
    rows, dead, audit = counts(db_url)
    assert dead == summary.dead_letters == 8
    # every line is a result or a dead letter; (source, id) keys make one row per post
    assert rows == summary.classified == n_inputs - dead
    assert audit == n_inputs
    assert set(summary.labels) <= LABELS and len(summary.labels) == 4
    assert summary.docs_per_s > 0

    again = run_batch(settings([sample], db_url, "second"))
    assert again.classified == rows
    assert counts(db_url) == (rows, dead, 2 * n_inputs)  # upserted; audit per run


def test_sample_predictions_are_sensible(sqlite_url: str) -> None:
    """The sample posts were written with a topic in mind (sample_topics.json)."""
    run_batch(settings([default_sample()], sqlite_url, "r"))
    expected = json.loads((Path(__file__).parent / "sample_topics.json").read_text())
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        got = {f"{s}/{i}": lab for s, i, lab in conn.execute(
            select(ClassificationRow.source, ClassificationRow.id, ClassificationRow.label))}
    engine.dispose()
    assert set(got) == set(expected)
    agree = sum(got[k] == v for k, v in expected.items()) / len(expected)
    assert agree >= 0.85


def test_deciding_sentence_in_last_chunk(tmp_path: Path, sqlite_url: str) -> None:
    long_text = FILLER * 20 + DECIDER
    f = tmp_path / "long.jsonl"
    f.write_text(json.dumps({"id": "long", "text": long_text}) + "\n"
                 + json.dumps({"id": "filler", "text": FILLER * 20}) + "\n")
    run_batch(settings([str(f)], sqlite_url, "r"))
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        rows = {i: (lab, n, review) for i, lab, n, review in conn.execute(
            select(ClassificationRow.id, ClassificationRow.label, ClassificationRow.n_chunks,
                   ClassificationRow.needs_review))}
    engine.dispose()
    label, n_chunks, _ = rows["long"]
    assert n_chunks >= 3  # the decider is at the end of the last window
    assert label == "Sports"
    assert rows["filler"][2] is True  # the filler alone is flagged for review


@pytest.mark.parametrize("entities", [True])
def test_entities_are_stored_when_asked(tmp_path: Path, sqlite_url: str, entities: bool) -> None:
    f = tmp_path / "e.jsonl"
    f.write_text(json.dumps({"id": "e", "text": "Angela Merkel met Emmanuel Macron in Paris."})
                 + "\n")
    s = settings([str(f)], sqlite_url, "r").model_copy(update={"entities": entities})
    run_batch(s)
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        ents = conn.execute(select(ClassificationRow.entities)).scalar_one()
    engine.dispose()
    assert any(e["label"] in ("PERSON", "GPE") for e in ents)
