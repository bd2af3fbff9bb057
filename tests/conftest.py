"""Session-wide fixtures: real services started by the repo's own script, fresh databases."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.kafka_fixtures import kafka_bootstrap, kafka_topic, stream_jobs  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("DOCSTREAM_SHARED", REPO.parent / "shared"))
PG_HOST = os.environ.get("DOCSTREAM_PG_HOST", "127.0.0.1")
PG_PORT = os.environ.get("DOCSTREAM_PG_PORT", "5432")
PG_ADMIN_URL = f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/postgres"


def dev_services(*args: str) -> None:
    """Run scripts/dev-services; a failure fails the test session loudly (never a skip)."""
    proc = subprocess.run([str(REPO / "scripts" / "dev-services"), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/dev-services {' '.join(args)} failed:\n"
                           f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    if not (SHARED / "data").is_dir():
        raise RuntimeError(f"shared data not found at {SHARED}; set DOCSTREAM_SHARED")
    return SHARED


@pytest.fixture(scope="session")
def postgres_server() -> str:
    dev_services("start", "postgres")
    return PG_ADMIN_URL


@pytest.fixture()
def pg_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+psycopg://postgres@{PG_HOST}:{PG_PORT}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture()
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'docstream.db'}"


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on SQLite and on the real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'docstream.db'}"
    return request.getfixturevalue("pg_url")
