"""The writer's side, on SQLite and PostgreSQL: audit records name the policy and the counts,
and a record the database refuses leaves no personal data in its dead letter or the log."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from docstream.privacy.redact import redactor_for
from docstream.schemas.classification import Classification, ModelRef
from docstream.schemas.dead_letter import DeadLetter
from docstream.schemas.envelope import FailedRecord, ResultRecord, WriteBatch
from docstream.schemas.position import InputPosition
from docstream.store import writer as writer_module
from docstream.store.engine import make_engine
from docstream.store.migrate import upgrade
from docstream.store.tables import AuditRow, DeadLetterRow
from docstream.store.writer import StoreWriter

REF = ModelRef(name="m", version="1", weights_sha256="0" * 64)
EMAIL = "jo.doe@example.com"


def result(doc: str, line: int, title: str) -> ResultRecord:
    return ResultRecord(
        result=Classification(doc_id=doc, source="", label="World", score=0.9,
                              scores={"World": 0.9}, model=REF),
        position=InputPosition(kind="file", file="in.jsonl", line=line), input_sha256="c" * 64,
        title=title)


@pytest.fixture()
def engine(db_url: str) -> Iterator[Any]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def audit(engine: Any, run_id: str = "r") -> dict[str, tuple[str | None, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(select(AuditRow.position, AuditRow.pii_policy, AuditRow.pii_counts)
                            .where(AuditRow.run_id == run_id))
        return {r.position: (r.pii_policy, r.pii_counts) for r in rows}


def test_audit_records_name_the_policy_and_the_counts(engine: Any) -> None:
    dead = FailedRecord(dead_letter=DeadLetter(
        position=InputPosition(kind="file", file="in.jsonl", line=3),
        payload=f'{{"text": "mail {EMAIL}'.encode(), stage="parse", reason="invalid_json",
        error="invalid JSON"), input_sha256="d" * 64)
    batch = WriteBatch(run_id="r", results=[result("a", 1, f"Mail {EMAIL} or @jo_d"),
                                            result("b", 2, "Markets steady")], failures=[dead])
    StoreWriter(engine).write(batch)  # the default redactor: the default policy
    StoreWriter(engine, redactor=redactor_for("off")).write(batch.model_copy(
        update={"run_id": "r-off"}))
    assert set(audit(engine, "r-off").values()) == {("off", None)}
    got = audit(engine)
    assert {pol for pol, _ in got.values()} == {"default@1"}
    assert {p: c for p, (_, c) in got.items()} == {
        "file:in.jsonl:1": {"EMAIL_ADDRESS": 1, "SOCIAL_HANDLE": 1}, "file:in.jsonl:2": {},
        "file:in.jsonl:3": {"EMAIL_ADDRESS": 1}}


def test_a_refused_record_keeps_no_personal_data(engine: Any, monkeypatch: pytest.MonkeyPatch,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    real = writer_module.driver_message

    def quoting(e: BaseException) -> str:  # as a database that quotes the offending row
        return f"{real(e)} (row: {EMAIL})"

    monkeypatch.setattr(writer_module, "driver_message", quoting)
    bad = result("bad", 5, f"{EMAIL} \ud800 a lone surrogate the database refuses")
    with caplog.at_level(logging.WARNING, logger="docstream.store.writer"):
        report = StoreWriter(engine).write(WriteBatch(run_id="r", results=[result("a", 1, "ok"),
                                                                           bad]))
    assert report.isolated == 1
    with engine.connect() as conn:
        dl = conn.execute(select(DeadLetterRow.__table__).where(
            DeadLetterRow.position == "file:in.jsonl:5")).one()
    assert dl.stage == "store" and "(row: <EMAIL_ADDRESS>)" in dl.error
    stored = json.loads(dl.payload)["record"]  # the refused result, as redacted
    assert stored["title"].startswith("<EMAIL_ADDRESS> ")
    assert EMAIL not in dl.error + dl.payload.decode() + caplog.text
    assert "(row: <EMAIL_ADDRESS>)" in caplog.text
    assert audit(engine)["file:in.jsonl:5"] == ("default@1", {"EMAIL_ADDRESS": 1})
