"""Session-wide fixtures: real services started by the repo's own script, fresh databases,
generated data, and the markers derived from the fixtures a test uses.

Tests run on data the repository ships or generates (tests/news_posts.py); `shared_data` is
the one place that knows where the real datasets live (`../shared`, or $DOCSTREAM_SHARED),
for tests that are explicitly about them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.kafka_fixtures import kafka_bootstrap, kafka_topic, stream_jobs  # noqa: F401 (fixtures)
from tests.news_posts import write_labelled
from tests.services import PG_ADMIN_URL, PG_HOST, PG_PORT, REPO, dev_services
from tests.tiny_encoders import tiny_encoders  # noqa: F401 (fixture)

KAFKA_FIXTURES = frozenset({"kafka_bootstrap", "kafka_topic", "stream_jobs"})
POSTGRES_FIXTURES = frozenset({"postgres_server", "pg_url"})
# a `docstream run` subprocess, a model trained for the test: tens of seconds
SLOW_FIXTURES = frozenset({"stream_jobs", "train_tiny"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `kafka` / `postgres` / `slow` from the fixtures each test uses, so that the
    markers cannot drift from what a test needs. `db_url` needs PostgreSQL only in its
    postgres parametrization."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        if names & KAFKA_FIXTURES:
            item.add_marker(pytest.mark.kafka)
        if names & POSTGRES_FIXTURES or params.get("db_url") == "postgres":
            item.add_marker(pytest.mark.postgres)
        if names & SLOW_FIXTURES:
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """`../shared/data` beside the repository (or $DOCSTREAM_SHARED/data): the real datasets.

    Only for tests that are explicitly about those datasets; every other test uses the
    repository's own or generated data, so a bare clone runs the whole suite."""
    from bench.data import shared_dir  # the one computation of the path (benchmark and tests)

    path = shared_dir() / "data"
    if not path.is_dir():  # fail loudly: a quiet skip would hide a test that never runs
        raise RuntimeError(f"this test is about the real datasets; {path} is not available "
                           "(set DOCSTREAM_SHARED)")
    return path


@pytest.fixture(scope="session")
def news_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated labelled news posts (World/Sports/Business/Sci/Tech), JSON Lines with
    `train` (400 rows) and `test` (200 rows) splits, 5% long documents; see news_posts.py."""
    return write_labelled(tmp_path_factory.mktemp("news-data") / "news.jsonl")


@pytest.fixture(scope="session")
def postgres_server() -> str:
    dev_services("start", "postgres")
    return PG_ADMIN_URL


@pytest.fixture()
def pg_url(postgres_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    # No pool: a test may restart PostgreSQL, and a pooled connection would not survive it.
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT", poolclass=NullPool)
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
