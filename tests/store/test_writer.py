"""The store on SQLite and on the real PostgreSQL (db_url is parametrized)."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select, text

from docstream.schemas import Classification, DeadLetter, InputPosition, ModelRef
from docstream.schemas.envelope import FailedRecord, PartitionMark, ResultRecord, WriteBatch
from docstream.store.engine import make_engine, make_readonly_engine
from docstream.store.errors import StoreWriteError
from docstream.store.migrate import upgrade
from docstream.store.offsets import load_positions
from docstream.store.query import query_results
from docstream.store.tables import AuditRow, ClassificationRow, DeadLetterRow
from docstream.store.writer import StoreWriter

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
        assert conn.execute(text("select version_num from alembic_version")).scalar_one() == "0002"


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
    with pytest.raises(StoreWriteError, match="rolled back"):
        writer.write(WriteBatch(run_id="r", results=[result("a", 1)]))
    assert count(writer, ClassificationRow) == 0


def test_readonly_engine_refuses_writes(writer: StoreWriter, db_url: str) -> None:
    writer.write(WriteBatch(run_id="r", results=[result("a", 1)]))
    ro = make_readonly_engine(db_url)
    assert [r["id"] for r in query_results(ro)] == ["a"]
    with pytest.raises(Exception, match=r"(?i)read.?only"), ro.begin() as conn:
        conn.execute(text("DELETE FROM classifications"))
    ro.dispose()
