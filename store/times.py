"""Times read back from the store: SQLite returns naive UTC datetimes, PostgreSQL aware ones
(its sessions run with timezone=UTC); callers get aware UTC either way."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def as_utc(value: datetime) -> datetime: ...
@overload
def as_utc(value: None) -> None: ...
def as_utc(value: datetime | None) -> datetime | None:
    """`value` as an aware UTC time; a naive one is taken as UTC."""
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
