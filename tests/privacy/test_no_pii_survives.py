"""Done when: a batch run on posts with planted PII leaves no planted value anywhere — in no
column of any table or view (BLOB/bytea decoded) of either store, nor in the printed summary,
nor in the job's log (captured at INFO, below the job's own WARNING level).

The default policy covers the pattern types (titles, dead-letter payloads and errors);
--entities adds names and places (in titles and, with --store-text all, every post's text
kept for review); a policy that hashes identifiers covers ids and sources.
Runs go through `docstream.cli.main`, in process, with the no-op model.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select, text

from docstream.cli import main
from docstream.privacy.policy import KEY_ENV, load_policy
from docstream.store.engine import make_engine
from docstream.store.explanations import text_sha256
from docstream.store.tables import AuditRow, ClassificationRow, DeadLetterRow, ExplanationRow
from tests.privacy.conftest import TEST_KEY
from tests.privacy.pii_posts import Planted, pii_posts

RUN = "pii-run"


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def every_value(db_url: str) -> Iterator[tuple[str, str, str]]:
    """(table, column, value as text) of every non-NULL value of every table and view."""
    engine = make_engine(db_url)
    try:
        found = inspect(engine)
        names = found.get_table_names() + found.get_view_names()
        assert {"classifications", "dead_letters", "audit_log", "runs"} <= set(names)
        with engine.connect() as conn:
            for name in names:
                result = conn.execute(text(f'SELECT * FROM "{name}"'))
                columns = list(result.keys())
                for row in result:
                    for column, value in zip(columns, row, strict=True):
                        if (shown := _as_text(value)) is not None:
                            yield name, column, shown
    finally:
        engine.dispose()


def leaks(values: list[str], db_url: str, outputs: dict[str, str]) -> list[str]:
    """Where each planted value still is."""
    places = [(f"{t}.{c}", v) for t, c, v in every_value(db_url)] + list(outputs.items())
    return sorted({f"{value!r} in {where}" for value in set(values)
                   for where, haystack in places if value in haystack})


def run(posts: Planted, tmp_path: Path, db_url: str, capsys: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture, *args: str) -> dict[str, str]:
    source = tmp_path / "posts.jsonl"
    source.write_bytes(b"\n".join(posts.lines) + b"\n")
    capsys.readouterr()
    caplog.set_level(logging.INFO)
    code = main(["run", "--source", str(source), "--sink", db_url, "--model", "noop",
                 "--run-id", RUN, *args])
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    summary = out.out
    assert f"run {RUN}: {len(posts.lines)} inputs" in summary
    assert f"dead letters: {posts.dead}" in summary
    return {"the printed summary": summary, "stderr": out.err, "the log": caplog.text}


def audit_rows(db_url: str) -> list[Any]:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        rows = conn.execute(select(AuditRow.__table__).where(AuditRow.run_id == RUN)).all()
    engine.dispose()
    return rows


def test_default_policy_leaves_no_pattern_value(db_url: str, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str],
                                                caplog: pytest.LogCaptureFixture) -> None:
    posts = pii_posts(120, seed=11, share=0.3, dead_every=10)
    outputs = run(posts, tmp_path, db_url, capsys, caplog)
    assert len(posts.patterns) > 40
    assert leaks(posts.patterns, db_url, outputs) == []
    # the control: without --entities names are not looked for, and the search finds them
    assert leaks(posts.names, db_url, outputs)
    audit = audit_rows(db_url)
    assert len(audit) == len(posts.lines)
    assert {a.pii_policy for a in audit} == {"default@1"}
    assert sum(sum(a.pii_counts.values()) for a in audit) >= len(posts.patterns) - posts.dead // 4
    markers = [v for t, c, v in every_value(db_url) if (t, c) == ("dead_letters", "payload")
               and v.startswith("<undecodable: ")]
    assert len(markers) == posts.dead // 4  # bytes that are not UTF-8: length and sha256 only


def test_entities_and_hashed_identifiers_leave_nothing(db_url: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    policy = load_policy("default").model_dump()
    policy.update(name="test-hash-ids", version=3, identifiers="hash")
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    monkeypatch.setenv(KEY_ENV, TEST_KEY)
    posts = pii_posts(120, seed=12, share=0.3, pii_ids=True, dead_every=10)
    outputs = run(posts, tmp_path, db_url, capsys, caplog, "--entities", "--store-text", "all",
                  "--pii-policy", str(tmp_path / "policy.json"))
    assert len(posts.names) > 20 and len(posts.identifiers) > 20
    assert leaks(posts.patterns + posts.names + posts.identifiers, db_url, outputs) == []
    audit = audit_rows(db_url)
    assert {a.pii_policy for a in audit} == {"test-hash-ids@3"}
    # hashed ids are still unique (one row per post) and join the audit log to the results
    engine = make_engine(db_url)
    with engine.connect() as conn:
        ids = {(r.source, r.id) for r in conn.execute(
            select(ClassificationRow.source, ClassificationRow.id))}
        dead_ids = {r.doc_id for r in conn.execute(select(DeadLetterRow.doc_id))} - {None}
        texts = conn.execute(select(func.count(ClassificationRow.text))).scalar_one()
    engine.dispose()
    assert len(ids) == len(posts.lines) - posts.dead
    assert texts == len(ids)  # every text kept, none with a name left (leaks above)
    assert ids == {(a.source, a.doc_id) for a in audit if a.outcome == "classified"}
    assert all(len(i) == 64 and len(s) in (0, 64) for s, i in ids)
    assert dead_ids and all(len(i) == 64 for i in dead_ids)


def test_explanations_never_store_a_removed_word(sqlite_url: str, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Explanations are computed on the original text (names and all) and stored over the
    redacted one: with the real model, names redacted (--entities) and hashed identifiers,
    every explained word is the stored text's own characters at its span, the redacted spans
    are single placeholder entries, and no planted value is in any table."""
    policy = load_policy("default").model_dump()
    policy.update(name="test-hash-ids", version=3, identifiers="hash")
    (tmp_path / "policy.json").write_text(json.dumps(policy))
    monkeypatch.setenv(KEY_ENV, TEST_KEY)
    posts = pii_posts(40, seed=13, share=0.5, pii_ids=True, dead_every=20)
    source = tmp_path / "posts.jsonl"
    source.write_bytes(b"\n".join(posts.lines) + b"\n")
    code = main(["run", "--source", str(source), "--sink", sqlite_url, "--run-id", RUN,
                 "--entities", "--store-text", "all", "--explain", "all", "--explain-steps",
                 "8", "--pii-policy", str(tmp_path / "policy.json"), "--no-progress"])
    out = capsys.readouterr()
    assert code == 0, out.err[-2000:]
    assert leaks(posts.patterns + posts.names + posts.identifiers, sqlite_url,
                 {"the printed summary": out.out, "stderr": out.err}) == []
    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        stored = {(r.source, r.id): r.text for r in conn.execute(
            select(ClassificationRow.source, ClassificationRow.id, ClassificationRow.text))}
        explained = conn.execute(select(ExplanationRow.__table__)).all()
    engine.dispose()
    assert {(e.source, e.doc_id) for e in explained} == set(stored)  # joined by hashed ids
    placeholders = 0
    for e in explained:
        text = stored[(e.source, e.doc_id)]
        assert e.text_sha256 == text_sha256(text)
        for w in e.words:
            assert text[w["start"]:w["end"]] == w["text"]
            placeholders += w["redacted"] is not None
            if w["redacted"]:
                assert w["text"].startswith("<") and w["text"].endswith(">")
    assert placeholders >= len([n for n in posts.names if n]) // 2
