"""Which database errors are transient (wait and retry), which are the data's fault.

Three kinds, decided by `classify`:

- **transient**: the database is out of reach or refused for a reason that goes away: the
  batch is rolled back as a whole and the writer raises `StoreUnavailableError`; a retry
  of the same batch can succeed. These are
  - PostgreSQL SQLSTATE class 08 (connection exception), 40001 serialization_failure,
    40P01 deadlock_detected, 53300 too_many_connections, 55P03 lock_not_available,
    57P01 admin_shutdown, 57P02 crash_shutdown, 57P03 cannot_connect_now,
    57P05 idle_session_timeout, 25P03 idle_in_transaction_session_timeout;
  - a driver error without SQLSTATE whose text says the connection failed: refused, reset,
    closed or lost, timed out, host unknown or unreachable, server starting up or shutting
    down, too many clients (psycopg reports connection failures this way);
  - any SQLAlchemy `DBAPIError` with `connection_invalidated` (a disconnect), SQLAlchemy's
    pool `TimeoutError` and `DisconnectionError`, Python's `ConnectionError`/`TimeoutError`;
  - SQLite SQLITE_BUSY / SQLITE_LOCKED ("database is locked", "database table is locked").
- **data**: the database refused a value: SQLSTATE class 22 (data exception: NUL character,
  value too long, number out of range, invalid JSON such as NaN) and 23 (integrity), 54000
  (e.g. an index row too large), SQLAlchemy `DataError`/`IntegrityError`, and values the
  driver cannot even send (`UnicodeError` for lone surrogates, `OverflowError`,
  `ValueError`). The writer isolates the records that cause them.
- **failure**: everything else (a missing table, a wrong password, a database that does not
  exist): a clear failure, reported as it is; retrying does not help.

The cause chain (`__cause__`, SQLAlchemy's `.orig`) is searched, so a wrapped error
classifies like the error it wraps.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Literal

from sqlalchemy import exc as sa_exc

from .masking import mask_secrets

Kind = Literal["transient", "data", "failure"]

TRANSIENT_SQLSTATES = frozenset({
    "40001", "40P01", "53300", "55P03", "57P01", "57P02", "57P03", "57P05", "25P03",
})
TRANSIENT_SQLSTATE_CLASSES = frozenset({"08"})
DATA_SQLSTATE_CLASSES = frozenset({"22", "23"})
DATA_SQLSTATES = frozenset({"54000"})

# (substring of the lower-cased driver message, short reason); for errors without SQLSTATE
_TRANSIENT_TEXTS: tuple[tuple[str, str], ...] = (
    ("connection refused", "connection refused"),
    ("connection reset", "connection reset"),
    ("connection timed out", "connection timed out"),
    ("timeout expired", "connection timed out"),
    ("server closed the connection", "the server closed the connection"),
    ("connection is closed", "the connection is closed"),
    ("connection is lost", "the connection was lost"),
    ("connection was closed", "the connection is closed"),
    ("connection already closed", "the connection is closed"),
    ("could not receive data", "the connection was lost"),
    ("could not send data", "the connection was lost"),
    ("consuming input failed", "the connection was lost"),
    ("terminating connection", "the server ended the connection"),
    ("the database system is starting up", "the server is starting up"),
    ("the database system is shutting down", "the server is shutting down"),
    ("the database system is in recovery mode", "the server is recovering"),
    ("the database system is not yet accepting connections", "the server is starting up"),
    ("too many clients", "too many connections"),
    ("remaining connection slots are reserved", "too many connections"),
    ("no route to host", "no route to host"),
    ("network is unreachable", "network unreachable"),
    ("failed to resolve host", "unknown host"),
    ("could not translate host name", "unknown host"),
    ("temporary failure in name resolution", "unknown host"),
    ("database is locked", "the database is locked"),
    ("database table is locked", "the database is locked"),
    ("database schema is locked", "the database is locked"),
    ("database is busy", "the database is busy"),
)
# These say the connection attempt reached the server and was refused for good.
_PERMANENT_TEXTS = ("does not exist", "authentication failed", "pg_hba.conf",
                    "permission denied", "no password supplied")
_SQLITE_BUSY, _SQLITE_LOCKED = 5, 6


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what it wraps: SQLAlchemy's `.orig`, then `__cause__`."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        e = todo.pop(0)
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        orig = getattr(e, "orig", None)
        if isinstance(orig, BaseException):
            todo.append(orig)
        if e.__cause__ is not None:
            todo.append(e.__cause__)


def sqlstate(exc: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE of `exc` or of what it wraps (psycopg 3 or psycopg2)."""
    for e in _chain(exc):
        code = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if isinstance(code, str) and code:
            return code
    return None


def driver_message(exc: BaseException) -> str:
    """The database's (or driver's) own message, first line, passwords masked, at most 300
    characters; without SQLAlchemy's "(psycopg.errors.X)" prefix and "[SQL: ...]" tail."""
    inner: BaseException = exc
    for e in _chain(exc):
        inner = e
        if not isinstance(e, sa_exc.SQLAlchemyError):
            break
    text = str(inner).strip()
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")
    if not first:
        first = inner.__class__.__name__
    first = mask_secrets(first)
    return first if len(first) <= 300 else first[:297] + "..."


def _transient_text(exc: BaseException) -> str | None:
    """The short reason when a driver error without SQLSTATE says the connection failed."""
    text = driver_message(exc).lower()
    if any(p in text for p in _PERMANENT_TEXTS):
        return None
    for needle, reason in _TRANSIENT_TEXTS:
        if needle in text:
            return reason
    return None


def _is_transient_one(e: BaseException) -> bool:
    if isinstance(e, sa_exc.DBAPIError) and e.connection_invalidated:
        return True
    if isinstance(e, sa_exc.TimeoutError | sa_exc.DisconnectionError | ConnectionError |
                  TimeoutError):
        return True
    if isinstance(e, sqlite3.Error):
        code = getattr(e, "sqlite_errorcode", None)
        if isinstance(code, int) and code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED):
            return True
    code = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
    if isinstance(code, str) and code:
        return code in TRANSIENT_SQLSTATES or code[:2] in TRANSIENT_SQLSTATE_CLASSES
    if isinstance(e, sa_exc.DataError | sa_exc.IntegrityError):
        return False
    # driver errors without a SQLSTATE (psycopg connection failures, sqlite3 messages)
    module = type(e).__module__.split(".")[0]
    if module in ("psycopg", "psycopg2", "sqlite3") or isinstance(e, sqlite3.Error):
        return _transient_text(e) is not None
    return False


def is_transient(exc: BaseException) -> bool:
    """True when `exc` (or what it wraps) is a transient database failure: retrying the
    same work later can succeed. See the module docstring for the list."""
    return any(_is_transient_one(e) for e in _chain(exc))


def is_data_error(exc: BaseException) -> bool:
    """True when the database (or its driver) refused a value of the data, not the
    connection or the schema: the record that carries it should be isolated."""
    if is_transient(exc):
        return False
    for e in _chain(exc):
        code = getattr(e, "sqlstate", None) or getattr(e, "pgcode", None)
        if isinstance(code, str) and code:
            return code[:2] in DATA_SQLSTATE_CLASSES or code in DATA_SQLSTATES
        if isinstance(e, sa_exc.DataError | sa_exc.IntegrityError):
            return True
        if isinstance(e, UnicodeError | OverflowError | ValueError | sqlite3.DataError):
            return True
    return False


def classify(exc: BaseException) -> Kind:
    """transient, data or failure; see the module docstring."""
    if is_transient(exc):
        return "transient"
    if is_data_error(exc):
        return "data"
    return "failure"


def short_reason(exc: BaseException) -> str:
    """A few words on why a connection failed ("connection refused"), else the driver's
    first line (masked)."""
    for e in _chain(exc):
        reason = _transient_text(e)
        if reason is not None:
            return reason
    return driver_message(exc)
