"""Kafka fixtures for the streaming tests (real broker, real PostgreSQL).

tests/conftest.py re-exports them to every test; the helpers are in
tests/stream_helpers.py. The broker is started by `scripts/dev-services start kafka`
(tests/services.py); a failure fails the session loudly, never a skip. Every test gets
unique topics (deleted afterwards) and, through the root conftest's `pg_url`, its own
PostgreSQL database. The root conftest marks every test that uses these fixtures `kafka`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka.admin import KafkaAdminClient

from tests.services import BOOTSTRAP, dev_services
from tests.stream_helpers import StreamJob


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    dev_services("start", "kafka")
    return BOOTSTRAP


@pytest.fixture()
def kafka_topic(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """A factory of fresh topics (name, partitions); they and their .dlq go afterwards."""
    from docstream.streaming.admin import ensure_topic

    made: list[str] = []

    def make(partitions: int = 3, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        ensure_topic(kafka_bootstrap, name, partitions)
        made.append(name)
        return name

    yield make
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        existing = set(admin.list_topics())
        doomed = [t for name in made for t in (name, f"{name}.dlq") if t in existing]
        if doomed:
            admin.delete_topics(doomed)
    except Exception:  # a failed clean-up must not hide the test's own result
        pass
    finally:
        admin.close()


@pytest.fixture()
def stream_jobs(tmp_path: Path) -> Iterator[Callable[..., StreamJob]]:
    """Start StreamJobs; every one still running is killed with its group afterwards."""
    jobs: list[StreamJob] = []

    def start(*args: Any, **kwargs: Any) -> StreamJob:
        job = StreamJob(tmp_path, *args, **kwargs)
        jobs.append(job)
        return job

    yield start
    for job in jobs:
        job.reap()
