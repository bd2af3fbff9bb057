"""What every request of `docstream serve` shares: the two engines and the settings."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request
from sqlalchemy import Engine

from docstream.store.engine import check_reachable, make_engine, make_readonly_engine

from .settings import ServeSettings


@dataclass
class ServeContext:
    """`reader`: read-only connections (the reader role on PostgreSQL). `reviewer`: checks
    reviewer tokens and inserts reviews (the reviewer role), nothing else."""

    settings: ServeSettings
    reader: Engine
    reviewer: Engine

    @classmethod
    def open(cls, settings: ServeSettings) -> ServeContext:
        reader = make_readonly_engine(settings.read_url)
        reviewer = make_engine(settings.review_url)
        check_reachable(reader)
        return cls(settings=settings, reader=reader, reviewer=reviewer)

    def close(self) -> None:
        self.reader.dispose()
        self.reviewer.dispose()


def context(request: Request) -> ServeContext:
    return request.app.state.ctx
