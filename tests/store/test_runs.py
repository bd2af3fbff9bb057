"""Run bookkeeping (store.runs) on SQLite and on the real PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, select

from docstream.schemas.envelope import WriteBatch
from docstream.store.engine import make_engine
from docstream.store.migrate import upgrade
from docstream.store.runs import RunCounts, count_run, finish_run, start_run
from docstream.store.tables import RunRow
from docstream.store.writer import StoreWriter
from tests.store.test_writer import failure, result


@pytest.fixture()
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    upgrade(engine)
    yield engine
    engine.dispose()


def run_row(engine: Engine, run_id: str) -> RunRow:
    with engine.connect() as conn:
        return conn.execute(select(RunRow).where(RunRow.run_id == run_id)).one()


def test_start_finish_and_restart(engine: Engine) -> None:
    start_run(engine, "r1", "in.jsonl", "noop")
    finish_run(engine, "r1", "done", {"inputs": 3})
    row = run_row(engine, "r1")
    assert (row.status, row.summary, row.source) == ("done", {"inputs": 3}, "in.jsonl")
    assert row.finished_at is not None
    start_run(engine, "r1", "kafka://h:1/t", "m")  # a restart of the same run id: no error
    row = run_row(engine, "r1")
    assert (row.status, row.finished_at, row.source, row.model) == (
        "running", None, "kafka://h:1/t", "m")


def test_counts_all_and_since(engine: Engine) -> None:
    writer = StoreWriter(engine)
    writer.write(WriteBatch(run_id="r", results=[result("a", 1), result("b", 2, label="World")],
                            failures=[failure(3)]))
    writer.write(WriteBatch(run_id="other", results=[result("c", 4)]))
    expected = RunCounts(inputs=3, classified=2, labels={"Sports": 1, "World": 1},
                         dead_letters=1, dead_by_reason={"invalid_json": 1}, needs_review=0)
    assert count_run(engine, "r") == expected
    assert count_run(engine, "r", since=datetime.now(UTC) - timedelta(hours=1)) == expected
    later = count_run(engine, "r", since=datetime.now(UTC) + timedelta(hours=1))
    assert later == RunCounts(0, 0, {}, 0, {}, 0)
