"""The store on SQLite and on the real PostgreSQL (db_url is parametrized)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import create_engine, func, select, text

from docstream.schemas import Classification, DeadLetter, InputPosition, ModelRef
from docstream.schemas.envelope import FailedRecord, PartitionMark, ResultRecord, WriteBatch
from docstream.store.engine import make_engine, make_readonly_engine
from docstream.store.errors import StoreUnavailableError, StoreWriteError
from docstream.store.migrate import head_revision, upgrade
from docstream.store.offsets import load_positions
from docstream.store.query import query_results
from docstream.store.tables import AuditRow, ClassificationRow, DeadLetterRow
from docstream.store.writer import StoreWriter, WriteReport, _sqlite_in_transaction

REF1 = ModelRef(name="news-topic", version="1", weights_sha256="a" * 64)
REF2 = ModelRef(name="news-topic", version="2", weights_sha256="b" * 64)


def result(doc: str, line: int, ref: ModelRef = REF1, source: str = "", label: str = "Sports"
           ) -> ResultRecord:
    return ResultRecord(
        result=Classification(doc_id=doc, source=source, label=label, score=0.9,
                              scores={label: 0.9, "World": 0.1}, model=ref),
        position=InputPosition(kind="file", file="in.jsonl", line=line), input_sha256="c" * 64)


def failure(line: int) -> FailedRecord:
    return FailedRecord(
        dead_letter=DeadLetter(position=InputPosition(kind="file", file="in.jsonl", line=line),
                               payload=b"{oops", stage="parse", reason="invalid_json",
                               error="invalid JSON"),
        input_sha256="d" * 64)


@pytest.fixture()
def writer(db_url: str) -> StoreWriter:
    engine = make_engine(db_url)
    upgrade(engine)
    return StoreWriter(engine)


def count(writer: StoreWriter, table: type) -> int:
    with writer.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def test_migrations_are_idempotent(writer: StoreWriter) -> None:
    upgrade(writer.engine)
    with writer.engine.connect() as conn:
        assert conn.execute(text("select version_num from alembic_version")).scalar_one() == (
            head_revision())


def test_replay_upserts_and_never_doubles(writer: StoreWriter) -> None:
    batch = WriteBatch(run_id="r1", results=[result("a", 1), result("b", 2)],
                       failures=[failure(3)])
    writer.write(batch)
    writer.write(batch)  # a replay after a crash: same run id
    assert count(writer, ClassificationRow) == 2
    assert count(writer, DeadLetterRow) == 1
    assert count(writer, AuditRow) == 3  # never doubled within a run
    with writer.engine.connect() as conn:
        assert conn.execute(select(DeadLetterRow.count)).scalar_one() == 2  # bumped


def test_rerun_updates_model_version_and_adds_audit(writer: StoreWriter) -> None:
    writer.write(WriteBatch(run_id="r1", results=[result("a", 1)]))
    writer.write(WriteBatch(run_id="r2", results=[result("a", 1, ref=REF2, label="World")]))
    assert count(writer, ClassificationRow) == 1
    with writer.engine.connect() as conn:
        row = conn.execute(select(ClassificationRow.model_version, ClassificationRow.label,
                                  ClassificationRow.run_id)).one()
        assert tuple(row) == ("2", "World", "r2")
    assert count(writer, AuditRow) == 2  # the deliberate re-run has its own records


def test_same_id_different_source_are_two_rows(writer: StoreWriter) -> None:
    writer.write(WriteBatch(run_id="r", results=[result("a", 1, source="x"),
                                                 result("a", 2, source="y"), result("a", 3)]))
    assert count(writer, ClassificationRow) == 3


def test_duplicate_key_within_one_batch_keeps_last(writer: StoreWriter) -> None:
    writer.write(WriteBatch(run_id="r", results=[result("a", 1, label="World"),
                                                 result("a", 2, label="Business")]))
    with writer.engine.connect() as conn:
        assert conn.execute(select(ClassificationRow.label)).scalar_one() == "Business"


def test_partition_marks_only_move_forward(writer: StoreWriter) -> None:
    mark = lambda n: PartitionMark(consumer_group="g", topic="t", partition=0, next_offset=n)  # noqa: E731
    writer.write(WriteBatch(run_id="r", marks=[mark(10)]))
    writer.write(WriteBatch(run_id="r", marks=[mark(5)]))
    assert load_positions(writer.engine, "g") == {("t", 0): 10}


def test_failed_transaction_rolls_back_everything(writer: StoreWriter) -> None:
    def boom(point: str) -> None:
        raise RuntimeError(f"fault at {point}")

    writer.set_fault_hook(boom)
    with pytest.raises(RuntimeError, match="after_results"):
        writer.write(WriteBatch(run_id="r", results=[result("a", 1)], failures=[failure(2)]))
    assert count(writer, ClassificationRow) == 0 and count(writer, AuditRow) == 0


def test_write_error_is_wrapped_with_context(writer: StoreWriter) -> None:
    with writer.engine.begin() as conn:
        conn.execute(text("DROP TABLE audit_log"))
    with pytest.raises(StoreWriteError, match="rolled back") as caught:
        writer.write(WriteBatch(run_id="r", results=[result("a", 1)]))
    assert not isinstance(caught.value, StoreUnavailableError)  # a clear failure, not transient
    assert count(writer, ClassificationRow) == 0


def test_readonly_engine_refuses_writes(writer: StoreWriter, db_url: str) -> None:
    writer.write(WriteBatch(run_id="r", results=[result("a", 1)]))
    ro = make_readonly_engine(db_url)
    assert [r["id"] for r in query_results(ro)] == ["a"]
    with pytest.raises(Exception, match=r"(?i)read.?only"), ro.begin() as conn:
        conn.execute(text("DELETE FROM classifications"))
    ro.dispose()


def test_write_returns_a_report(writer: StoreWriter) -> None:
    mark = PartitionMark(consumer_group="g", topic="t", partition=0, next_offset=3)
    report = writer.write(WriteBatch(run_id="r", results=[result("a", 1), result("b", 2)],
                                     failures=[failure(3)], marks=[mark]))
    assert report == WriteReport(results=2, dead_letters=1, isolated=0, marks=1)
    assert writer.write(WriteBatch(run_id="r")) == WriteReport()


def _resolution(writer: StoreWriter) -> dict[str, tuple[object, object]]:
    with writer.engine.connect() as conn:
        rows = conn.execute(select(DeadLetterRow.position, DeadLetterRow.resolved_at,
                                   DeadLetterRow.resolved_by)).all()
    return {r.position: (r.resolved_at is not None, r.resolved_by) for r in rows}


def test_a_result_resolves_the_dead_letter_at_its_position_or_replay_of(
        writer: StoreWriter) -> None:
    writer.write(WriteBatch(run_id="r1", failures=[failure(1), failure(2), failure(3)]))
    assert set(_resolution(writer).values()) == {(False, None)}
    # line 1 succeeds on a re-run; line 7 is a replay of the dead letter at line 2
    replay = result("b", 7).model_copy(update={"replay_of": "file:in.jsonl:2"})
    writer.write(WriteBatch(run_id="r2", results=[result("a", 1), replay]))
    assert _resolution(writer) == {"file:in.jsonl:1": (True, "r2"),
                                   "file:in.jsonl:2": (True, "r2"),
                                   "file:in.jsonl:3": (False, None)}
    with writer.engine.connect() as conn:
        audits = {r.position: r.replay_of for r in conn.execute(
            select(AuditRow.position, AuditRow.replay_of).where(AuditRow.run_id == "r2"))}
    assert audits == {"file:in.jsonl:1": None, "file:in.jsonl:7": "file:in.jsonl:2"}
    # a later result does not move resolved_by
    writer.write(WriteBatch(run_id="r3", results=[result("a", 1)]))
    assert _resolution(writer)["file:in.jsonl:1"] == (True, "r2")


def test_a_dead_letter_written_again_is_open_again(writer: StoreWriter) -> None:
    writer.write(WriteBatch(run_id="r1", failures=[failure(1)]))
    writer.write(WriteBatch(run_id="r2", results=[result("a", 1)]))
    assert _resolution(writer) == {"file:in.jsonl:1": (True, "r2")}
    writer.write(WriteBatch(run_id="r3", failures=[failure(1)]))
    assert _resolution(writer) == {"file:in.jsonl:1": (False, None)}
    with writer.engine.connect() as conn:
        assert conn.execute(select(DeadLetterRow.count)).scalar_one() == 2


def test_failed_records_carry_replay_of_into_the_audit(writer: StoreWriter) -> None:
    again = failure(9).model_copy(update={"replay_of": "file:in.jsonl:3"})
    writer.write(WriteBatch(run_id="r", failures=[failure(3)]))
    writer.write(WriteBatch(run_id="r2", failures=[again]))
    with writer.engine.connect() as conn:
        assert conn.execute(select(AuditRow.replay_of).where(AuditRow.run_id == "r2")
                            ).scalar_one() == "file:in.jsonl:3"
    assert _resolution(writer)["file:in.jsonl:3"] == (False, None)  # a failure resolves nothing


@pytest.mark.parametrize("made_by", ["make_engine", "create_engine"])
def test_sqlite_savepoints_belong_to_the_transaction(sqlite_url: str, made_by: str) -> None:
    """pysqlite's legacy transaction control runs a SAVEPOINT issued before any DML outside
    the transaction (SQLAlchemy docs, "Transactions with SQLite and the sqlite3 driver"):
    make_engine takes over BEGIN; the writer also opens the transaction itself before its
    first savepoint, for engines made elsewhere."""
    engine = make_engine(sqlite_url) if made_by == "make_engine" else create_engine(sqlite_url)
    upgrade(make_engine(sqlite_url))
    with engine.connect() as conn:
        trans = conn.begin()
        if made_by == "create_engine":
            _sqlite_in_transaction(conn)
        with conn.begin_nested():
            conn.execute(text("INSERT INTO runs (run_id, started_at, source, model, status) "
                              "VALUES ('x', '2026-01-01', 's', 'm', 'running')"))
        trans.rollback()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM runs")).scalar_one() == 0
    engine.dispose()


def _texts(writer: StoreWriter) -> dict[str, str | None]:
    with writer.engine.connect() as conn:
        return dict(conn.execute(select(ClassificationRow.id, ClassificationRow.text)).all())


def test_review_text_is_stored_and_kept_by_a_rerun_without_one(writer: StoreWriter) -> None:
    """A rerun that keeps no text (the post no longer flagged, or --store-text off) leaves the
    stored text for review; a new text replaces it."""
    def kept(doc: str, line: int, text: str | None, ref: ModelRef = REF1) -> ResultRecord:
        return result(doc, line, ref=ref).model_copy(update={"text": text})

    writer.write(WriteBatch(run_id="r1", results=[kept("a", 1, "first words"),
                                                  kept("b", 2, None)]))
    assert _texts(writer) == {"a": "first words", "b": None}
    writer.write(WriteBatch(run_id="r2", results=[kept("a", 1, None, REF2),
                                                  kept("b", 2, None, REF2)]))
    assert _texts(writer) == {"a": "first words", "b": None}
    with writer.engine.connect() as conn:  # the rest of the row is the rerun's
        assert set(conn.execute(select(ClassificationRow.model_version)).scalars()) == {"2"}
    writer.write(WriteBatch(run_id="r3", results=[kept("a", 1, "second words"),
                                                  kept("b", 2, "now flagged")]))
    assert _texts(writer) == {"a": "second words", "b": "now flagged"}


def test_a_result_refused_for_its_text_keeps_it_in_its_dead_letter(writer: StoreWriter) -> None:
    """store.refused: the refused result, text included, is the dead letter's payload."""
    bad = result("bad", 2).model_copy(update={"text": "a lone surrogate \ud800 in the text"})
    report = writer.write(WriteBatch(run_id="r", results=[result("a", 1), bad]))
    assert (report.results, report.isolated) == (1, 1)
    assert _texts(writer) == {"a": None}
    with writer.engine.connect() as conn:
        payload = conn.execute(select(DeadLetterRow.payload)).scalar_one()
    assert json.loads(payload)["record"]["text"] == "a lone surrogate \ud800 in the text"
