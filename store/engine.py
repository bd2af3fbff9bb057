"""Engines for the store: SQLite (WAL) by default, PostgreSQL via psycopg.

No message here carries a password: every URL goes through `masking.mask_url`.

SQLite engines take over BEGIN from the `sqlite3` module (its "legacy transaction control"
starts a transaction only before INSERT/UPDATE/DELETE, so a SAVEPOINT issued first would
live outside the transaction and survive its rollback; see SQLAlchemy's "Transactions with
SQLite and the sqlite3 driver"). The writer's record isolation relies on savepoints.
"""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.pool import NullPool

from .errors import StoreError, StoreUnavailableError
from .masking import mask_url
from .transient import is_transient, short_reason

DEFAULT_URL = "sqlite:///docstream.db"


def default_url() -> str:
    return os.environ.get("DOCSTREAM_DB") or DEFAULT_URL


def _check_url(url: str) -> None:
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError) as e:
        raise StoreError(f"bad database URL {mask_url(url)!r}: expected e.g. "
                         "sqlite:///docstream.db or postgresql+psycopg://user@host:5432/db"
                         ) from e
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(f"unsupported database {parsed.get_backend_name()!r} in "
                         f"{mask_url(url)!r}; use sqlite:/// or postgresql+psycopg://")


# Sessions in UTC whatever the server's default: timestamps read back as the UTC instants the
# contract stores (a session at +14:00 would render 9999-12-31T23:59Z as year 10000, which
# the driver cannot parse).
PG_CONNECT_ARGS = {"options": "-c timezone=UTC"}


def _create(url: str, **kwargs: Any) -> Engine:
    """create_engine, with a missing driver or a bad option said in one masked line."""
    try:
        return create_engine(url, **kwargs)
    except (ArgumentError, ImportError) as e:
        raise StoreError(f"cannot open the database at {mask_url(url)}: "
                         f"{e.__class__.__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                         ) from e


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()
    # SQLAlchemy emits BEGIN (below), not the sqlite3 module: savepoints then nest properly
    dbapi_conn.isolation_level = None


def _sqlite_begin(conn: Connection) -> None:
    conn.exec_driver_sql("BEGIN")


def make_engine(url: str | None = None) -> Engine:
    """A read-write engine."""
    url = url or default_url()
    _check_url(url)
    if url.startswith("sqlite"):
        engine = _create(url, poolclass=NullPool)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return _create(url, pool_pre_ping=True, pool_size=2, max_overflow=2,
                   connect_args=PG_CONNECT_ARGS)


def make_readonly_engine(url: str | None = None) -> Engine:
    """An engine whose connections refuse writes (SQLite mode=ro; PostgreSQL read-only txns)."""
    url = url or default_url()
    _check_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = parsed.database or ""
        if not path or path == ":memory:":
            raise StoreError("a read-only query needs a SQLite file, not an in-memory database")
        if not os.path.exists(path):
            raise StoreError(f"no database at {path}; run `docstream run` first or pass --db")
        ro = f"sqlite:///file:{os.path.abspath(path)}?mode=ro&uri=true"
        return _create(ro, poolclass=NullPool)
    engine = _create(url, poolclass=NullPool, connect_args=PG_CONNECT_ARGS)

    @event.listens_for(engine, "connect")
    def _readonly(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        cur.close()
        dbapi_conn.commit()

    return engine


def check_reachable(engine: Engine) -> None:
    """Open a connection and run `SELECT 1`, so that a job fails fast, before any work.

    Raises `StoreUnavailableError` when the database is out of reach for now (refused,
    timed out, starting up, locked: worth a retry later) and `StoreError` when it answered
    but refused us (no such database, wrong password); one line each, password masked:
    "cannot reach the database at postgresql+psycopg://app:***@db:5432/posts: connection
    refused; is it running?"
    """
    where = mask_url(engine.url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as e:
        if is_transient(e):
            raise StoreUnavailableError(
                f"cannot reach the database at {where}: {short_reason(e)}; is it running?"
            ) from e
        raise StoreError(f"cannot connect to the database at {where}: {short_reason(e)}; "
                         "check the URL, the database name and the credentials") from e
