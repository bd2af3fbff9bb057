"""Engines for the store: SQLite (WAL) by default, PostgreSQL via psycopg."""

from __future__ import annotations

import os
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import NullPool

from .errors import StoreError

DEFAULT_URL = "sqlite:///docstream.db"


def default_url() -> str:
    return os.environ.get("DOCSTREAM_DB") or DEFAULT_URL


def _check_url(url: str) -> None:
    try:
        parsed = make_url(url)
    except ArgumentError as e:
        raise StoreError(f"bad database URL {url!r}: expected e.g. sqlite:///docstream.db "
                         "or postgresql+psycopg://user@host:5432/db") from e
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise StoreError(f"unsupported database {parsed.get_backend_name()!r} in {url!r}; "
                         "use sqlite:/// or postgresql+psycopg://")


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def make_engine(url: str | None = None) -> Engine:
    """A read-write engine."""
    url = url or default_url()
    _check_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, poolclass=NullPool)
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=2)


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
        return create_engine(ro, poolclass=NullPool)
    engine = create_engine(url, poolclass=NullPool)

    @event.listens_for(engine, "connect")
    def _readonly(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY")
        cur.close()
        dbapi_conn.commit()

    return engine
