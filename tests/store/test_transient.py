"""Transient store failures, really produced: connection refused, the server ending the
connection mid-batch, a serialization failure, a deadlock, a locked SQLite database. The
writer raises StoreUnavailableError (one line, password masked), does not isolate, leaves
nothing behind, and the same batch succeeds once the cause is gone. A few seconds in all.
"""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg.errors
import pytest
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from docstream.schemas import Classification, InputPosition, ModelRef
from docstream.schemas.envelope import PartitionMark, ResultRecord, WriteBatch
from docstream.store.engine import check_reachable, make_engine
from docstream.store.errors import StoreError, StoreUnavailableError, StoreWriteError
from docstream.store.migrate import upgrade
from docstream.store.offsets import load_positions
from docstream.store.transient import classify, is_transient
from docstream.store.writer import StoreWriter

REF = ModelRef(name="news-topic", version="1", weights_sha256="a" * 64)
PASSWORD = "s3cr3t-pw"


def result(doc: str, line: int, label: str = "Sports") -> ResultRecord:
    return ResultRecord(
        result=Classification(doc_id=doc, source="", label=label, score=0.9,
                              scores={label: 0.9}, model=REF),
        position=InputPosition(kind="file", file="in.jsonl", line=line), input_sha256="c" * 64)


def batch(run_id: str = "r", labels: tuple[str, ...] = ("Sports", "Sports")) -> WriteBatch:
    return WriteBatch(run_id=run_id,
                      results=[result(d, i + 1, lab) for i, (d, lab) in
                               enumerate(zip("ab", labels, strict=True))],
                      marks=[PartitionMark(consumer_group="g", topic="t", partition=0,
                                           next_offset=2)])


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def savepoints(engine: Engine) -> list[str]:
    seen: list[str] = []

    def on(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        if statement.upper().startswith("SAVEPOINT"):
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", on)
    return seen


def labels(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {r.id: r.label for r in conn.execute(text("SELECT id, label FROM classifications"))}


def assert_one_masked_line(e: BaseException) -> None:
    message = str(e)
    assert PASSWORD not in message and "\n" not in message, message


@pytest.fixture()
def pg(pg_url: str) -> Iterator[tuple[StoreWriter, Engine]]:
    """A writer on a fresh PostgreSQL database, and a second, plain engine on it."""
    engine = make_engine(pg_url)
    upgrade(engine)
    other = create_engine(pg_url, poolclass=NullPool)
    yield StoreWriter(engine), other
    other.dispose()
    engine.dispose()


def test_connection_refused() -> None:
    url = f"postgresql+psycopg://app:{PASSWORD}@127.0.0.1:{closed_port()}/posts"
    engine = make_engine(url)
    with pytest.raises(StoreUnavailableError) as caught:
        check_reachable(engine)
    assert str(caught.value) == (f"cannot reach the database at postgresql+psycopg://app:***@"
                                 f"127.0.0.1:{engine.url.port}/posts: connection refused; "
                                 "is it running?")
    with pytest.raises(StoreUnavailableError, match="connection refused") as caught:
        StoreWriter(engine).write(batch())
    assert_one_masked_line(caught.value)
    assert "***" in str(caught.value) and is_transient(caught.value)


def test_check_reachable_tells_a_wrong_database_from_an_outage(postgres_server: str,
                                                               sqlite_url: str) -> None:
    server = make_url(postgres_server)
    url = f"postgresql+psycopg://postgres:{PASSWORD}@{server.host}:{server.port}/no_such_db"
    with pytest.raises(StoreError, match="does not exist") as caught:
        check_reachable(make_engine(url))
    assert not isinstance(caught.value, StoreUnavailableError)
    assert_one_masked_line(caught.value)
    check_reachable(make_engine(postgres_server))
    check_reachable(make_engine(sqlite_url))


def test_server_ends_the_connection_mid_batch(pg: tuple[StoreWriter, Engine]) -> None:
    writer, other = pg

    def terminate_writer(_point: str) -> None:  # what a server shutdown does (57P01)
        with other.connect() as conn:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                              "WHERE datname = current_database() AND pid <> pg_backend_pid()"))

    writer.set_fault_hook(terminate_writer)
    tried = savepoints(writer.engine)
    with pytest.raises(StoreUnavailableError, match=r"unavailable .*rolled back") as caught:
        writer.write(batch())
    assert_one_masked_line(caught.value)
    assert not tried and labels(other) == {}  # no isolation, nothing written
    writer.set_fault_hook(None)
    assert writer.write(batch()).results == 2  # the pool reconnects; the retry succeeds
    assert load_positions(writer.engine, "g") == {("t", 0): 2}


def _blocked_on_a_lock(other: Engine, timeout: float = 10.0) -> None:
    """Wait until some other session of this database waits for a row lock."""
    deadline = time.monotonic() + timeout
    with other.connect() as conn:
        while time.monotonic() < deadline:
            n = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'")).scalar_one()
            conn.rollback()
            if n:
                return
            time.sleep(0.01)
    raise AssertionError("the writer never waited for the lock")


def _write_in_thread(writer: StoreWriter, b: WriteBatch) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def run() -> None:
        try:
            out.append(writer.write(b))
        except Exception as e:  # handed to the test thread
            out.append(e)

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def test_serialization_failure(pg: tuple[StoreWriter, Engine]) -> None:
    writer, other = pg
    writer.write(batch())
    serializable = StoreWriter(writer.engine.execution_options(isolation_level="SERIALIZABLE"))
    tried = savepoints(writer.engine)
    with other.connect() as conn:
        conn.execute(text("UPDATE classifications SET label = 'World' WHERE id = 'b'"))
        thread, out = _write_in_thread(serializable, batch("r2", ("Business", "Business")))
        _blocked_on_a_lock(other)
        conn.commit()  # the writer's snapshot predates this update: 40001
    thread.join(10)
    [error] = out
    assert isinstance(error, StoreUnavailableError), error
    assert "serialize" in str(error) and not tried
    assert labels(other) == {"a": "Sports", "b": "World"}  # the batch rolled back whole
    assert serializable.write(batch("r2", ("Business", "Business"))).results == 2


def test_deadlock(pg: tuple[StoreWriter, Engine], pg_url: str) -> None:
    writer, other = pg
    writer.write(batch())
    name = pg_url.rsplit("/", 1)[1]
    with other.connect() as conn:  # the writer's sessions detect the deadlock, quickly
        conn.execute(text(f"ALTER DATABASE \"{name}\" SET deadlock_timeout = '400ms'"))
        conn.commit()
    writer.engine.dispose()
    tried = savepoints(writer.engine)
    with other.connect() as conn:
        conn.execute(text("SET deadlock_timeout = '20s'"))
        conn.execute(text("UPDATE classifications SET label = 'World' WHERE id = 'b'"))
        # the writer locks row a, then waits for b; we then wait for a: a cycle
        thread, out = _write_in_thread(writer, batch("r2", ("Business", "Business")))
        _blocked_on_a_lock(other)
        conn.execute(text("UPDATE classifications SET label = 'World' WHERE id = 'a'"))
        conn.commit()
    thread.join(10)
    [error] = out
    assert isinstance(error, StoreUnavailableError), error
    assert "deadlock" in str(error) and not tried
    assert labels(other) == {"a": "World", "b": "World"}
    assert writer.write(batch("r2", ("Business", "Business"))).results == 2


def test_sqlite_database_locked(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    upgrade(engine)

    @event.listens_for(engine, "connect")
    def short_wait(dbapi_conn: Any, _record: Any) -> None:  # after make_engine's 30 s
        dbapi_conn.execute("PRAGMA busy_timeout = 50")

    holder = sqlite3.connect(engine.url.database or "", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holding the write lock
    writer = StoreWriter(engine)
    tried = savepoints(engine)
    try:
        with pytest.raises(StoreUnavailableError, match="locked"):
            writer.write(batch())
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert not tried and labels(engine) == {}
    assert writer.write(batch()).results == 2


@pytest.mark.parametrize(("error", "kind"), [
    (psycopg.errors.TooManyConnections("too many connections"), "transient"),
    (psycopg.errors.CannotConnectNow("the database system is starting up"), "transient"),
    (psycopg.errors.CrashShutdown("terminating connection"), "transient"),
    (psycopg.errors.ConnectionFailure("connection failure"), "transient"),
    (psycopg.OperationalError("connection failed: connection to server at \"h\", port 5432 "
                              "failed: FATAL:  the database system is shutting down"),
     "transient"),
    (psycopg.OperationalError("consuming input failed: server closed the connection "
                              "unexpectedly"), "transient"),
    (psycopg.OperationalError("connection failed: FATAL:  database \"x\" does not exist"),
     "failure"),
    (psycopg.OperationalError("connection failed: FATAL:  password authentication failed"),
     "failure"),
    (psycopg.errors.StringDataRightTruncation("value too long"), "data"),
    (psycopg.errors.UndefinedTable("relation \"audit_log\" does not exist"), "failure"),
    (UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"), "data"),
    (ConnectionResetError("reset by peer"), "transient"),
    (RuntimeError("a bug"), "failure"),
])
def test_classification(error: Exception, kind: str) -> None:
    assert classify(error) == kind
    wrapped = sa_exc.OperationalError("INSERT ...", {}, error)  # as SQLAlchemy hands it over
    assert classify(wrapped) == kind or not isinstance(error, psycopg.Error)
    outer = StoreWriteError("batch failed")
    outer.__cause__ = error
    assert classify(outer) == kind
